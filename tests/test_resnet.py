"""Tests for mixjax.models.resnet: torchvision's ResNet-18 / ResNet-50 layout.

Compiling a full ResNet on this CPU takes seconds, so: the counts, shapes and
dtypes are checked with ``jax.eval_shape`` (nothing compiles), ResNet-50 is never
compiled as a forward pass, ResNet-18 compiles one training forward that every
mix layer shares, and the initial values come from programs whose forward pass
XLA removes as dead code (only the parameters are returned).
"""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import mixjax
from mixjax import models
from tests.model_variables import numpy_variables
from tests.plans import plans_for_every_layer
from tests.tolerances import F32_EPS, assert_close_in_ulps, differ_beyond_rounding

# A blend λ·a + (1 − λ)·b in float32 rounds 1 − λ, each product and the sum: at most
# 2 ulps of max(|a|, |b|), whatever the order or FMA (as in tests/test_models.py).
BLEND_ULPS = 2


@functools.cache
def _variable_shapes(name: str, num_classes: int = 1000, size: int = 224, **kwargs) -> dict:
  """``get_model(name, num_classes, **kwargs)``'s variables for ``[1, size, size, 3]``
  images, as shapes only (nothing computed or compiled; traced once per test module)."""
  model = models.get_model(name, num_classes, **kwargs)
  return jax.eval_shape(model.init, jax.random.key(0),
                        jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))


def _num_params(name: str, num_classes: int = 1000, size: int = 224) -> int:
  """Trainable parameters (the 'params' collection), without computing anything."""
  params = _variable_shapes(name, num_classes, size)["params"]
  return sum(math.prod(v.shape) for v in jax.tree.leaves(params))


# --- Parameter counts --------------------------------------------------------
# Derived here from torchvision's layer list (torchvision/models/resnet.py), not
# from mixjax's modules: Conv2d has C_in·C_out·k² weights (all bias=False there),
# BatchNorm2d 2·C (weight, bias), Linear C_in·C_out + C_out.


def _conv(cin: int, cout: int, k: int) -> int:
  return cin * cout * k * k


def _bn(c: int) -> int:
  return 2 * c


def _linear(cin: int, cout: int) -> int:
  return cin * cout + cout


def _reference_torchvision_resnet(block: str, layers, num_classes: int) -> int:
  """torchvision's ``ResNet(block, layers, num_classes)``.

  ``conv1`` 3→64 7×7 and ``bn1`` (ResNet.__init__); ``_make_layer`` for planes
  64/128/256/512, strides 1/2/2/2, with a ``downsample`` (conv1x1 + BN) in a
  block whose stride ≠ 1 or whose ``inplanes ≠ planes·expansion``;
  ``BasicBlock`` (expansion 1): conv3x3, bn1, conv3x3, bn2; ``Bottleneck``
  (expansion 4, width = planes): conv1x1, bn1, conv3x3, bn2, conv1x1 to
  4·planes, bn3; ``fc`` 512·expansion → K.
  """
  expansion = {"basic": 1, "bottleneck": 4}[block]
  total = _conv(3, 64, 7) + _bn(64)
  inplanes = 64
  for planes, n, stride in zip((64, 128, 256, 512), layers, (1, 2, 2, 2), strict=True):
    for s in [stride] + [1] * (n - 1):
      if block == "basic":
        total += _conv(inplanes, planes, 3) + _bn(planes)
        total += _conv(planes, planes, 3) + _bn(planes)
      else:
        total += _conv(inplanes, planes, 1) + _bn(planes)
        total += _conv(planes, planes, 3) + _bn(planes)
        total += _conv(planes, planes * 4, 1) + _bn(planes * 4)
      if s != 1 or inplanes != planes * expansion:
        total += _conv(inplanes, planes * expansion, 1) + _bn(planes * expansion)
      inplanes = planes * expansion
  return total + _linear(512 * expansion, num_classes)


