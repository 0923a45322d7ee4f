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

import mixjax
from mixjax import models
from tests.tolerances import NETWORK_ULPS, assert_close_in_ulps, differ_beyond_rounding

LAM = 0.3
# A blend λ·a + (1 − λ)·b in float32 (1 − λ is exact for λ in [¼, 1]) rounds each
# product and the sum: at most 1.5 ulps of max(|a|, |b|), whatever the order or FMA.
BLEND_ULPS = 2


def _num_params(model: nn.Module, shape: tuple[int, ...]) -> int:
  """Trainable parameters (the 'params' collection), without computing anything."""
  variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape))
  return sum(math.prod(v.shape) for v in jax.tree.leaves(variables["params"]))


def _init(model: nn.Module, x: chex.Array) -> dict:
  """Variables for ``model`` without running ``model.init``'s random numbers.

  Initialisers compile slowly on CPU (several seconds for a ResNet), so the
  forward tests fill the structure from ``eval_shape`` with NumPy: He-scaled
  normal kernels, unit scales, zero biases, fresh BatchNorm statistics. The real
  ``init`` is exercised by the counts (under ``eval_shape``) and the small models.
  """
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = path[-1].key
    if name == "kernel":
      fan_in = math.prod(leaf.shape[:-1])
      return jnp.asarray(rng.standard_normal(leaf.shape) * math.sqrt(2 / fan_in),
                         leaf.dtype)
    if name in ("scale", "var"):
      return jnp.ones(leaf.shape, leaf.dtype)
    return jnp.zeros(leaf.shape, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _plan(layer: int, batch: int) -> mixjax.MixPlan:
  """A deterministic Mixup plan at ``layer``: λ = 0.3, partners reversed."""
  lam = jnp.full((batch,), LAM, jnp.float32)
  params = mixjax.MixParams(perm=jnp.arange(batch, dtype=jnp.int32)[::-1],
                            label_weight=lam, lam=lam)
  return mixjax.MixPlan(layer=jnp.int32(layer), params=params)


def _exact_mix(hidden: chex.Array) -> np.ndarray:
  """What ``_plan(k)`` makes of ``hidden``, in float64 with λ as float32 holds it."""
  lam = float(np.float32(LAM))
  hidden = np.asarray(hidden, np.float64)
  return lam * hidden + (1 - lam) * hidden[::-1]


# Small instances of every architecture, each with all its layers eligible.
FORWARD_CASES = {
    "preact_resnet18": (lambda: models.get_model(
        "preact_resnet18", 10, mix_layers=(0, 1, 2, 3, 4)), (4, 16, 16, 3)),
    "wide_resnet_10_2": (lambda: models.WideResNet(
        depth=10, widen_factor=2, num_classes=10, mix_layers=(0, 1, 2, 3)),
                         (4, 16, 16, 3)),
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
  x = jax.random.normal(jax.random.key(1), shape, jnp.float32)
  variables = _init(model, x)
  traces = []

  @functools.partial(jax.jit, static_argnames="train")
  def apply(variables, x, plan, train):
    traces.append((train, plan is None))
    (logits, hidden), updates = model.apply(
        variables, x, plan, train=train, return_hidden=True, mutable="batch_stats")
    return logits, hidden, updates.get("batch_stats")

  return model, variables, x, apply, traces


# --- Parameter counts --------------------------------------------------------


@pytest.mark.parametrize("name, kwargs, expected", [
    ("preact_resnet18", {}, 11_171_146),
    ("preact_resnet18", {"final_norm": True}, 11_171_146 + 1_024),
    ("preact_resnet34", {}, 21_279_306),
    ("preact_resnet34", {"final_norm": True}, 21_279_306 + 1_024),
    ("wide_resnet28_10", {}, 36_479_194),
])
def test_parameter_counts(name, kwargs, expected):
  model = models.get_model(name, 10, **kwargs)
  assert _num_params(model, (1, 32, 32, 3)) == expected


def test_parameter_counts_small():
  assert _num_params(models.get_model("small_cnn", 10), (1, 8, 8, 1)) == 19_562
  assert _num_params(models.get_model("small_cnn", 10), (1, 32, 32, 3)) == 20_138
  # 2·64+64 + 64·64+64 + 64·2+2 + 2·2+2.
  assert _num_params(models.get_model("mlp", 2, features=(64, 64), bottleneck=2),
                     (1, 2)) == 4_488


def test_parameters_stay_float32_with_bfloat16():
  model = models.get_model("preact_resnet18", 10, dtype=jnp.bfloat16)
  variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  dtypes = {v.dtype for v in jax.tree.leaves(variables)}
  assert dtypes == {jnp.dtype(jnp.float32)}
  out = jax.eval_shape(lambda v, x: model.apply(v, x), variables,
                       jnp.zeros((2, 32, 32, 3)))
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
  plan = mixjax.sample_plan(jax.random.key(0), 4, model.mix_layers)
  assert int(plan.layer) in model.mix_layers


@pytest.mark.parametrize("mix_layers", [(0, 5), (), (1, 1), (-1,)])
def test_invalid_mix_layers(mix_layers):
  with pytest.raises(ValueError, match="mix_layers"):
    models.get_model("preact_resnet18", 10, mix_layers=mix_layers)


def test_unknown_model_name():
  with pytest.raises(ValueError, match="preact_resnet18.*wide_resnet28_10.*mlp"):
    models.get_model("resnet50", 10)
  assert set(models.list_models()) == {
      "preact_resnet18", "preact_resnet34", "wide_resnet28_10", "small_cnn", "mlp"}


def test_invalid_wrn_depth():
  with pytest.raises(ValueError, match="6n"):
    models.WideResNet(depth=27)


@pytest.mark.parametrize("name, shape", [("small_cnn", (2, 8, 8, 1)), ("mlp", (2, 2))])
def test_integer_inputs_rejected(name, shape):
  model = models.get_model(name, 10)
  with pytest.raises(ValueError, match="normalise"):
    model.init(jax.random.key(0), jnp.zeros(shape, jnp.uint8))


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
  chex.assert_tree_all_finite((logits, hidden))
  if "batch_stats" in variables:
    old = variables["batch_stats"]
    chex.assert_trees_all_equal(stats, old)  # Evaluation leaves them alone.
    chex.assert_trees_all_equal_shapes(old, new_stats)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), old, new_stats)
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
  mixed_input = jax.jit(mixjax.mix_images)(plan.params, x)
  np.testing.assert_array_equal(hidden[0], mixed_input)
  first, _, _ = apply(variables, mixed_input, None, train=False)
  assert_close_in_ulps(mixed, first, NETWORK_ULPS)


