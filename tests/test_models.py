"""Tests for mixjax.models: parameter counts, shapes, and where plans mix."""

from __future__ import annotations

import functools
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import mixjax
from mixjax import models
from tests.model_variables import numpy_variables
from tests.tolerances import F32_EPS, NETWORK_ULPS, assert_close_in_ulps, differ_beyond_rounding

LAM = 0.3
# A blend λ·a + (1 − λ)·b in float32 rounds 1 − λ, each product and the sum: at most
# 2 ulps of max(|a|, |b|), whatever the order or FMA.
BLEND_ULPS = 2


def _num_params(model: nn.Module, shape: tuple[int, ...]) -> int:
  """Trainable parameters (the 'params' collection), without computing anything."""
  variables = jax.eval_shape(model.init, jax.random.key(0),
                             jax.ShapeDtypeStruct(shape, jnp.float32))
  return sum(math.prod(v.shape) for v in jax.tree.leaves(variables["params"]))


def _plan(layer: int, batch: int) -> mixjax.MixPlan:
  """A deterministic Mixup plan at ``layer``: λ = 0.3, partners reversed.

  Built from NumPy arrays, so making one compiles nothing.
  """
  lam = jnp.asarray(np.full((batch,), LAM, np.float32))
  params = mixjax.MixParams(perm=jnp.asarray(np.arange(batch, dtype=np.int32)[::-1]),
                            label_weight=lam, lam=lam)
  return mixjax.MixPlan(layer=jnp.asarray(np.int32(layer)), params=params)