REFERENCE_COUNTS = [
    ("resnet18", 1000, _reference_torchvision_resnet("basic", (2, 2, 2, 2), 1000)),
    ("resnet50", 1000, _reference_torchvision_resnet("bottleneck", (3, 4, 6, 3), 1000)),
    ("resnet18", 10, _reference_torchvision_resnet("basic", (2, 2, 2, 2), 10)),
    ("resnet50", 10, _reference_torchvision_resnet("bottleneck", (3, 4, 6, 3), 10)),
]


@pytest.mark.parametrize("name, num_classes, expected", REFERENCE_COUNTS)
def test_parameter_counts_match_torchvision(name, num_classes, expected):
  assert _num_params(name, num_classes) == expected


def test_documented_parameter_counts():
  """torchvision's numbers (its model zoo's "num_params"), as the docs state them."""
  assert [expected for *_, expected in REFERENCE_COUNTS[:2]] == [11_689_512, 25_557_032]
  for factory, expected in [(models.resnet18, 11_689_512), (models.resnet50, 25_557_032)]:
    assert factory().num_classes == 1000  # torchvision's default.
    assert _num_params(factory.__name__) == expected
  # The count does not depend on the image size (global average pool).
  assert _num_params("resnet18", 1000, size=32) == 11_689_512


# --- Structure (shapes only) -------------------------------------------------


@pytest.mark.parametrize("name, widths", [("resnet18", (64, 128, 256, 512)),
                                          ("resnet50", (256, 512, 1024, 2048))])
def test_stage_shapes_on_224(name, widths):
  """Stem /2 and max-pool /2 give 56×56 before stage 1; stages 2–4 halve it to 7×7."""
  model = models.get_model(name, 1000)
  x = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32)
  variables = _variable_shapes(name)
  (logits, hidden), state = jax.eval_shape(
      functools.partial(model.apply, return_hidden=True, capture_intermediates=True,
                        mutable="intermediates"), variables, x)
  assert logits.shape == (2, 1000)
  assert [h.shape for h in hidden] == [
      (2, 224, 224, 3), (2, 56, 56, widths[0]), (2, 28, 28, widths[1]),
      (2, 14, 14, widths[2]), (2, 7, 7, widths[3])]
  inner = state["intermediates"]
  assert inner["stem"]["__call__"][0].shape == (2, 112, 112, 64)
  if name == "resnet50":
    # torchvision V1.5: the first bottleneck of stage 2 strides its 3×3 conv.
    block = inner["stage2_block0"]
    assert block["conv1"]["__call__"][0].shape == (2, 56, 56, 128)
    assert block["conv2"]["__call__"][0].shape == (2, 28, 28, 128)
    assert block["conv3"]["__call__"][0].shape == (2, 28, 28, 512)
    assert block["shortcut"]["__call__"][0].shape == (2, 28, 28, 512)


def test_parameter_layout():
  """Bias-free convs, a projection (conv + BN) exactly where torchvision has a
  ``downsample``, 7×7 stem, head over 512·expansion channels."""
  for name, block_names, last_bn in [("resnet18", ("conv1", "bn1", "conv2", "bn2"), "bn2"),
                                     ("resnet50", ("conv1", "bn1", "conv2", "bn2", "conv3",
                                                   "bn3"), "bn3")]:
    params = _variable_shapes(name)["params"]
    stage_sizes = (2, 2, 2, 2) if name == "resnet18" else (3, 4, 6, 3)
    blocks = {f"stage{i + 1}_block{j}" for i, n in enumerate(stage_sizes) for j in range(n)}
    assert set(params) == blocks | {"stem", "stem_bn", "head"}
    assert params["stem"]["kernel"].shape == (7, 7, 3, 64) and set(params["stem"]) == {"kernel"}
    for block in blocks:
      # ResNet-18's stage 1 keeps 64 channels: no projection; ResNet-50's first
      # block widens 64 → 256, so it projects (torchvision's downsample).
      projects = block.endswith("block0") and (block != "stage1_block0" or name == "resnet50")
      expected = set(block_names) | ({"shortcut", "shortcut_bn"} if projects else set())
      assert set(params[block]) == expected, block
      assert all(set(params[block][c]) == {"kernel"} for c in expected if "conv" in c or
                 c == "shortcut")
      assert last_bn in params[block]
    assert params["head"]["kernel"].shape == (512 * (1 if name == "resnet18" else 4), 1000)


