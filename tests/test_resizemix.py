"""ResizeMix: the whole partner resized into exactly the box, exact label weights,
τ ~ U(0.1, 0.8) as OpenMixup draws it, dtypes, modes, jit and vmap.

A test's draws and mixes are compiled together, as one program per shape and mode that
takes the key as an argument and mixes the batch of every dtype: it serves each seed and
each dtype's parametrisation, where one compile per call and per eager primitive did.
"""

import functools

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


DTYPES = (jnp.uint8, jnp.bfloat16, jnp.float32)


@functools.partial(jax.jit, static_argnames="mode")
def _draw_and_mixes(key, images, mode):
  """sample_resizemix, its box mask, and resizemix of each batch in `images` (one per dtype,
  one shape) by `key`: one program per shape and mode (the mixes share its draw)."""
  height, width = images[0].shape[1:3]
  params = mx.sample_resizemix(key, B, (height, width), mode=mode)
  return (params, mx.box_mask(params.boxes, height, width),
          [mx.resizemix(key, x, LABELS, num_classes=B, mode=mode) for x in images])


@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(B, 12, 10, 3), (B, 9, 9)])
def test_box_holds_exactly_the_resized_partner(mode, dtype, shape):
  images = [_images(shape, d) for d in DTYPES]
  x = images[DTYPES.index(dtype)]
  height, width = shape[1:3]
  for seed in range(4):
    params, inside, mixes = jax.device_get(_draw_and_mixes(jax.random.key(seed), images, mode))
    out, y = mixes[DTYPES.index(dtype)]
    assert out.dtype == dtype and out.shape == x.shape, seed  # Pixels are copied.
    np.testing.assert_array_equal(out, _expected(x, params), err_msg=f"seed {seed}")
    # Changed pixels lie inside the box; outside it nothing moves.
    changed = out != np.asarray(x)
    if changed.ndim == 4:
      changed = changed.any(axis=3)
    assert not (changed & ~inside).any(), seed
    np.testing.assert_array_equal(params.source_boxes,
                                  np.broadcast_to([0, 0, height, width], (B, 4)),
                                  err_msg=f"seed {seed}")
    # w = 1 − area/(H·W) per example (float32 of the exact fraction: a quotient XLA may
    # take as a product with 1/(H·W), two roundings, within 2 ulps of 1), and the labels
    # carry exactly that w.
    area = inside.sum(axis=(1, 2))
    exact = 1.0 - area / (height * width)
    assert_close_in_ulps(params.label_weight, exact, 2, scale=1.0, err_msg=f"seed {seed}")
    perm = np.asarray(params.perm)
    own = perm == np.arange(B)
    weight = y[np.arange(B), np.arange(B)]  # As the compiled program drew it.
    assert_close_in_ulps(weight[~own], exact[~own], 2, scale=1.0, err_msg=f"seed {seed}")
    rows = np.eye(B, dtype=np.float32)
    want = weight[:, None] * rows + (np.float32(1) - weight[:, None]) * rows[perm]
    want[own] = rows[own]
    np.testing.assert_array_equal(y, want, err_msg=f"seed {seed}")
    boxes = np.asarray(params.boxes)
    if mode == "batch":
      np.testing.assert_array_equal(boxes, np.broadcast_to(boxes[0], boxes.shape),
                                    err_msg=f"seed {seed}")
  if mode == "elem":
    assert len({tuple(b) for b in boxes}) > 1, "one box per example"


TAKE_DTYPES = (jnp.uint8, jnp.int8, jnp.bfloat16, jnp.float32)
OUTSIDE_PERM = np.asarray([1, -1, B + 3, -B - 2, 0, 2, B, -B], np.int32)


@jax.jit
def _mixes_and_takes_with_outside_partners(images):
  """One draw with the partners OUTSIDE_PERM, mixed into and taken from each batch."""
  params = mx.sample_resizemix(jax.random.key(4), B, (12, 10), mode="elem")
  params = params.replace(perm=jnp.asarray(OUTSIDE_PERM))
  return params, [(mx.mix_images(params, x), jnp.take(x, params.perm, axis=0))
                  for x in images]