def _normal(shape: tuple[int, ...], seed: int = 1) -> jax.Array:
  """Standard-normal float32 inputs drawn by NumPy (no eager jax.random program)."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# One compiled program per shape, shared by the tests that draw or mix with the
# same arguments (an eager call compiles each of its small operations instead).
_sample_plan = jax.jit(mixjax.sample_plan, static_argnums=(1, 2))
_sample_cutmix = jax.jit(mixjax.sample_cutmix, static_argnums=(1, 2))
_mix_images = jax.jit(mixjax.mix_images)


def _exact_mix(hidden: chex.Array) -> np.ndarray:
  """What ``_plan(k)`` makes of ``hidden``, in float64 with λ as float32 holds it."""
  lam = float(np.float32(LAM))
  hidden = np.asarray(hidden, np.float64)
  return lam * hidden + (1 - lam) * hidden[::-1]


# Small instances of every architecture, each with all its layers eligible. The
# PreActResNets have one block per stage (PreActResNet-18 has two): the same four
# stages and mix layers, an identity-shortcut block (stage 1) and projection blocks
# (stages 2-4), at half the depth to compile; the registry's full PreActResNet-18 is
# counted and shape-checked above and below, and compiled by the training tests.
FORWARD_CASES = {
    "preact_resnet": (lambda: models.PreActResNet(
        stage_sizes=(1, 1, 1, 1), num_filters=16, num_classes=10,
        mix_layers=(0, 1, 2, 3, 4)), (4, 16, 16, 3)),
    "preact_resnet_mixup_cifar10": (lambda: models.PreActResNet(
        stage_sizes=(1, 1, 1, 1), num_filters=16, num_classes=10, variant="mixup_cifar10",
        mix_layers=(0, 1, 2, 3, 4)), (4, 16, 16, 3)),
    "wide_resnet_10_2": (lambda: models.WideResNet(
        depth=10, widen_factor=2, num_classes=10, mix_layers=(0, 1, 2, 3)),
                         (4, 16, 16, 3)),
    "wide_resnet_10_2_xternalz": (lambda: models.WideResNet(
        depth=10, widen_factor=2, num_classes=10, variant="xternalz",
        mix_layers=(0, 1, 2, 3)), (4, 16, 16, 3)),
    "small_cnn": (lambda: models.get_model("small_cnn", 10), (4, 8, 8, 1)),
    "mlp_bottleneck": (lambda: models.get_model(
        "mlp", 3, features=(16, 16), bottleneck=2), (4, 2)),
    "mlp_images": (lambda: models.get_model("mlp", 10, features=(32,)), (4, 8, 8, 1)),
}


@pytest.fixture(scope="module", params=list(FORWARD_CASES))
def case(request):
  """(model, variables, x, apply, traces) for each small model, built once.

  ``apply(variables, x, plan, train)`` is one jitted forward shared by the tests
  (so each model compiles at most four programs); it returns ``(logits, hidden,
  batch_stats)`` and appends ``(train, plan is None)`` to ``traces`` whenever
  it is traced.
  """
  make, shape = FORWARD_CASES[request.param]
  model = make()
  x = _normal(shape)
  variables = numpy_variables(model, x)
  traces = []

  @functools.partial(jax.jit, static_argnames="train")
  def apply(variables, x, plan, train):
    traces.append((train, plan is None))
    (logits, hidden), updates = model.apply(
        variables, x, plan, train=train, return_hidden=True, mutable="batch_stats")
    return logits, hidden, updates.get("batch_stats")

  return model, variables, x, apply, traces


# --- Parameter counts --------------------------------------------------------
# Each count is derived here from the reference PyTorch code's layer list, not
# from mixjax's modules: PyTorch's Conv2d has C_in·C_out·k² weights (+ C_out with
# bias=True), BatchNorm2d 2·C (weight, bias), Linear C_in·C_out + C_out.


def _conv(cin: int, cout: int, k: int, bias: bool = False) -> int:
  return cin * cout * k * k + (cout if bias else 0)


def _bn(c: int) -> int:
  return 2 * c


def _linear(cin: int, cout: int) -> int:
  return cin * cout + cout


def _reference_preact_resnet(num_blocks, num_classes: int, stem_bn: bool) -> int:
  """PreActResNet with ``PreActBlock``s, as both references build it.

  manifold_mixup supervised/models/preresnet.py: PreActBlock lines 17–27
  (bn1, conv1 3×3, bn2, conv2 3×3, 1×1 shortcut where stride ≠ 1 or the width
  changes, all bias-free), PreActResNet lines 67–86 (conv1 3→64 3×3 without a
  norm, layers of 64/128/256/512 with strides 1/2/2/2, linear 512→K).
  facebookresearch/mixup-cifar10 models/resnet.py: the same PreActBlock (lines
  51–62) and ResNet (lines 131–149), which adds ``bn1 = BatchNorm2d(64)`` after
  the stem conv (line 136): ``stem_bn``.
  """
  total = _conv(3, 64, 3) + (_bn(64) if stem_bn else 0)
  in_planes = 64
  for planes, n, stride in zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2), strict=True):
    for s in [stride] + [1] * (n - 1):
      total += _bn(in_planes) + _conv(in_planes, planes, 3) + _bn(planes)
      total += _conv(planes, planes, 3)
      if s != 1 or in_planes != planes:
        total += _conv(in_planes, planes, 1)
      in_planes = planes
  return total + _linear(512, num_classes)


def _reference_wrn_manifold_mixup(depth: int, k: int, num_classes: int) -> int:
  """manifold_mixup supervised/models/wide_resnet.py ``Wide_ResNet``.

  conv3x3 has bias=True (line 19): stem 3→16 (line 66); wide_basic lines 33–42:
  bn1, conv1 3×3 with bias, bn2, conv2 3×3 with bias, 1×1 shortcut with bias
  where stride ≠ 1 or the width changes; groups 16k/32k/64k (lines 64–69), final
  bn1 over 64k channels (line 70), linear 64k→K (line 71).
  """
  n = (depth - 4) // 6
  total = _conv(3, 16, 3, bias=True)
  in_planes = 16
  for planes, stride in zip((16 * k, 32 * k, 64 * k), (1, 2, 2), strict=True):
    for s in [stride] + [1] * (n - 1):
      total += _bn(in_planes) + _conv(in_planes, planes, 3, bias=True) + _bn(planes)
      total += _conv(planes, planes, 3, bias=True)
      if s != 1 or in_planes != planes:
        total += _conv(in_planes, planes, 1, bias=True)
      in_planes = planes
  return total + _bn(64 * k) + _linear(64 * k, num_classes)


def _reference_wrn_xternalz(depth: int, k: int, num_classes: int) -> int:
  """xternalz/WideResNet-pytorch wideresnet.py ``WideResNet``.

  Stem conv1 3→16 bias-free (line 53); BasicBlock lines 10–21: bn1, conv1 3×3,
  bn2, conv2 3×3, 1×1 convShortcut where the width changes (``equalInOut``),
  all bias-free; groups 16k/32k/64k (lines 48, 56–60), final bn1 (line 62),
  fc 64k→K (line 64).
  """
  n = (depth - 4) // 6
  total = _conv(3, 16, 3)
  in_planes = 16
  for planes in (16 * k, 32 * k, 64 * k):
    for _ in range(n):
      total += _bn(in_planes) + _conv(in_planes, planes, 3) + _bn(planes)
      total += _conv(planes, planes, 3)
      if in_planes != planes:
        total += _conv(in_planes, planes, 1)
      in_planes = planes
  return total + _bn(64 * k) + _linear(64 * k, num_classes)


REFERENCE_COUNTS = [
    ("preact_resnet18", {}, _reference_preact_resnet((2, 2, 2, 2), 10, stem_bn=False)),
    ("preact_resnet18", {"variant": "mixup_cifar10"},
     _reference_preact_resnet((2, 2, 2, 2), 10, stem_bn=True)),
    ("preact_resnet34", {}, _reference_preact_resnet((3, 4, 6, 3), 10, stem_bn=False)),
    ("preact_resnet34", {"variant": "mixup_cifar10"},
     _reference_preact_resnet((3, 4, 6, 3), 10, stem_bn=True)),
    # final_norm (in neither reference) adds one BatchNorm2d(512).
    ("preact_resnet18", {"final_norm": True},
     _reference_preact_resnet((2, 2, 2, 2), 10, stem_bn=False) + _bn(512)),
    ("wide_resnet28_10", {}, _reference_wrn_manifold_mixup(28, 10, 10)),
    ("wide_resnet28_10", {"variant": "xternalz"}, _reference_wrn_xternalz(28, 10, 10)),
]


@pytest.mark.parametrize("name, kwargs, expected", REFERENCE_COUNTS)
def test_parameter_counts_match_reference_structure(name, kwargs, expected):
  model = models.get_model(name, 10, **kwargs)
  assert _num_params(model, (1, 32, 32, 3)) == expected


@pytest.mark.parametrize("variant, depth, k", [("manifold_mixup", 10, 2), ("xternalz", 16, 4)])
def test_wrn_parameter_counts_other_sizes(variant, depth, k):
  reference = {"manifold_mixup": _reference_wrn_manifold_mixup,
               "xternalz": _reference_wrn_xternalz}[variant]
  model = models.WideResNet(depth=depth, widen_factor=k, num_classes=7, variant=variant)
  assert _num_params(model, (1, 32, 32, 3)) == reference(depth, k, 7)


def test_documented_parameter_counts():
  """The numbers the docstrings, the registry and the README state."""
  assert [expected for *_, expected in REFERENCE_COUNTS] == [
      11_171_146, 11_171_274, 21_279_306, 21_279_434, 11_172_170,
      36_489_290, 36_479_194]


def test_parameter_counts_small():
  assert _num_params(models.get_model("small_cnn", 10), (1, 8, 8, 1)) == 19_562
  assert _num_params(models.get_model("small_cnn", 10), (1, 32, 32, 3)) == 20_138
  # 2·64+64 + 64·64+64 + 64·2+2 + 2·2+2.
  assert _num_params(models.get_model("mlp", 2, features=(64, 64), bottleneck=2),
                     (1, 2)) == 4_488


def test_parameters_stay_float32_with_bfloat16():
  model = models.get_model("preact_resnet18", 10, dtype=jnp.bfloat16)
  variables = jax.eval_shape(model.init, jax.random.key(0),
                             jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
  dtypes = {v.dtype for v in jax.tree.leaves(variables)}
  assert dtypes == {jnp.dtype(jnp.float32)}
  out = jax.eval_shape(lambda v, x: model.apply(v, x), variables,
                       jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
  assert out.dtype == jnp.float32 and out.shape == (2, 10)


# --- Configuration -----------------------------------------------------------


def test_mix_layer_defaults():
  assert models.get_model("preact_resnet18", 10).mix_layers == (0, 1, 2)
  assert models.get_model("preact_resnet34", 10).eligible_layers == (0, 1, 2, 3, 4)
  assert models.get_model("wide_resnet28_10", 10).mix_layers == (0, 1, 2)
  assert models.get_model("wide_resnet28_10", 10).num_mix_layers == 4
  assert models.get_model("small_cnn", 10, features=(8, 8, 8)).mix_layers == (0, 1, 2, 3)
  model = models.get_model("mlp", 2, features=(8, 8), bottleneck=2)
  assert model.mix_layers == (0, 1, 2, 3)
  plan = _sample_plan(jax.random.key(0), 4, model.mix_layers)
  assert int(plan.layer) in model.mix_layers


@pytest.mark.parametrize("mix_layers", [(0, 5), (), (1, 1), (-1,)])
def test_invalid_mix_layers(mix_layers):
  with pytest.raises(ValueError, match="mix_layers"):
    models.get_model("preact_resnet18", 10, mix_layers=mix_layers)


@pytest.mark.parametrize("name, known", [
    ("preact_resnet18", "'manifold_mixup', 'mixup_cifar10'"),
    ("preact_resnet34", "'manifold_mixup', 'mixup_cifar10'"),
    ("wide_resnet28_10", "'manifold_mixup', 'xternalz'"),
])
def test_unknown_variant(name, known):
  with pytest.raises(ValueError, match=f"variant must be one of {known}, got 'resnet'"):
    models.get_model(name, 10, variant="resnet")


@pytest.mark.parametrize("name", ["preact_resnet18", "wide_resnet28_10"])
def test_unknown_init(name):
  with pytest.raises(ValueError, match="param_init must be one of 'he', 'pytorch', got 'xavier'"):
    models.get_model(name, 10, init="xavier")
  with pytest.raises(ValueError, match="not both"):
    models.get_model(name, 10, init="he", param_init="pytorch")
  assert models.get_model(name, 10, init="pytorch").param_init == "pytorch"
  assert models.get_model(name, 10).param_init == "he"


def test_unknown_model_name():
  with pytest.raises(ValueError, match="preact_resnet18.*wide_resnet28_10.*mlp"):
    models.get_model("resnet101", 10)
  assert set(models.list_models()) == {
      "preact_resnet18", "preact_resnet34", "wide_resnet28_10", "resnet18", "resnet50",
      "vit_s16", "small_cnn", "mlp"}


def test_invalid_wrn_depth():
  with pytest.raises(ValueError, match="6n"):
    models.WideResNet(depth=27)


@pytest.mark.parametrize("name, shape", [("small_cnn", (2, 8, 8, 1)), ("mlp", (2, 2))])
def test_integer_inputs_rejected(name, shape):
  model = models.get_model(name, 10)
  with pytest.raises(ValueError, match="normalise"):  # Raised while tracing init.
    jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(shape, jnp.uint8))


# --- Forward passes ----------------------------------------------------------


def test_shapes_and_batch_stats(case):
  model, variables, x, apply, _ = case
  batch = x.shape[0]
  logits, hidden, stats = apply(variables, x, None, train=False)
  chex.assert_shape(logits, (batch, model.num_classes))
  assert logits.dtype == jnp.float32
  assert len(hidden) == model.num_mix_layers
  chex.assert_trees_all_equal_shapes(hidden[0], x)
  logits, hidden, new_stats = apply(variables, x, _plan(model.mix_layers[-1], batch),
                                    train=True)
  chex.assert_shape(logits, (batch, model.num_classes))
  assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves((logits, hidden)))
  if "batch_stats" in variables:
    old = variables["batch_stats"]
    chex.assert_trees_all_equal(stats, old)  # Evaluation leaves them alone.
    chex.assert_trees_all_equal_shapes(old, new_stats)
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                           old, new_stats)
    assert all(jax.tree.leaves(changed))
  else:
    assert not stats and not new_stats


def test_plan_mixes_exactly_at_drawn_layer_without_retracing(case):
  model, variables, x, apply, traces = case
  batch = x.shape[0]
  # Layer -1 is never drawn by sample_plan: nothing mixes, same program.
  plain_logits, plain_hidden, _ = apply(variables, x, _plan(-1, batch), train=True)
  all_logits = []
  for k in model.mix_layers:
    logits, hidden, _ = apply(variables, x, _plan(k, batch), train=True)
    for j in range(k):  # Before the drawn layer nothing changes.
      np.testing.assert_array_equal(hidden[j], plain_hidden[j])
    # The drawn layer holds the blend of the unmixed activations, to rounding.
    assert_close_in_ulps(hidden[k], _exact_mix(plain_hidden[k]), BLEND_ULPS,
                         scale=plain_hidden[k])
    all_logits.append(logits)
  assert traces.count((True, False)) == 1  # One program for every layer.
  # Each drawn layer gives different logits (and differs from no mixing). A
  # linear bottleneck is the exception: mixing just before or just after it is
  # the same, since the layer in between is affine.
  if isinstance(model, models.MLP) and model.bottleneck is not None:
    all_logits.pop()
  all_logits.append(plain_logits)
  for a in range(len(all_logits)):
    for b in range(a):
      assert differ_beyond_rounding(all_logits[a], all_logits[b])


def test_input_plan_equals_mixing_first(case):
  """A plan at layer 0 is the same as mixing the input and running unmixed.

  Both sides start from bit-identical inputs: the plan's layer 0 must hold
  exactly what ``mix_images`` makes of ``x``. From there on the two programs
  (with and without a plan) compute the same network, and may only order its
  reductions differently.
  """
  model, variables, x, apply, _ = case
  plan = _plan(0, x.shape[0])
  mixed, hidden, _ = apply(variables, x, plan, train=False)
  mixed_input = _mix_images(plan.params, x)
  np.testing.assert_array_equal(hidden[0], mixed_input)
  first, _, _ = apply(variables, mixed_input, None, train=False)
  assert_close_in_ulps(mixed, first, NETWORK_ULPS)


def test_retrace_with_sample_plan():
  model = models.get_model("mlp", 3, features=(8, 8))
  x = _normal((4, 2))
  variables = numpy_variables(model, x)
  forward = jax.jit(model.apply)
  layers = set()
  for seed in range(12):
    plan = _sample_plan(jax.random.key(seed), 4, model.mix_layers)
    layers.add(int(plan.layer))
    forward(variables, x, plan)
  assert layers == {0, 1, 2}
  assert forward._cache_size() == 1


def test_layers_outside_mix_layers_never_mix():
  model = models.get_model("small_cnn", 10, features=(4, 4), mix_layers=(0, 2))
  x = _normal((4, 8, 8, 1))
  variables = numpy_variables(model, x)
  apply = jax.jit(model.apply)
  plain = apply(variables, x, _plan(-1, 4))
  np.testing.assert_array_equal(apply(variables, x, _plan(1, 4)), plain)
  assert not np.allclose(apply(variables, x, _plan(2, 4)), plain)


def test_cutmix_plan_at_input():
  model = models.get_model("small_cnn", 10, features=(4,))
  x = _normal((4, 8, 8, 1))
  variables = numpy_variables(model, x)
  apply = jax.jit(model.apply)
  params = _sample_cutmix(jax.random.key(2), 4, (8, 8))
  cut = mixjax.MixPlan.at_input(params)
  nowhere = cut.replace(layer=jnp.int32(-1))
  # CutMix only copies pixels, so both runs of this one program see bit-identical
  # inputs and compute the same logits.
  np.testing.assert_array_equal(apply(variables, x, cut),
                                apply(variables, _mix_images(params, x), nowhere))
  # Boxes are in input pixels: a CutMix plan at layer 1 changes nothing.
  np.testing.assert_array_equal(apply(variables, x, cut.replace(layer=jnp.int32(1))),
                                apply(variables, x, nowhere))


def test_mlp_bottleneck_hidden_for_plotting():
  model = models.get_model("mlp", 2, features=(8, 8), bottleneck=2)
  x = _normal((5, 2))
  variables = numpy_variables(model, x)
  # One program returns the hidden layers and Flax's captured intermediates.
  (logits, hidden), state = jax.jit(functools.partial(
      model.apply, return_hidden=True, capture_intermediates=True,
      mutable="intermediates"))(variables, x)
  chex.assert_shape(logits, (5, 2))
  chex.assert_shape(hidden, ((5, 2), (5, 8), (5, 8), (5, 2)))
  # Linear bottleneck by default: the head applied to hidden[-1] gives the logits.
  head = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"]["head"])
  h = np.asarray(hidden[-1], np.float64)
  # A float32 dot of n = 2 terms plus a bias rounds n + 1 times: within
  # (n + 1)·eps·(|h|·|W| + |b|) of the float64 value.
  bound = 3 * np.finfo(np.float32).eps * (np.abs(h) @ np.abs(head["kernel"]) +
                                          np.abs(head["bias"]))
  assert np.all(np.abs(h @ head["kernel"] + head["bias"] - logits) <= bound)
  assert bool(np.any(np.asarray(hidden[-1]) < 0))
  # Flax's capture_intermediates sees the same bottleneck (the same program, so
  # within the 16 ulps that two programs of these three layers were allowed).
  assert_close_in_ulps(state["intermediates"]["dense3"]["__call__"][0], hidden[-1], 16)


def test_bfloat16_forward():
  model = models.get_model("small_cnn", 10, features=(4, 4), dtype=jnp.bfloat16)
  x = _normal((4, 8, 8, 1))
  variables = numpy_variables(model, x)
  assert {v.dtype for v in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  apply = jax.jit(functools.partial(model.apply, train=True, return_hidden=True,
                                    mutable="batch_stats"))
  (logits, hidden), _ = apply(variables, x, _plan(1, 4))
  assert logits.dtype == jnp.float32
  assert hidden[1].dtype == jnp.bfloat16
  assert np.isfinite(np.asarray(logits)).all()


def test_cross_device_batch_norm_axis_name():
  x = _normal((2, 4, 8, 8, 1))
  model = models.get_model("small_cnn", 10, features=(4,), axis_name="batch")
  local = models.get_model("small_cnn", 10, features=(4,))
  variables = numpy_variables(local, x[0])

  def stats(model, x):
    return model.apply(variables, x, train=True, mutable="batch_stats")[1]

  @jax.jit
  def run(x):
    per_replica = jax.vmap(functools.partial(stats, model), axis_name="batch")(x)
    whole = x.reshape((8, 8, 8, 1))
    _, captured = local.apply(
        variables, whole, capture_intermediates=lambda mdl, _: mdl.name == "conv1",
        mutable="intermediates")
    return per_replica, stats(local, whole), captured

  per_replica, whole, captured = run(x)
  activations = captured["intermediates"]["conv1"]["__call__"][0]
  # Statistics are averaged over the axis: every replica holds those of the
  # whole batch.
  mean = per_replica["batch_stats"]["bn1"]["mean"]
  np.testing.assert_array_equal(mean[0], mean[1])
  # The whole batch's mean sums the same 512 values per channel in another order:
  # within 512 ulps of the largest activation (the running mean keeps 0.1 of it).
  assert_close_in_ulps(mean[0], whole["batch_stats"]["bn1"]["mean"], 512,
                       scale=0.1 * np.abs(activations).max())


def test_plan_drawing_a_layer_the_model_does_not_mix_at_is_an_error():
  model = models.get_model("small_cnn", 10, mix_layers=(0, 1))
  x = np.zeros((4, 8, 8, 1), np.float32)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  # The check is at trace time, on the plan's static layers: abstract plans suffice.
  plan = jax.eval_shape(lambda k: mixjax.sample_plan(k, 4, (0, 1, 2)), jax.random.key(0))
  assert plan.layers == (0, 1, 2)
  with pytest.raises(ValueError, match=r"may draw layers \[2\].*mix_layers=\(0, 1\)"):
    jax.eval_shape(lambda v, p: model.apply(v, x, plan=p), variables, plan)
  # Plans drawn from the model's own layers are fine.
  plan = jax.eval_shape(lambda k: mixjax.sample_plan(k, 4, model.mix_layers),
                        jax.random.key(0))
  jax.eval_shape(lambda v, p: model.apply(v, x, plan=p), variables, plan)


# --- Reference structure -----------------------------------------------------


def _param_tree(model: nn.Module) -> dict:
  return jax.eval_shape(model.init, jax.random.key(0),
                        jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))["params"]


def test_preact_variants_differ_in_stem():
  """mixup-cifar10's ResNet has bn1 after the stem conv (models/resnet.py:136)."""
  mixup = _param_tree(models.get_model("preact_resnet18", 10, variant="mixup_cifar10"))
  manifold = _param_tree(models.get_model("preact_resnet18", 10))
  assert mixup["stem_bn"]["scale"].shape == (64,)
  assert "stem_bn" not in manifold
  assert set(mixup) - set(manifold) == {"stem_bn"}