# --- Configuration -----------------------------------------------------------


def test_mix_layer_defaults_and_registry():
  for name in ("resnet18", "resnet50"):
    model = models.get_model(name, 1000)
    assert isinstance(model, models.ResNet)
    assert model.mix_layers == (0, 1, 2)  # As the other ResNets.
    assert model.eligible_layers == (0, 1, 2, 3, 4)
    assert model.param_init == "he" and not model.zero_init_residual
    assert models.MODELS[name] is getattr(models, name)
  assert models.get_model("resnet18", 10, init="pytorch").param_init == "pytorch"
  assert models.get_model("resnet50", 10, zero_init_residual=True).zero_init_residual
  assert {"resnet18", "resnet50"} <= set(models.list_models())


def test_invalid_configuration():
  with pytest.raises(ValueError, match="param_init must be one of 'he', 'pytorch'"):
    models.get_model("resnet18", 10, init="xavier")
  with pytest.raises(ValueError, match="not both"):
    models.get_model("resnet50", 10, init="he", param_init="pytorch")
  with pytest.raises(ValueError, match="block must be one of 'basic', 'bottleneck'"):
    models.ResNet(block="preact")
  with pytest.raises(ValueError, match="mix_layers"):
    models.get_model("resnet18", 10, mix_layers=(0, 5))


def test_integer_inputs_rejected():
  model = models.get_model("resnet18", 10)
  with pytest.raises(ValueError, match="normalise"):
    jax.eval_shape(model.init, jax.random.key(0),
                   jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.uint8))


def test_plan_drawing_a_layer_the_model_does_not_mix_at_is_an_error():
  model = models.get_model("resnet18", 10)  # mix_layers=(0, 1, 2)
  x = jax.ShapeDtypeStruct((4, 32, 32, 3), jnp.float32)
  variables = _variable_shapes("resnet18", 10, 32)
  plan = jax.eval_shape(lambda k: mixjax.sample_plan(k, 4, (0, 1, 2, 3)), jax.random.key(0))
  with pytest.raises(ValueError, match=r"may draw layers \[3\].*mix_layers=\(0, 1, 2\)"):
    jax.eval_shape(lambda v, p: model.apply(v, x, plan=p), variables, plan)
  plan = jax.eval_shape(lambda k: mixjax.sample_plan(k, 4, model.mix_layers),
                        jax.random.key(0))
  jax.eval_shape(lambda v, p: model.apply(v, x, plan=p), variables, plan)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_bfloat16_parameters_stay_float32(name):
  """Parameters and statistics stay float32; activations are bfloat16 and the
  logits float32, as every mixjax model returns them."""
  kwargs = {"dtype": jnp.bfloat16, "mix_layers": (0, 1, 2, 3, 4)}
  model = models.get_model(name, 10, **kwargs)
  variables = _variable_shapes(name, 10, 32, **kwargs)
  assert {v.dtype for v in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  plan = jax.eval_shape(lambda k: mixjax.sample_plan(k, 2, model.mix_layers),
                        jax.random.key(0))
  (logits, hidden), _ = jax.eval_shape(
      functools.partial(model.apply, train=True, return_hidden=True,
                        mutable="batch_stats"),
      variables, jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32), plan)
  assert logits.dtype == jnp.float32 and logits.shape == (2, 10)
  assert hidden[0].dtype == jnp.float32  # The input, mixed in its own dtype.
  assert {h.dtype for h in hidden[1:]} == {jnp.dtype(jnp.bfloat16)}


# --- Initialisation ----------------------------------------------------------