def test_retrace_with_sample_plan():
  model = models.get_model("mlp", 3, features=(8, 8))
  x = jax.random.normal(jax.random.key(1), (4, 2))
  variables = model.init(jax.random.key(0), x)
  forward = jax.jit(model.apply)
  layers = set()
  for seed in range(12):
    plan = mixjax.sample_plan(jax.random.key(seed), 4, model.mix_layers)
    layers.add(int(plan.layer))
    forward(variables, x, plan)
  assert layers == {0, 1, 2}
  assert forward._cache_size() == 1


def test_layers_outside_mix_layers_never_mix():
  model = models.get_model("small_cnn", 10, features=(4, 4), mix_layers=(0, 2))
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
  variables = _init(model, x)
  apply = jax.jit(model.apply)
  plain = apply(variables, x, _plan(-1, 4))
  np.testing.assert_array_equal(apply(variables, x, _plan(1, 4)), plain)
  assert not np.allclose(apply(variables, x, _plan(2, 4)), plain)


def test_cutmix_plan_at_input():
  model = models.get_model("small_cnn", 10, features=(4,))
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
  variables = jax.jit(model.init)(jax.random.key(0), x)
  apply = jax.jit(model.apply)
  params = mixjax.sample_cutmix(jax.random.key(2), 4, (8, 8))
  cut = mixjax.MixPlan.at_input(params)
  nowhere = cut.replace(layer=jnp.int32(-1))
  # CutMix only copies pixels, so both runs of this one program see bit-identical
  # inputs and compute the same logits.
  np.testing.assert_array_equal(apply(variables, x, cut),
                                apply(variables, mixjax.mix_images(params, x), nowhere))
  # Boxes are in input pixels: a CutMix plan at layer 1 changes nothing.
  np.testing.assert_array_equal(apply(variables, x, cut.replace(layer=jnp.int32(1))),
                                apply(variables, x, nowhere))