def _captured(block: nn.Module):
  """``(variables, x) -> (out, sub-module outputs)``: the block's output and its
  sub-modules' outputs, in one program (compiled once per block and shape)."""

  @jax.jit
  def run(variables, x):
    out, state = block.apply(variables, x, capture_intermediates=True,
                             mutable="intermediates")
    return out, {k: v["__call__"][0] for k, v in state["intermediates"].items()
                 if k != "__call__"}

  return run


def _zero_convs(variables: dict, names: tuple[str, ...]) -> dict:
  params = dict(variables["params"])
  for name in names:
    params[name] = jax.tree.map(lambda a: jnp.asarray(np.zeros(a.shape, a.dtype)),
                                params[name])
  return {**variables, "params": params}


@pytest.mark.parametrize("preact_identity", [False, True])
def test_preact_block_identity_shortcut(preact_identity):
  """With both convs zeroed, the block's output is its identity shortcut.

  manifold_mixup's PreActBlock adds ``x`` (preresnet.py:31); mixup-cifar10's
  adds ``self.shortcut(out)``, an empty Sequential of ``out = relu(bn1(x))``
  (models/resnet.py:65-66).
  """
  block = models._common.PreActBlock(4, preact_identity=preact_identity)
  x = _normal((2, 4, 4, 4))
  variables = _zero_convs(numpy_variables(block, x), ("conv1", "conv2"))
  out, inner = _captured(block)(variables, x)
  expected = np.maximum(inner["bn1"], 0) if preact_identity else x
  np.testing.assert_array_equal(out, expected)
  assert bool(np.any(np.asarray(x) < 0))  # So the two differ.