def _block_names(model: models.ResNet) -> list[str]:
  return [f"stage{i + 1}_block{j}" for i, n in enumerate(model.stage_sizes)
          for j in range(n)]


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_zero_init_residual(name):
  """torchvision (resnet.py, ``zero_init_residual``): each block's last BN weight
  (bn2 of a BasicBlock, bn3 of a Bottleneck) is 0; every other BN weight is 1."""
  flags = (False, True)
  built = [models.get_model(name, 1000, zero_init_residual=flag) for flag in flags]

  @jax.jit
  def bn_params(key):
    # Only the BatchNorm parameters leave the program: XLA drops the forward pass
    # and the other initialisers as dead code, so even ResNet-50 compiles at once.
    return [jax.tree_util.tree_map_with_path(
        lambda path, a: a if "bn" in path[-2].key else None,
        model.init(key, jnp.zeros((1, 32, 32, 3)))["params"]) for model in built]

  last = "bn2" if name == "resnet18" else "bn3"
  blocks = _block_names(built[0])
  assert len(blocks) == (8 if name == "resnet18" else 16)
  for zero_init_residual, params in zip(flags, bn_params(jax.random.key(0, impl="rbg")),
                                        strict=True):
    for block in blocks:
      for norm, p in params[block].items():
        if "bn" not in norm:  # A conv: its kernel was dropped.
          continue
        expected_scale = 0.0 if zero_init_residual and norm == last else 1.0
        np.testing.assert_array_equal(p["scale"], expected_scale,
                                      err_msg=f"{zero_init_residual} {block}/{norm}")
        np.testing.assert_array_equal(p["bias"], 0.0)
    np.testing.assert_array_equal(params["stem_bn"]["scale"], 1.0)


ZERO_INIT_BLOCKS = {
    "basic_identity": models.BasicBlock(4, zero_init_residual=True),
    "basic_projection": models.BasicBlock(8, stride=2, zero_init_residual=True),
    "bottleneck_identity": models.Bottleneck(1, zero_init_residual=True),  # 4 → 4.
    "bottleneck_projection": models.Bottleneck(2, stride=2, zero_init_residual=True),
}


@pytest.fixture(scope="module")
def zero_init_block_outputs():
  """``{case: (x, out, sub-module outputs)}``: each block of ZERO_INIT_BLOCKS
  initialised for real, then run (evaluation mode), all in one program."""
  x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 8, 8, 4)).astype(np.float32))

  @jax.jit
  def run(key, x):
    results = {}
    for case, block in ZERO_INIT_BLOCKS.items():
      variables = block.init(key, x)
      out, state = block.apply(variables, x, capture_intermediates=True,
                               mutable="intermediates")
      results[case] = out, {k: v["__call__"][0] for k, v in state["intermediates"].items()
                            if k != "__call__"}
    return results

  return x, run(jax.random.key(0, impl="rbg"), x)


@pytest.mark.parametrize("case", list(ZERO_INIT_BLOCKS))
def test_zero_init_block_starts_as_its_shortcut(zero_init_block_outputs, case):
  """With the last BN scale 0, a block's output is ``ReLU(shortcut)`` exactly."""
  block = ZERO_INIT_BLOCKS[case]
  x, outputs = zero_init_block_outputs
  out, inner = outputs[case]
  if block.stride == 1:
    assert "shortcut" not in inner
    np.testing.assert_array_equal(out, np.maximum(np.asarray(x), 0))
  else:
    assert out.shape == (2, 4, 4, block.features * block.expansion)
    np.testing.assert_array_equal(out, np.maximum(np.asarray(inner["shortcut_bn"]), 0))
  assert bool(np.any(np.asarray(x) < 0)) and bool(np.any(np.asarray(out) > 0))