@pytest.mark.parametrize("dtype", TAKE_DTYPES)
def test_partner_indices_follow_jnp_take(dtype):
  """Hand-made partners outside [0, B) are filled as jnp.take fills them (NaN for
  floats, the largest uint / the smallest int), negative ones wrap; the resize
  reads the filled partner, so a box from an outside partner is the fill."""
  images = [_images((B, 12, 10, 3), d, seed=3) for d in TAKE_DTYPES]
  params, mixes = jax.device_get(_mixes_and_takes_with_outside_partners(images))
  x = images[TAKE_DTYPES.index(dtype)]
  out, taken = mixes[TAKE_DTYPES.index(dtype)]   # taken: what each example's partner is
  perm = OUTSIDE_PERM
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
  (_, ours), (boxes, _) = jax.device_get(jax.jit(lambda k0, k1: (  # One program for both.
      mx.sample_resizemix_boxes(k0, 20_000, (size, size), mode="elem"),
      mx.sample_resizemix_boxes(k1, 5000, (size, size), mode="elem")))(
          jax.random.key(0), jax.random.key(1)))
  ours = np.asarray(ours, np.float64)
  rng = np.random.default_rng(0)
  assert stats.kstest(ours, _reference_weights(rng, 20_000, size, size)).pvalue > 0.01
  # Power: a scope of (0.1, 0.9) is rejected.
  wider = _reference_weights(rng, 20_000, size, size, (0.1, 0.9))
  assert stats.kstest(ours, wider).pvalue < 1e-6
  # τ = side/size within 1/size, so it stays in [0.1, 0.8] (a clipped side is shorter).
  sides = boxes[:, 2] - boxes[:, 0]
  assert sides.max() <= 0.8 * size and sides.max() >= 0.75 * size


@jax.jit
def _use_alpha_weights(key):
  """The 20,000 label weights of test_use_alpha_rule_follows_the_reference_sampler for each
  of its α, drawn by one program."""
  return {alpha: mx.sample_resizemix_boxes(key, 20_000, (1000, 1000), mode="elem",
                                           tau_alpha=alpha)[1] for alpha in (0.5, 2.0)}


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_use_alpha_rule_follows_the_reference_sampler(alpha):
  """OpenMixup's use_alpha=True: Beta(α, α), redrawn uniformly outside the scope; the
  same two-sample KS test at the 1% level, and for α = 2 the uniform rule rejected."""
  size = 1000
  ours = np.asarray(_use_alpha_weights(jax.random.key(2))[alpha], np.float64)
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
  images = [_images(dtype=d) for d in DTYPES]
  x = images[-1]
  keys = jax.random.split(jax.random.key(3), 4)
  outs, ys = jax.vmap(lambda k: mx.resizemix(k, x, LABELS, num_classes=B, mode="elem"))(keys)
  for i in range(4):
    # One key at a time: the float32 resizemix of test_box_holds_exactly_the_resized_partner's
    # program (the same batch, the key traced).
    single = _draw_and_mixes(keys[i], images, "elem")[2][-1]
    chex.assert_trees_all_equal((outs[i], ys[i]), single, custom_message=f"key {i}")
  jaxpr = str(jax.make_jaxpr(lambda k: mx.resizemix(k, x, LABELS, num_classes=B))(keys[0]))
  assert "cond" not in jaxpr and "while" not in jaxpr


def test_mixer_and_registry_draw_what_the_function_draws():
  x = _images(dtype=jnp.uint8)
  mixer = mx.get_mixer("resizemix", num_classes=B, mode="elem", scope=(0.2, 0.6))
  chex.assert_trees_all_equal(*jax.jit(lambda key: (  # One program: the two share a draw.
      mixer(key, x, LABELS),
      mx.resizemix(key, x, LABELS, num_classes=B, mode="elem", scope=(0.2, 0.6))))(
          jax.random.key(5)))


@pytest.mark.parametrize("scope,match", [((0.5,), "pair"), ((0.8, 0.1), "0 <= min <= max")])
def test_bad_scope_raises(scope, match):
  with pytest.raises(ValueError, match=match):
    mx.sample_resizemix_boxes(jax.random.key(0), B, (8, 8), scope=scope)