def _identity_projection(variables: dict, channels: int) -> dict:
  params = dict(variables["params"])
  params["shortcut"] = {**params["shortcut"],
                        "kernel": jnp.asarray(np.eye(channels, dtype=np.float32)[None, None])}
  return {**variables, "params": params}


@pytest.mark.parametrize("variant", ["manifold_mixup", "xternalz"])
def test_wrn_block_structure(variant):
  """Stride placement, projection source and conv biases of the two WRN blocks.

  manifold_mixup's wide_basic strides its second conv (wide_resnet.py:36) and
  projects the raw input with a biased 1×1 conv (lines 41, 47); xternalz's
  BasicBlock strides its first conv (wideresnet.py:12) and projects the
  pre-activated input (lines 23-24, 31) without biases.
  """
  if variant == "manifold_mixup":
    block = models.WideBasic(4, stride=2)
  else:
    block = models._common.PreActBlock(4, stride=2)
  x = _normal((2, 8, 8, 4))
  variables = numpy_variables(block, x)
  biases = {name for name, p in variables["params"].items()
            if not name.startswith("bn") and "bias" in p}
  captured = _captured(block)  # One program for both sets of weights.
  _, inner = captured(variables, x)
  if variant == "manifold_mixup":
    assert biases == {"conv1", "conv2", "shortcut"}
    assert inner["conv1"].shape == (2, 8, 8, 4) and inner["conv2"].shape == (2, 4, 4, 4)
  else:
    assert not biases
    assert inner["conv1"].shape == (2, 4, 4, 4) and inner["conv2"].shape == (2, 4, 4, 4)
  # An identity 1×1 projection and zero convs: the output is the strided source.
  variables = _identity_projection(_zero_convs(variables, ("conv1", "conv2")), 4)
  out, inner = captured(variables, x)
  source = x if variant == "manifold_mixup" else np.maximum(inner["bn1"], 0)
  np.testing.assert_array_equal(out, np.asarray(source)[:, ::2, ::2])


