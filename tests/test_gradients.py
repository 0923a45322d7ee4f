"""Gradients through every mixing op in every float dtype (issue 20).

Users train in bfloat16 (and float16): a mix must pass gradients to the images
(at the input) and to the hidden states (Manifold Mixup) as it does in float32.
Each op below runs on the same values in float32, bfloat16 and float16 (values
exactly representable in all three), and ``jax.grad`` (a vector-Jacobian
product with a fixed random cotangent) and ``jax.jvp`` (a fixed random tangent)
of the 16-bit runs must equal float32's to 16-bit rounding.

Tolerances (``tolerances.assert_close_in_ulps`` with the 16-bit ``eps``): a
tangent is blended in float32 and rounded once to 16 bits per stage (a blend,
then a soft mask over it: two roundings), so the JVP is within 2 ulps of the
tangent's scale. A cotangent is multiplied by its weight in float32, rounded to
16 bits, and the contributions an input pixel gets (itself, and each example
that takes it as a partner: at most ``n`` of them, plus a resized box that may
read a pixel twice) are summed in 16 bits: at most ~6 roundings of terms no
larger than the cotangent's scale. 8 ulps bounds both; a dropped term (a zero
gradient, a lost partner) is ≥ 2⁷ ulps of bfloat16 here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mixjax as mx
from mixjax.models.small import small_cnn
from mixjax.params import common_structure, select_params
from tests.tolerances import F32_EPS, assert_close_in_ulps

B, H, W, C = 4, 24, 24, 3   # 24 pixels: the least GridMix's defaults fit.
K = 5
DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)
ULPS = 8


def _grid_values(seed: int, shape, offset: float = 0.0) -> np.ndarray:
  """Multiples of 1/256 in [offset, offset + 1): exact in float32, bfloat16 and float16."""
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, shape) / 256 + offset).astype(np.float32)


def _everything_params(key) -> mx.MixParams:
  """Per example one of: n-way Mixup, ResizeMix, a soft mask over a box, CutMix.

  Selected per example from one common structure, so every branch of the kernel
  (λ, more partners, boxes, source boxes, a soft mask) runs in one call.
  """
  keys = jax.random.split(key, 5)
  shape = (H, W, C)
  mixes = (mx.Mixup(n=3, mode="elem").sample(keys[0], B, shape),
           mx.ResizeMix(mode="elem").sample(keys[1], B, shape),
           mx.SmoothMix(mode="elem").sample(keys[2], B, shape),
           mx.CutMix(mode="elem").sample(keys[3], B, shape))
  which = jax.random.randint(keys[4], (B,), 0, len(mixes)).at[:len(mixes)].set(
      jnp.arange(len(mixes)))
  return select_params(which, common_structure(*mixes))


@jax.jit
def _draws(key, images):
  """Every mix under test, drawn once (draws do not depend on the dtype).

  Every registered mixer per example with half the examples mixed (so the
  kernel's selections run; batch mode draws otherwise but applies the same
  kernel), n-way Mixup, the combined policy, a per-example Choice, the
  everything-at-once mix and a Manifold Mixup plan at layer 1.
  """
  keys = iter(jax.random.split(key, 16))
  shape = (H, W, C)
  draws = {}
  for name in mx.list_mixers():
    extra = {"mixers": (mx.Mixup(), mx.CutMix())} if name == "choice" else {}
    mixer = mx.get_mixer(name, num_classes=K, mode="elem", prob=0.5, **extra)
    draws[name] = mixer.sample(next(keys), B, shape, images=images)
  draws["mixup-3way"] = mx.Mixup(n=3, mode="elem").sample(next(keys), B, shape)
  draws["mix"] = mx.sample_mix(next(keys), B, (H, W), mx.MixConfig(mode="elem", prob=0.75))
  draws["choice-elem"] = mx.Choice(mixers=(mx.Mixup(), mx.CutMix(), mx.FMix()),
                                   mode="elem").sample(next(keys), B, shape)
  draws["everything"] = _everything_params(next(keys))
  plan = mx.sample_plan(next(keys), B, (0, 1, 2), n=3, mode="elem")
  draws["plan"] = plan.replace(layer=jnp.ones((), jnp.int32))
  return draws


def _ops(draws) -> dict:
  """name -> ``f(x) -> mixed`` for images ``x`` [B, H, W, C] of any float dtype."""
  labels = jnp.arange(B) % K
  ops = {}
  for name, params in draws.items():
    if name in ("plan", "everything"):
      continue
    ops[name] = functools.partial(
        lambda params, x: mx.apply_mix(params, x, labels, K)[0], params)
  ops["mix_images"] = lambda x: mx.mix_images(draws["everything"], x)

  def mix_at_hidden(x):
    # A hidden state [B, 12, 6, 24]; the plan mixes at layer 1 (and passes layer 0).
    hidden = draws["plan"].mix_at(0, x.reshape(B, 12, 6, 24))
    return draws["plan"].mix_at(1, hidden)

  ops["mix_at-hidden"] = mix_at_hidden
  ops["mix_at-input"] = lambda x: mx.MixPlan.at_input(draws["mixup"]).mix_at(0, x)
  return ops


@functools.cache
def _derivatives(dtype_name: str) -> dict:
  """name -> (grad, jvp, op of the tangent) of every op on the shared values, in one
  compiled program (the last in float32 only)."""
  dtype = jnp.dtype(dtype_name)
  values = _grid_values(0, (B, H, W, C))
  draws = _draws(jax.random.key(3), values)
  x = jnp.asarray(values, dtype)
  tangent = jnp.asarray(_grid_values(1, (B, H, W, C), -0.5), dtype)
  cotangent = jnp.asarray(_grid_values(2, (B, H, W, C), -0.5), jnp.float32)

  @jax.jit
  def run(draws, x, tangent, cotangent):
    out = {}
    for name, f in _ops(draws).items():
      loss = lambda x, f=f: jnp.sum(f(x).astype(jnp.float32).reshape(cotangent.shape) *
                                    cotangent)
      _, jvp = jax.jvp(f, (x,), (tangent,))
      # The op applied to the tangent: the float32 reference's check (not needed in 16 bits).
      out[name] = (jax.grad(loss)(x), jvp, f(tangent) if dtype == jnp.float32 else None)
    return out

  return jax.device_get(run(draws, x, tangent, cotangent))


NAMES = tuple(mx.list_mixers()) + (
    "mixup-3way", "mix", "choice-elem", "mix_images", "mix_at-hidden", "mix_at-input")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", NAMES)
def test_gradient_equals_float32_to_16_bit_rounding(name, dtype):
  grad32, jvp32, _ = _derivatives("float32")[name]
  grad16, jvp16, _ = _derivatives(dtype)[name]
  assert grad16.dtype == jnp.dtype(dtype) and jvp16.dtype == jnp.dtype(dtype)
  assert np.abs(grad32).max() > 0 and np.abs(jvp32).max() > 0
  eps = float(jnp.finfo(dtype).eps)
  assert_close_in_ulps(grad16.astype(np.float32), grad32, ULPS, scale=0.5, eps=eps,
                       err_msg=f"grad of {name} in {dtype}")
  assert_close_in_ulps(jvp16.astype(np.float32), jvp32, ULPS, scale=0.5, eps=eps,
                       err_msg=f"jvp of {name} in {dtype}")


def test_float32_derivatives_are_the_mix_and_its_transpose():
  """The float32 reference itself, without autodiff: with the draw fixed every op
  is linear in the images, so its JVP is the op applied to the tangent, and its
  VJP the transposed op: ``<J t, w> = <t, Jᵀ w>``."""
  t = _grid_values(1, (B, H, W, C), -0.5).astype(np.float64)
  w = _grid_values(2, (B, H, W, C), -0.5).astype(np.float64)
  for name, (grad, jvp, mixed_tangent) in _derivatives("float32").items():
    # The same float32 arithmetic on the same values, fused alike or not: 2 ulps.
    assert_close_in_ulps(jvp, mixed_tangent, 2, scale=0.5, err_msg=name)
    lhs = float(np.sum(jvp.astype(np.float64).reshape(w.shape) * w))
    rhs = float(np.sum(t * grad.astype(np.float64)))
    # Both sides are sums of the same products of float32-rounded weights (each
    # within 2 ulps of exact): 16 ulps of the largest possible sum bounds them.
    assert abs(lhs - rhs) <= 16 * F32_EPS * np.sum(np.abs(w)) * np.abs(t).max(), name


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mixup_passes_each_pixel_its_whole_gradient(dtype):
  """The issue's example: every pixel of a batch of ones gets λ + (1 − λ) = 1
  (each term rounded to 16 bits once and summed: within 2 ulps of 1), through
  the public jitted ``mixup``; the sum is 768 as in float32 (it was 0)."""
  x = jnp.ones((4, 8, 8, 3), dtype)
  grad = jax.grad(lambda x: mx.mixup(jax.random.key(0), x, jnp.arange(4), num_classes=4)[0]
                  .astype(jnp.float32).sum())(x)
  assert grad.dtype == jnp.dtype(dtype)
  assert_close_in_ulps(np.asarray(grad, np.float32), np.ones(x.shape), 2,
                       eps=float(jnp.finfo(dtype).eps))


@functools.cache
def _model_gradients(dtype_name: str) -> dict:
  """layer -> parameter gradients of a SmallCNN computing in ``dtype`` (float32
  parameters) under a Manifold Mixup plan at that layer; one compiled program
  per dtype (the layer is traced). Initialised from an "rbg" key: threefry's unrolled
  hashes, one per initialiser, would take most of the compile time."""
  batch = 8
  model = small_cnn(K, features=(8, 16), dtype=jnp.dtype(dtype_name))
  images = jnp.asarray(_grid_values(4, (batch, 16, 16, 3)))
  labels = jnp.arange(batch) % K

  @jax.jit
  def grads(images, labels, layer):
    variables = model.init(jax.random.key(0, impl="rbg"), images)
    plan = mx.sample_plan(jax.random.key(1), batch, (0, 1, 2), alpha=2.0, mode="elem")
    plan = plan.replace(layer=layer)

    def loss(params):
      logits, _ = model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                              images.astype(model.dtype), plan=plan, train=True,
                              mutable=["batch_stats"])
      return optax.softmax_cross_entropy(logits, plan.mix_labels(labels, K)).mean()

    return jax.grad(loss)(variables["params"])

  return {layer: jax.device_get(grads(images, labels, jnp.asarray(layer, jnp.int32)))
          for layer in (1, 2)}


@pytest.mark.parametrize("layer", [1, 2])
def test_bfloat16_manifold_mixup_trains_every_layer(layer):
  """Mixed at a hidden layer, a bfloat16 SmallCNN gets every parameter's gradient,
  below the mixing layer too (it got 0 there), as float32 does.

  A bfloat16 network rounds each layer's activations to 2⁻⁸ relative, and batch
  normalisation over 8 examples amplifies that: measured ≤ 8 % relative (L2)
  difference per parameter against float32 at layers 0–2; 25 % allows ~3× that,
  while a lost gradient is 100 %.
  """
  want = _model_gradients("float32")[layer]
  got = _model_gradients("bfloat16")[layer]
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(want)[0], jax.tree.leaves(got),
                          strict=True):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.linalg.norm(a) > 0, jax.tree_util.keystr(path)
    assert np.linalg.norm(b - a) <= 0.25 * np.linalg.norm(a), jax.tree_util.keystr(path)