def test_initial_parameter_distributions():
  """torchvision's init (resnet.py, ResNet.__init__): kaiming_normal_ fan-out convs
  under both options, BN 1/0; the ``fc`` layer keeps PyTorch's default,
  U(±1/√fan_in) for weight and bias (``init="pytorch"``), or Flax's default dense
  kernel with a zero bias (``init="he"``). A small instance with 7×7, 3×3 and 1×1
  convs, both options initialised in one program."""
  small = functools.partial(models.ResNet, stage_sizes=(1,), block="bottleneck",
                            num_filters=8, num_classes=10, mix_layers=(0, 1))
  x = np.zeros((1, 16, 16, 3), np.float32)
  inits = ("he", "pytorch")
  params = jax.jit(lambda key: [small(param_init=init).init(key, x)["params"]
                                for init in inits])(jax.random.key(42, impl="rbg"))
  he, uniform = [], []
  for init, tree in zip(inits, params, strict=True):
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      module, name = path[-2].key, path[-1].key
      value = np.asarray(leaf, np.float64)
      if "bn" in module:
        np.testing.assert_array_equal(value, 1.0 if name == "scale" else 0.0)
      elif module == "head":
        if init == "pytorch":
          uniform.append(value.ravel() * math.sqrt(tree["head"]["kernel"].shape[0]))
        elif name == "bias":
          np.testing.assert_array_equal(value, 0.0)
      else:
        assert name == "kernel"  # Bias-free convs.
        fan_out = math.prod(leaf.shape[:-2]) * leaf.shape[-1]
        he.append(value.ravel() / math.sqrt(2 / fan_out))
  # A fixed seed: at α = 10⁻³ a correct initialiser passes with probability 0.999,
  # a wrong scale (e.g. fan-in, or He's uniform bound) gives p ≈ 0.
  assert scipy.stats.kstest(np.concatenate(he), scipy.stats.norm.cdf).pvalue > 1e-3
  u = np.concatenate(uniform)
  assert np.abs(u).max() <= 1 + 2 * F32_EPS
  assert scipy.stats.kstest(u, scipy.stats.uniform(-1, 2).cdf).pvalue > 1e-3


# --- Forward pass: ResNet-18 with a plan at every eligible layer -------------

_sample_plan = jax.jit(mixjax.sample_plan, static_argnums=(1, 2))


@pytest.fixture(scope="module")
def resnet18_case():
  """(model, variables, x, apply, traces, plans): ResNet-18 mixing at all 5 layers.

  ``apply`` is one jitted training forward returning ``(logits, hidden,
  batch_stats)``; ``plans[k]`` was drawn by ``sample_plan`` at layer ``k``.
  """
  model = models.resnet18(10, mix_layers=(0, 1, 2, 3, 4))
  x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 32, 32, 3)).astype(np.float32))
  variables = numpy_variables(model, x)
  traces = []

  @jax.jit
  def apply(variables, x, plan):
    traces.append(plan.layers)
    (logits, hidden), updates = model.apply(
        variables, x, plan, train=True, return_hidden=True, mutable="batch_stats")
    return logits, hidden, updates["batch_stats"]

  plans = dict(zip(model.mix_layers,
                   plans_for_every_layer(model.mix_layers, 4, _sample_plan), strict=True))
  return model, variables, x, apply, traces, plans


def test_resnet18_forward_mixes_only_at_the_drawn_layer(resnet18_case):
  model, variables, x, apply, traces, plans = resnet18_case
  # Layer -1 is never drawn: the same program, nothing mixed.
  plain_logits, plain_hidden, _ = apply(
      variables, x, plans[0].replace(layer=jnp.asarray(np.int32(-1))))
  assert [h.shape for h in plain_hidden] == [
      (4, 32, 32, 3), (4, 8, 8, 64), (4, 4, 4, 128), (4, 2, 2, 256), (4, 1, 1, 512)]
  all_logits = [plain_logits]
  for k in model.mix_layers:
    plan = plans[k]
    logits, hidden, stats = apply(variables, x, plan)
    chex.assert_shape(logits, (4, 10))
    assert logits.dtype == jnp.float32
    assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves((logits, hidden)))
    for j in range(k):  # Before the drawn layer nothing changes.
      np.testing.assert_array_equal(hidden[j], plain_hidden[j])
    # The drawn layer holds λ·h + (1 − λ)·h[perm] of the unmixed activations.
    lam = np.asarray(plan.params.lam, np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    perm = np.asarray(plan.params.perm)
    h = np.asarray(plain_hidden[k], np.float64)
    assert_close_in_ulps(hidden[k], lam * h + (1 - lam) * h[perm], BLEND_ULPS, scale=h)
    assert not np.all(perm == np.arange(4))  # So mixing changed something.
    all_logits.append(logits)
    # Training updates every BatchNorm statistic.
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                           variables["batch_stats"], stats)
    assert all(jax.tree.leaves(changed))
  assert len(traces) == 1  # One program serves every layer.
  for a in range(len(all_logits)):
    for b in range(a):
      assert differ_beyond_rounding(all_logits[a], all_logits[b]), (a, b)