def _dropout_key(seed: int) -> jax.Array:
  return jax.random.key(seed, impl="rbg")


@functools.cache
def _wrn_train_step(variant: str):
  """``step(key) -> (logits, hidden[-1], batch_stats)``: one training forward of a
  small WRN with dropout, jitted; the two tests below share its one program per
  variant. Pass "rbg" keys (:func:`_dropout_key`): threefry's unrolled hashes for
  the dropout masks would take 4x as long to compile as the rest of the program."""
  model = models.WideResNet(depth=10, widen_factor=1, num_classes=3, dropout_rate=0.3,
                            variant=variant)
  x = _normal((4, 8, 8, 3))
  variables = numpy_variables(model, x)

  @jax.jit
  def step(key):
    (logits, hidden), updates = model.apply(
        variables, x, train=True, return_hidden=True, mutable="batch_stats",
        rngs={"dropout": key})
    return logits, hidden[-1], updates["batch_stats"]

  return step


@pytest.mark.parametrize("variant, torch_momentum", [("manifold_mixup", 0.9),
                                                     ("xternalz", 0.1)])
def test_wrn_final_batch_norm_momentum(variant, torch_momentum):
  """manifold_mixup's final BatchNorm2d has momentum=0.9 (wide_resnet.py:70).

  From fresh statistics (mean 0), one training step leaves the running mean at
  ``torch_momentum`` times the batch mean of the last group's output (the final
  norm's input, after any dropout inside the blocks).
  """
  _, last, stats = _wrn_train_step(variant)(_dropout_key(3))
  batch_mean = np.asarray(last, np.float64).mean(axis=(0, 1, 2))
  # Flax sums the 4·2·2 = 16 values per channel in its own order: within 16 ulps
  # of the largest activation.
  assert_close_in_ulps(stats["final_bn"]["mean"],
                       torch_momentum * batch_mean, 16, scale=np.abs(last).max())