def test_mlp_bottleneck_hidden_for_plotting():
  model = models.get_model("mlp", 2, features=(8, 8), bottleneck=2)
  x = jax.random.normal(jax.random.key(1), (5, 2))
  variables = model.init(jax.random.key(0), x)
  logits, hidden = jax.jit(functools.partial(model.apply, return_hidden=True))(
      variables, x)
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
  assert bool(jnp.any(hidden[-1] < 0))
  # Flax's capture_intermediates sees the same bottleneck.
  _, state = jax.jit(functools.partial(
      model.apply, capture_intermediates=True, mutable="intermediates"))(variables, x)
  # Another program (it also captures intermediates) of the same three layers.
  assert_close_in_ulps(state["intermediates"]["dense3"]["__call__"][0], hidden[-1], 16)


def test_bfloat16_forward():
  model = models.get_model("small_cnn", 10, features=(4, 4), dtype=jnp.bfloat16)
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
  variables = _init(model, x)
  assert {v.dtype for v in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  apply = jax.jit(functools.partial(model.apply, train=True, return_hidden=True,
                                    mutable="batch_stats"))
  (logits, hidden), _ = apply(variables, x, _plan(1, 4))
  assert logits.dtype == jnp.float32
  assert hidden[1].dtype == jnp.bfloat16
  chex.assert_tree_all_finite(logits)


def test_cross_device_batch_norm_axis_name():
  x = jax.random.normal(jax.random.key(1), (2, 4, 8, 8, 1))
  model = models.get_model("small_cnn", 10, features=(4,), axis_name="batch")
  local = models.get_model("small_cnn", 10, features=(4,))
  variables = _init(local, x[0])

  def stats(model, x):
    return model.apply(variables, x, train=True, mutable="batch_stats")[1]

  @jax.jit
  def run(x):
    per_replica = jax.vmap(functools.partial(stats, model), axis_name="batch")(x)
    return per_replica, stats(local, x.reshape((8, 8, 8, 1)))

  per_replica, whole = run(x)
  _, captured = jax.jit(functools.partial(
      local.apply, capture_intermediates=lambda mdl, _: mdl.name == "conv1",
      mutable="intermediates"))(variables, x.reshape((8, 8, 8, 1)))
  activations = captured["intermediates"]["conv1"]["__call__"][0]
  # Statistics are averaged over the axis: every replica holds those of the
  # whole batch.
  mean = per_replica["batch_stats"]["bn1"]["mean"]
  np.testing.assert_array_equal(mean[0], mean[1])
  # The whole batch's mean sums the same 512 values per channel in another order:
  # within 512 ulps of the largest activation (the running mean keeps 0.1 of it).
  assert_close_in_ulps(mean[0], whole["batch_stats"]["bn1"]["mean"], 512,
                       scale=0.1 * np.abs(activations).max())


def test_wrn_dropout_in_training():
  model = models.WideResNet(depth=10, widen_factor=1, num_classes=3, dropout_rate=0.3)
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))

  @jax.jit
  def train_logits(variables, key):
    return model.apply(variables, x, train=True, mutable="batch_stats",
                       rngs={"dropout": key})[0]

  variables = _init(model, x)
  a = train_logits(variables, jax.random.key(3))
  b = train_logits(variables, jax.random.key(4))
  chex.assert_shape(a, (2, 3))
  assert not np.allclose(a, b)


def test_plan_drawing_a_layer_the_model_does_not_mix_at_is_an_error():
  model = models.get_model("small_cnn", 10, mix_layers=(0, 1))
  x = jnp.zeros((4, 8, 8, 1))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  plan = mixjax.sample_plan(jax.random.key(0), 4, (0, 1, 2))
  with pytest.raises(ValueError, match=r"may draw layers \[2\].*mix_layers=\(0, 1\)"):
    jax.eval_shape(lambda v: model.apply(v, x, plan=plan), variables)
  # Plans drawn from the model's own layers are fine.
  plan = mixjax.sample_plan(jax.random.key(0), 4, model.mix_layers)
  jax.eval_shape(lambda v: model.apply(v, x, plan=plan), variables)
