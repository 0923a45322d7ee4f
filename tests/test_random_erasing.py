"""Random erasing (timm's RandomErasing): box replay, box statistics, fills, dtypes, errors.

Statistical checks run at fixed seeds, so they are deterministic; each states its
tolerance. Box distributions are checked on a 10⁵ × 10⁵ image (drawing boxes
allocates no pixels): its sides are ≥ 7,700 pixels, so rounding them moves
``h·w/(H·W)`` and ``log(h/w)`` by < 2·10⁻⁴, far below what the KS tests resolve
(~10⁻²), and the draws can be compared with the continuous distributions.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from scipy import stats

import mixjax
from mixjax.random_erasing import ErasingBoxes

KEY = jax.random.key(0)
H, W, C = 8, 12, 3
BIG = 100_000  # Side of the image the box statistics are drawn for.
N = 20_000  # Examples per statistical check.
KS_P = 1e-3  # A KS test fails below this p-value.


def _binomial_tol(p, n=N):
  """Five binomial standard deviations of a rate over n draws."""
  return 5 * math.sqrt(p * (1 - p) / n)


_sample = jax.jit(mixjax.sample_erasing, static_argnames=(
    "batch_size", "image_size", "probability", "min_area", "max_area", "min_aspect",
    "max_aspect"))
_apply = jax.jit(mixjax.apply_erasing, static_argnames=("mode",))


def _boxes(rows):
  """ErasingBoxes from rows (top, left, height, width, erase)."""
  cols = np.asarray(rows).T
  return ErasingBoxes(*(jnp.asarray(v, jnp.int32) for v in cols[:4]),
                      erase=jnp.asarray(cols[4], bool))


def _mask(boxes, height=H, width=W):
  """bool [B, H, W], built pixel by pixel in numpy."""
  top, left, h, w, erase = (np.asarray(v) for v in boxes)
  mask = np.zeros((len(top), height, width), bool)
  for b in range(len(top)):
    if erase[b]:
      mask[b, top[b]:top[b] + h[b], left[b]:left[b] + w[b]] = True
  return mask


def _fill(key, mode):
  """The fill field of an [8, H, W, C] batch: what boxes covering everything write."""
  full = _boxes([(0, 0, H, W, 1)] * 8)
  return np.asarray(_apply(key, jnp.zeros((8, H, W, C), jnp.float32), full, mode=mode))


def _images(batch=8, dtype=jnp.float32):
  """Distinct values far from N(0, 1) draws, exact in every float dtype tested."""
  return (64 + jnp.arange(batch * H * W * C) % 128).reshape(batch, H, W, C).astype(dtype)


# Eight boxes: one inside, one touching three edges, one not erased, one empty, and
# four covering the whole image.
HAND = _boxes([(1, 2, 3, 4, 1), (5, 0, 3, W, 1), (2, 3, 4, 5, 0), (4, 4, 0, 3, 1)]
              + [(0, 0, H, W, 1)] * 4)
# Every test on an [8, H, W, C] batch draws with this key and p, so their compiled
# programs are shared.
P_ERASE = 0.5
KEY_BOX, KEY_FILL = jax.random.split(KEY)


@pytest.mark.parametrize("mode", ["pixel", "rand", "const"])
def test_hand_made_boxes_replace_exactly_their_pixels(mode):
  """Exactly the boxes' pixels are replaced, by a fill that depends on neither the
  boxes nor the image (the fill of example n comes from fold_in(key, n)); the
  other pixels are returned bit for bit."""
  x = _images()
  out = np.asarray(_apply(KEY, x, HAND, mode=mode))
  x = np.asarray(x)
  mask = _mask(HAND)
  assert mask.sum(axis=(1, 2)).tolist() == [12, 3 * W, 0, 0] + [H * W] * 4
  np.testing.assert_array_equal(out[~mask].view(np.uint32), x[~mask].view(np.uint32))
  fill = _fill(KEY, mode)
  np.testing.assert_array_equal(out[mask], fill[mask])
  if mode == "rand":  # One colour per box.
    np.testing.assert_array_equal(fill, np.broadcast_to(fill[:, :1, :1], fill.shape))
  if mode == "const":
    assert (fill == 0).all()


def test_fill_statistics():
  """Eight keys of fills of eight images: the pixel fill is N(0, 1) per value, the
  rand fill one N(0, 1) colour per image and channel. Tolerances: 5 standard errors
  of the mean (1/√n) and of the standard deviation (1/√(2n))."""
  keys = jax.random.split(jax.random.key(4), 8)
  pixel = np.concatenate([_fill(k, "pixel").ravel() for k in keys]).astype(np.float64)
  n = pixel.size
  assert abs(pixel.mean()) <= 5 / math.sqrt(n)
  assert abs(pixel.std() - 1) <= 5 / math.sqrt(2 * n)
  assert stats.kstest(pixel, "norm").pvalue > KS_P
  colours = np.concatenate([_fill(k, "rand")[:, 0, 0].ravel() for k in keys])
  colours = colours.astype(np.float64)
  assert len(np.unique(colours)) == colours.size
  assert abs(colours.mean()) <= 5 / math.sqrt(colours.size)
  assert abs(colours.std() - 1) <= 5 / math.sqrt(2 * colours.size)


@functools.lru_cache
def _erased_and_boxes():
  """random_erasing(KEY, x, P_ERASE) and the boxes it draws, from one program."""
  return jax.jit(lambda x: (
      mixjax.random_erasing(KEY, x, P_ERASE),
      mixjax.sample_erasing(KEY_BOX, 8, (H, W), P_ERASE)))(_images())


def test_random_erasing_is_sample_then_apply():
  x = _images()
  out, boxes = _erased_and_boxes()
  np.testing.assert_array_equal(out, _apply(KEY_FILL, x, boxes, mode="pixel"))
  # The changed pixels are exactly the boxes (the inputs are never N(0, 1)-sized).
  changed = (np.asarray(out) != np.asarray(x)).any(axis=-1)
  np.testing.assert_array_equal(changed, _mask(boxes))
  assert 0 < np.asarray(boxes.erase).sum() < 8


def _erased(boxes):
  top, left, h, w, erase = (np.asarray(v, np.float64) for v in boxes)
  erase = erase.astype(bool)
  # Examples not erased carry the all-zero box.
  for v in (top, left, h, w):
    assert (v[~erase] == 0).all()
  return erase, top[erase], left[erase], h[erase], w[erase]


def test_default_boxes_rate_area_and_placement():
  """timm's defaults, DeiT's p = 0.25: rate, areas in [0.02, 1/3], boxes inside."""
  boxes = _sample(jax.random.key(1), batch_size=N, image_size=(BIG, BIG), probability=0.25)
  erase, top, left, h, w = _erased(boxes)
  # P(all 10 candidates rejected) < 10⁻²⁰ here, so the rate is p.
  assert abs(erase.mean() - 0.25) <= _binomial_tol(0.25)
  assert (h >= 1).all() and (w >= 1).all() and (h < BIG).all() and (w < BIG).all()
  assert (top >= 0).all() and (left >= 0).all()
  assert (top + h <= BIG).all() and (left + w <= BIG).all()
  # |side − √(s·r^±1)| ≤ ½ bounds the target area s between these products; the
  # slack 10⁻⁶ covers float32 rounding of s.
  area = BIG * BIG
  assert ((h - 0.5) * (w - 0.5) <= area / 3 * (1 + 1e-6)).all()
  assert ((h + 0.5) * (w + 0.5) >= area * 0.02 * (1 - 1e-6)).all()
  frac = h * w / area
  assert frac.min() >= 0.02 - 1e-3 and frac.max() <= 1 / 3 + 1e-3
  assert frac.min() < 0.021 and frac.max() > 0.33  # The whole range is reached.


def test_box_distributions_ks():
  """With max_area = 1/4 no candidate is ever rejected (s·r ≤ 0.25/0.3 < 1), so the
  first candidate is taken and area, log-aspect and placement are exactly
  U(0.02, 0.25)·H·W, U(log 0.3, log 1/0.3) and uniform (up to the side rounding)."""
  boxes = _sample(jax.random.key(2), batch_size=N, image_size=(BIG, BIG), probability=0.5,
                  max_area=0.25)
  erase, top, left, h, w = _erased(boxes)
  assert abs(erase.mean() - 0.5) <= _binomial_tol(0.5)
  lo = math.log(0.3)
  checks = {
      "area": (h * w / BIG**2, 0.02, 0.25 - 0.02),
      "log aspect h/w": (np.log(h / w), lo, -2 * lo),
      "top": (top / (BIG - h), 0.0, 1.0),
      "left": (left / (BIG - w), 0.0, 1.0),
  }
  for name, (values, loc, scale) in checks.items():
    p = stats.kstest(values, "uniform", args=(loc, scale)).pvalue
    assert p > KS_P, f"{name}: KS p-value {p:.2e} against U({loc:.3f}, {loc + scale:.3f})"
  # Top and left are drawn independently.
  assert abs(stats.pearsonr(top / (BIG - h), left / (BIG - w)).statistic) < 5 / math.sqrt(
      erase.sum())


def test_ten_attempts_then_give_up():
  """Area 0.9·H·W fits only for 0.9 < r < 1/0.9: one candidate fits with
  q = log(1/0.9)/log(1/0.3) ≈ 0.0875, so with p = 1 an image is erased with
  probability 1 − (1 − q)¹⁰ ≈ 0.600 (one attempt would give 0.0875, unbounded 1)."""
  boxes = _sample(jax.random.key(3), batch_size=N, image_size=(BIG, BIG), probability=1.0,
                  min_area=0.9, max_area=0.9)
  erase, _, _, h, w = _erased(boxes)
  q = math.log(1 / 0.9) / math.log(1 / 0.3)
  expected = 1 - (1 - q) ** 10
  assert abs(erase.mean() - expected) <= _binomial_tol(expected)
  assert ((h / w > 0.9 - 1e-3) & (h / w < 1 / 0.9 + 1e-3)).all()
  np.testing.assert_allclose(h * w / BIG**2, 0.9, rtol=1e-3)


DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)


@functools.lru_cache
def _erased_in_dtypes():
  """jit of random_erasing(KEY, x, P_ERASE) and its vjp for x in each of DTYPES:
  one program."""
  def forward_and_grad(xs):
    outs, vjp = jax.vjp(
        lambda xs: tuple(mixjax.random_erasing(KEY, x, P_ERASE) for x in xs), xs)
    return outs, vjp(tuple(jnp.ones_like(o) for o in outs))[0]
  outs, grads = jax.jit(forward_and_grad)(tuple(_images(dtype=d) for d in DTYPES))
  return dict(zip(DTYPES, zip(outs, grads, strict=True), strict=True))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_forward_and_grad(dtype):
  """Under jit and jax.vjp: the same dtype out; outside the boxes bit-identical;
  inside them the float32 fill cast to the dtype; d out/d x = 1 outside the boxes
  and 0 inside."""
  out, grad = _erased_in_dtypes()[dtype]
  assert out.dtype == dtype and grad.dtype == dtype
  mask = _mask(_erased_and_boxes()[1])
  assert mask.any()
  fill = np.asarray(jnp.asarray(_fill(KEY_FILL, "pixel")).astype(dtype).astype(jnp.float32))
  out, grad, x = (np.asarray(v.astype(jnp.float32)) for v in (out, grad, _images(dtype=dtype)))
  np.testing.assert_array_equal(out, np.where(mask[..., None], fill, x))
  np.testing.assert_array_equal(grad, np.broadcast_to(~mask[..., None], x.shape))


def test_vmap_per_example_and_rank3():
  """Per-example use under vmap (one key and a batch of one per example) gives what
  separate calls give; an NHW batch is erased like one channel."""
  x = _images()
  keys = jax.random.split(KEY, 8)
  mapped = jax.vmap(lambda k, x: mixjax.random_erasing(k, x[None], 1.0)[0])(keys, x)
  for b in range(8):
    np.testing.assert_array_equal(mapped[b],
                                  mixjax.random_erasing(keys[b], x[b:b + 1], 1.0)[0])
  assert (np.asarray(mapped) != np.asarray(x)).any(axis=(1, 2, 3)).all()
  gray = _images()[..., 0]
  out = np.asarray(_apply(KEY, gray, HAND, mode="const"))
  np.testing.assert_array_equal(out, np.where(_mask(HAND), 0.0, np.asarray(gray)))


def test_shard_map_matches_one_device():
  """Boxes drawn for the global batch, each device erasing its rows: the result is
  the single-device result on the global batch."""
  devices = 4
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:devices]), ("data",))
  x = _images()
  step = jax.jit(jax.shard_map(
      lambda k, x: mixjax.random_erasing(k, x, P_ERASE, axis_name="data"), mesh=mesh,
      in_specs=(P(), P("data")), out_specs=P("data")))
  np.testing.assert_array_equal(step(KEY, x), _erased_and_boxes()[0])
  # Boxes for the local batch only are refused.
  local = jax.shard_map(
      lambda k, x: mixjax.apply_erasing(k, x, HAND, axis_name="data"), mesh=mesh,
      in_specs=(P(), P("data")), out_specs=P("data"))
  with pytest.raises(ValueError, match=r"one box per example, shape \(32,\) \(8 on each"):
    local(KEY, _images(8 * devices))


def _traced_probability():
  jax.jit(lambda p: mixjax.sample_erasing(KEY, 4, (H, W), p))(0.5)


def _traced_probability_positional():
  jax.jit(lambda p: mixjax.random_erasing(KEY, _images(), p))(0.5)


ERRORS = [
    (lambda: mixjax.random_erasing(KEY, jnp.zeros((2, H, W, C), jnp.uint8)),
     "must have a floating dtype, got uint8"),
    (lambda: mixjax.apply_erasing(KEY, jnp.zeros((8, H, W, C), jnp.int32), HAND),
     "must have a floating dtype, got int32"),
    (lambda: mixjax.random_erasing(KEY, jnp.zeros((2, H), jnp.float32)),
     r"batch \[B, H, W, C\] or \[B, H, W\], got shape \(2, 8\)"),
    (lambda: mixjax.random_erasing(KEY, jnp.zeros((2, 3, 16, 16), jnp.float32)),
     "looks channels-first"),
    (lambda: mixjax.random_erasing(KEY, jnp.zeros((2, H, W, C)), mode="gauss"),
     "mode must be one of"),
    (lambda: mixjax.random_erasing(KEY, jnp.zeros((2, H, W, C)), layout="NCHW"),
     "layout must be"),
    (lambda: mixjax.apply_erasing(KEY, jnp.zeros((4, H, W, C)), HAND),
     r"one box per example, shape \(4,\)"),
    (lambda: mixjax.sample_erasing(KEY, 4, (H, W), probability=1.5), "probability"),
    (_traced_probability, "known at trace time"),
    (_traced_probability_positional, "probability fixes the compiled program"),
    (lambda: mixjax.sample_erasing(KEY, 4, (H, W), min_area=0.0), "0 < min_area"),
    (lambda: mixjax.sample_erasing(KEY, 4, (H, W), min_area=0.5, max_area=0.4),
     "min_area <= max_area"),
    (lambda: mixjax.sample_erasing(KEY, 4, (H, W), max_area=1.5), "max_area <= 1"),
    (lambda: mixjax.sample_erasing(KEY, 4, (H, W), min_aspect=0.0), "min_aspect must be > 0"),
    (lambda: mixjax.sample_erasing(KEY, 4, (H, W), max_aspect=0.2),
     "max_aspect must be >= min_aspect"),
    (lambda: mixjax.sample_erasing(KEY, 4, (H, W), min_aspect="0.3"), "must be a number"),
    (lambda: mixjax.sample_erasing(KEY, 0, (H, W)), "batch_size must be an integer >= 1"),
    (lambda: mixjax.sample_erasing(KEY, 4, (H,)), r"image_size must be a pair"),
    (lambda: mixjax.sample_erasing(KEY, 4, (H, 0)), r"image_size\[1\] \(W\)"),
]


@pytest.mark.parametrize("call, message", ERRORS, ids=[m for _, m in ERRORS])
def test_errors(call, message):
  with pytest.raises(ValueError, match=message):
    call()