@pytest.mark.parametrize("variant", ["manifold_mixup", "xternalz"])
def test_wrn_dropout_in_training_both_variants(variant):
  step = _wrn_train_step(variant)
  assert not np.allclose(step(_dropout_key(3))[0], step(_dropout_key(4))[0])


# --- Initialisation ----------------------------------------------------------


def _fan_in(kernel_shape: tuple[int, ...]) -> int:
  """PyTorch's fan-in of a Flax kernel [k_h, k_w, C_in, C_out] or [C_in, C_out]."""
  return math.prod(kernel_shape[:-1])


def _classify(model: nn.Module, x: chex.Array, expected) -> dict[str, list[np.ndarray]]:
  """Every parameter, standardised and grouped by the distribution it should have.

  ``expected(module_path, leaf_name)`` names the distribution: ``"uniform"``
  or ``"uniform_bias"`` (U(±1/√fan_in) with the fan-in of the module's kernel,
  standardised to U(−1, 1) by ×√fan_in; biases pooled apart, so that a bias
  drawn with the wrong fan-in is not hidden among the kernels), ``"he"`` (N(0, 2/fan_out),
  standardised to N(0, 1)), ``"zeros"``, ``"ones"`` or None (not checked).
  """
  # An "rbg" key: the initialisers draw through XLA's RngBitGenerator, which compiles
  # in about a third of the time of threefry's unrolled hashes (~60, one per
  # parameter) and gives the same distributions, which is all this checks.
  params = jax.jit(model.init)(jax.random.key(42, impl="rbg"), x)["params"]
  groups: dict[str, list[np.ndarray]] = {}

  def visit(path: tuple[str, ...], tree: dict) -> None:
    if "kernel" not in tree and "scale" not in tree:
      for name, sub in tree.items():
        visit(path + (name,), sub)
      return
    for leaf_name, leaf in tree.items():
      kind = expected(path, leaf_name)
      value = np.asarray(leaf, np.float64)
      if kind in ("uniform", "uniform_bias"):
        value = value * math.sqrt(_fan_in(tree["kernel"].shape))
      elif kind == "he":
        value = value / math.sqrt(2 / (math.prod(leaf.shape[:-2]) * leaf.shape[-1]))
      if kind is not None:
        groups.setdefault(kind, []).append(value.ravel())

  visit((), params)
  return {kind: np.concatenate(values) for kind, values in groups.items()}


