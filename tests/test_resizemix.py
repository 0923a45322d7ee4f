"""ResizeMix: the whole partner resized into exactly the box, exact label weights,
τ ~ U(0.1, 0.8) as OpenMixup draws it, dtypes, modes, jit and vmap."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import mixjax as mx
from tests.tolerances import assert_close_in_ulps

B = 8
LABELS = jnp.arange(B, dtype=jnp.int32)


def _images(shape=(B, 12, 10, 3), dtype=jnp.float32, seed=0):
  rng = np.random.default_rng(seed)
  if jnp.issubdtype(dtype, jnp.integer):
    return jnp.asarray(rng.integers(0, 256, shape), dtype)
  return jnp.asarray(rng.uniform(-1, 1, size=shape), dtype)


def _nearest(image, out_h, out_w):
  """Nearest-neighbour resize, source index ⌊dst·in/out⌋ (exact integers)."""
  h, w = image.shape[:2]
  rows = (np.arange(out_h) * h) // out_h
  cols = (np.arange(out_w) * w) // out_w
  return image[rows][:, cols]


def _expected(x, params):
  x = np.asarray(x)
  out = x.copy()
  perm, boxes = np.asarray(params.perm), np.asarray(params.boxes)
  for i in range(x.shape[0]):
    t, left, b, r = boxes[i]
    if b > t and r > left:
      out[i, t:b, left:r] = _nearest(x[perm[i]], b - t, r - left)
  return out


def _box_mask(boxes, h, w):
  return np.asarray(mx.box_mask(jnp.asarray(boxes), h, w))


@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("shape", [(B, 12, 10, 3), (B, 9, 9)])
def test_box_holds_exactly_the_resized_partner(mode, dtype, shape):
  x = _images(shape, dtype)
  height, width = shape[1:3]
  for seed in range(4):
    key = jax.random.key(seed)
    out, y = mx.resizemix(key, x, LABELS, num_classes=B, mode=mode)
    assert out.dtype == dtype and out.shape == x.shape  # Pixels are copied.
    params = mx.sample_resizemix(key, B, (height, width), mode=mode)
    np.testing.assert_array_equal(np.asarray(out), _expected(x, params))
    # Changed pixels lie inside the box; outside it nothing moves.
    inside = _box_mask(params.boxes, height, width)
    changed = np.asarray(out) != np.asarray(x)
    if changed.ndim == 4:
      changed = changed.any(axis=3)
    assert not (changed & ~inside).any()
    np.testing.assert_array_equal(np.asarray(params.source_boxes),
                                  np.broadcast_to([0, 0, height, width], (B, 4)))
    # w = 1 − area/(H·W) per example (float32 of the exact fraction: a quotient XLA may
    # take as a product with 1/(H·W), two roundings, within 2 ulps of 1), and the labels
    # carry exactly that w.
    area = inside.sum(axis=(1, 2))
    exact = 1.0 - area / (height * width)
    assert_close_in_ulps(params.label_weight, exact, 2, scale=1.0)
    perm = np.asarray(params.perm)
    own = perm == np.arange(B)
    weight = np.asarray(y)[np.arange(B), np.arange(B)]  # As the compiled program drew it.
    assert_close_in_ulps(weight[~own], exact[~own], 2, scale=1.0)
    rows = np.eye(B, dtype=np.float32)
    want = weight[:, None] * rows + (np.float32(1) - weight[:, None]) * rows[perm]
    want[own] = rows[own]
    np.testing.assert_array_equal(np.asarray(y), want)
    boxes = np.asarray(params.boxes)
    if mode == "batch":
      np.testing.assert_array_equal(boxes, np.broadcast_to(boxes[0], boxes.shape))
  if mode == "elem":
    assert len({tuple(b) for b in boxes}) > 1, "one box per example"


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.int8, jnp.bfloat16, jnp.float32])
def test_partner_indices_follow_jnp_take(dtype):
  """Hand-made partners outside [0, B) are filled as jnp.take fills them (NaN for
  floats, the largest uint / the smallest int), negative ones wrap; the resize is
  gathered before the fill (_take_rows_then_fill), with the same pixels."""
  x = _images((B, 12, 10, 3), dtype, seed=3)
  params = mx.sample_resizemix(jax.random.key(4), B, (12, 10), mode="elem")
  perm = jnp.asarray([1, -1, B + 3, -B - 2, 0, 2, B, -B], jnp.int32)
  out = np.asarray(mx.mix_images(params.replace(perm=perm), x))
  taken = np.asarray(jnp.take(x, perm, axis=0))   # what each example's partner is
  want = np.asarray(x).copy()
  for i, (t, left, b, r) in enumerate(np.asarray(params.boxes)):
    if b > t and r > left:
      want[i, t:b, left:r] = _nearest(taken[i], b - t, r - left)
  if dtype == jnp.bfloat16:   # (numpy compares bfloat16 NaNs unequal; float32 is exact)
    out, want = out.astype(np.float32), want.astype(np.float32)
  np.testing.assert_array_equal(out, want)   # NaNs equal NaNs here
  assert len({int(v) for v in perm if not -B <= v < B}) == 3


def _reference_weights(rng, count, h, w, scope=(0.1, 0.8), alpha=None):
  """OpenMixup's resizemix.py@37e1372 draw (lines 45-59, 86-93, 108) in numpy."""
  out = np.empty(count)
  for i in range(count):
    if alpha is None:
      tao = rng.uniform(scope[0], scope[1])
    else:  # use_alpha=True.
      tao = rng.beta(alpha, alpha)
      if tao < scope[0] or tao > scope[1]:
        tao = rng.uniform(scope[0], scope[1])
    cut_w, cut_h = int(w * tao), int(h * tao)
    cx, cy = rng.integers(w), rng.integers(h)
    bbx1, bby1 = np.clip(cx - cut_w // 2, 0, w), np.clip(cy - cut_h // 2, 0, h)
    bbx2, bby2 = np.clip(cx + cut_w // 2, 0, w), np.clip(cy + cut_h // 2, 0, h)
    out[i] = 1 - ((bbx2 - bbx1) * (bby2 - bby1) / (w * h))
  return out


def test_box_sizes_follow_the_reference_sampler():
  """Two-sample KS at the 1% level: 20,000 label weights (τ, centre, clipping) against
  20,000 of the reference sampler, on 1000×1000 images so ties are rare."""
  size = 1000
  _, ours = mx.sample_resizemix_boxes(jax.random.key(0), 20_000, (size, size), mode="elem")
  ours = np.asarray(ours, np.float64)
  rng = np.random.default_rng(0)
  assert stats.kstest(ours, _reference_weights(rng, 20_000, size, size)).pvalue > 0.01
  # Power: a scope of (0.1, 0.9) is rejected.
  wider = _reference_weights(rng, 20_000, size, size, (0.1, 0.9))
  assert stats.kstest(ours, wider).pvalue < 1e-6
  # τ = side/size within 1/size, so it stays in [0.1, 0.8] (a clipped side is shorter).
  boxes, _ = mx.sample_resizemix_boxes(jax.random.key(1), 5000, (size, size), mode="elem")
  sides = np.asarray(boxes[:, 2] - boxes[:, 0])
  assert sides.max() <= 0.8 * size and sides.max() >= 0.75 * size


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_use_alpha_rule_follows_the_reference_sampler(alpha):
  """OpenMixup's use_alpha=True: Beta(α, α), redrawn uniformly outside the scope; the
  same two-sample KS test at the 1% level, and for α = 2 the uniform rule rejected."""
  size = 1000
  _, ours = mx.sample_resizemix_boxes(jax.random.key(2), 20_000, (size, size), mode="elem",
                                      tau_alpha=alpha)
  ours = np.asarray(ours, np.float64)
  rng = np.random.default_rng(1)
  assert stats.kstest(ours, _reference_weights(rng, 20_000, size, size, alpha=alpha)
                      ).pvalue > 0.01
  if alpha == 2.0:  # Power (at α = ½ the rule is too close to the uniform one to tell).
    assert stats.kstest(ours, _reference_weights(rng, 20_000, size, size)).pvalue < 1e-6


def test_tiny_boxes_paste_nothing_and_one_program_for_every_box():
  x = _images((B, 4, 4, 3))
  # ⌊4·τ⌋ ≤ 1 for τ < 0.5: the box is empty (⌊1/2⌋ = 0), nothing changes.
  out, y = mx.resizemix(jax.random.key(0), x, LABELS, num_classes=B, scope=(0.1, 0.4),
                        mode="elem")
  np.testing.assert_array_equal(np.asarray(out), np.asarray(x))
  np.testing.assert_array_equal(np.asarray(y), np.eye(B))
  x = _images()
  keys = jax.random.split(jax.random.key(3), 4)
  outs, ys = jax.vmap(lambda k: mx.resizemix(k, x, LABELS, num_classes=B, mode="elem"))(keys)
  for i in range(4):
    chex.assert_trees_all_equal(
        (outs[i], ys[i]), mx.resizemix(keys[i], x, LABELS, num_classes=B, mode="elem"))
  jaxpr = str(jax.make_jaxpr(lambda k: mx.resizemix(k, x, LABELS, num_classes=B))(keys[0]))
  assert "cond" not in jaxpr and "while" not in jaxpr


def test_mixer_and_registry_draw_what_the_function_draws():
  x = _images(dtype=jnp.uint8)
  mixer = mx.get_mixer("resizemix", num_classes=B, mode="elem", scope=(0.2, 0.6))
  key = jax.random.key(5)
  chex.assert_trees_all_equal(
      mixer(key, x, LABELS),
      mx.resizemix(key, x, LABELS, num_classes=B, mode="elem", scope=(0.2, 0.6)))


@pytest.mark.parametrize("scope,match", [((0.5,), "pair"), ((0.8, 0.1), "0 <= min <= max")])
def test_bad_scope_raises(scope, match):
  with pytest.raises(ValueError, match=match):
    mx.sample_resizemix_boxes(jax.random.key(0), B, (8, 8), scope=scope)