def _is_bn(path: tuple[str, ...]) -> bool:
  return "bn" in path[-1]


def _pytorch_default(path, leaf):
  """Neither reference re-initialises: PyTorch's defaults everywhere."""
  if _is_bn(path):
    return "ones" if leaf == "scale" else "zeros"
  return "uniform" if leaf == "kernel" else "uniform_bias"


def _xternalz(path, leaf):
  """wideresnet.py:67-74: He-normal fan-out convs, BN 1/0, zero fc bias."""
  if _is_bn(path):
    return "ones" if leaf == "scale" else "zeros"
  if path[-1] == "head":
    return "uniform" if leaf == "kernel" else "zeros"
  return "he"


def _he(path, leaf):
  """init="he": He-normal fan-out convs, zero conv biases (the head is Flax's)."""
  if _is_bn(path):
    return "ones" if leaf == "scale" else "zeros"
  if path[-1] == "head":
    return None
  return "he" if leaf == "kernel" else "zeros"


INIT_CASES = {
    "preact_mixup_cifar10_pytorch": (lambda: models.PreActResNet(
        stage_sizes=(1, 1), num_filters=16, variant="mixup_cifar10",
        param_init="pytorch"), _pytorch_default),
    "preact_manifold_mixup_pytorch": (lambda: models.PreActResNet(
        stage_sizes=(1, 1), num_filters=16, param_init="pytorch"), _pytorch_default),
    "wrn_manifold_mixup_pytorch": (lambda: models.WideResNet(
        depth=10, widen_factor=2, param_init="pytorch"), _pytorch_default),
    "wrn_xternalz_pytorch": (lambda: models.WideResNet(
        depth=10, widen_factor=2, variant="xternalz", param_init="pytorch"), _xternalz),
    "wrn_manifold_mixup_he": (lambda: models.WideResNet(depth=10, widen_factor=2), _he),
}


@pytest.mark.parametrize("case_name", list(INIT_CASES))
def test_initial_parameter_distributions(case_name):
  """Bounds, then a Kolmogorov–Smirnov test of the pooled standardised values.

  PyTorch's ``nn.Conv2d`` / ``nn.Linear.reset_parameters``: ``kaiming_uniform_``
  with a = √5 gives U(±1/√fan_in) for the weight, and the bias is drawn from the
  same bound. The seed (an "rbg" key) is fixed, so the test is deterministic; at α = 10⁻³ a
  correct initialiser passes with probability 0.999 for any seed, while a
  wrong scale (e.g. He's √6 bound) gives p ≈ 0.
  """
  make, expected = INIT_CASES[case_name]
  groups = _classify(make(), np.zeros((1, 16, 16, 3), np.float32), expected)
  for kind in ("uniform", "uniform_bias"):
    if kind in groups:
      u = groups[kind]
      # Flax scales U(−1, 1) by the float32 bound: one rounding of 1 ulp.
      assert np.abs(u).max() <= 1 + 2 * F32_EPS, kind
      # The bound is reached, not a narrower one: for n draws of U(−1, 1),
      # P(max|u| < 1 − 10/n) = (1 − 10/n)ⁿ < e⁻¹⁰.
      assert np.abs(u).max() > 1 - 10 / u.size, kind
      assert scipy.stats.kstest(u, scipy.stats.uniform(-1, 2).cdf).pvalue > 1e-3, kind
  if "he" in groups:
    assert scipy.stats.kstest(groups["he"], scipy.stats.norm.cdf).pvalue > 1e-3
  np.testing.assert_array_equal(groups.get("zeros", 0.0), 0.0)
  np.testing.assert_array_equal(groups.get("ones", 1.0), 1.0)
  assert set(groups) >= {"ones", "zeros"}
  if expected is _pytorch_default:
    assert "uniform_bias" in groups
