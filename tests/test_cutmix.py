"""CutMix: pasted rectangles, exact label weights, box distribution, minmax, dtypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import mixjax
from tests.distinct_images import distinct_images, source_example
from tests.jaxpr_utils import num_eqns

B = 8  # Batch == num_classes with labels = arange(B).
SHAPE = (B, 8, 8, 3)  # H·W = 64: the kept fraction 1 − area/64 is exact in float32.
LABELS = jnp.arange(B, dtype=jnp.int32)


def _cutmix(key, x, labels=LABELS, mode="elem", pairing="permute", minmax=None):
  # One spelling of the call everywhere, so each configuration compiles once.
  return mixjax.cutmix(key, x, labels, num_classes=B, mode=mode, minmax=minmax,
                       pairing=pairing)


def _check_cutmix(x, out, mixed_labels):
  """Recovers each example's pasted box and partner from the output and checks them.

  Asserts: every pixel is the example's own or its partner's, at the same position;
  the partner's pixels form one rectangle; the label row is w·e_i + (1 − w)·e_p with
  1 − w the exact pasted fraction.

  Returns:
    (boxes [B, 4] as (top, left, bottom, right), partners [B], label weights [B]).
  """
  dtype = x.dtype
  x, out, y = np.asarray(x), np.asarray(out), np.asarray(mixed_labels)
  b, h, w = x.shape[:3]
  assert out.dtype == x.dtype and out.shape == x.shape
  source = source_example(out, dtype)
  if source.ndim == 4:  # All channels of a pixel come from the same example.
    assert (source == source[..., :1]).all()
    source = source[..., 0]
  boxes, partners, weights = [], [], []
  for i in range(b):
    pasted = source[i] != i
    sources = np.unique(source[i][pasted])
    assert len(sources) <= 1, f"example {i} got pixels from several examples"
    partner = int(sources[0]) if len(sources) else i
    # Each pixel is the original one of its source, at the same place.
    np.testing.assert_array_equal(out[i], np.where(
        pasted.reshape(pasted.shape + (1,) * (x.ndim - 3)), x[partner], x[i]))
    if pasted.any():
      rows = np.flatnonzero(pasted.any(axis=1))
      cols = np.flatnonzero(pasted.any(axis=0))
      box = (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
      assert pasted[box[0]:box[2], box[1]:box[3]].all(), "pasted region is not a rectangle"
    else:
      box = (0, 0, 0, 0)
    area = int(pasted.sum())
    assert area == (box[2] - box[0]) * (box[3] - box[1])
    # Label row: w·e_i + (1 − w)·e_partner with w = 1 − area/(H·W); nothing pasted
    # (an empty box, or the example paired with itself) leaves the one-hot row.
    if partner == i:
      np.testing.assert_array_equal(y[i], np.eye(b, dtype=np.float32)[i])
      weight = np.float32(1)
    else:
      weight = y[i, i]
      expected = np.zeros(b, np.float32)
      expected[i], expected[partner] = weight, 1.0 - weight
      np.testing.assert_allclose(y[i], expected, rtol=0, atol=1e-7)
      # Exactly the pasted fraction: (1 − w)·H·W == area; bit-exact when H·W is a
      # power of two, within float32 rounding otherwise.
      assert np.rint((1.0 - np.float64(weight)) * h * w) == area
      np.testing.assert_allclose(weight, 1.0 - area / (h * w), rtol=0, atol=1e-7)
      if (h * w) & (h * w - 1) == 0:
        assert weight == np.float32(1) - np.float32(area) / np.float32(h * w)
    boxes.append(box)
    partners.append(partner)
    weights.append(weight)
  return np.array(boxes), np.array(partners), np.array(weights)


@pytest.mark.parametrize(
    "mode,pairing,shape",
    [("batch", "permute", SHAPE), ("elem", "permute", SHAPE), ("elem", "flip", (B, 6, 10, 3))],
    ids=["batch-permute", "elem-permute", "elem-flip-6x10"])
def test_cutmix_pastes_a_rectangle_with_exact_weight(mode, pairing, shape):
  x = distinct_images(shape)
  h, w = shape[1:3]
  all_boxes = []
  for seed in range(4):
    key = jax.random.key(seed)
    out, y = _cutmix(key, x, mode=mode, pairing=pairing)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y).sum(axis=1), 1.0, atol=1e-6)
    boxes, partners, weights = _check_cutmix(x, out, y)

    # The recovered mix is the one sample_cutmix draws with the same key.
    params = mixjax.sample_cutmix(key, B, (h, w), alpha=1.0, mode=mode, pairing=pairing)
    assert params.lam is None
    perm = np.asarray(params.perm)
    param_boxes = np.asarray(params.boxes)
    area = np.asarray(mixjax.box_area(params.boxes))
    moved = (perm != np.arange(B)) & (area > 0)
    np.testing.assert_array_equal(partners[moved], perm[moved])
    np.testing.assert_array_equal(boxes[moved], param_boxes[moved])
    # Eager and compiled weights agree to float32 rounding (XLA may divide by H·W as a
    # multiplication by its reciprocal when H·W is not a power of two).
    np.testing.assert_allclose(weights[moved], np.asarray(params.label_weight)[moved],
                               rtol=0, atol=1e-7)
    if pairing == "flip":
      np.testing.assert_array_equal(perm, np.arange(B)[::-1])
    if mode == "batch":
      assert (param_boxes == param_boxes[0]).all(), "batch mode must share one box"
      assert (boxes[moved] == param_boxes[0]).all()
    all_boxes.append(param_boxes)
  all_boxes = np.concatenate(all_boxes)
  if mode == "elem":
    assert len({tuple(b) for b in all_boxes}) > 8, "elem mode must draw a box per example"
    heights = all_boxes[:, 2] - all_boxes[:, 0]
    widths = all_boxes[:, 3] - all_boxes[:, 1]
    touches = ((all_boxes[:, 0] == 0) | (all_boxes[:, 1] == 0) |
               (all_boxes[:, 2] == h) | (all_boxes[:, 3] == w))
    if h == w:  # Unclipped boxes are square here, so the draws include clipped ones.
      assert (touches & (heights != widths)).any()


def test_cutmix_rank3_images():
  x = distinct_images((B, 8, 8))
  out, y = _cutmix(jax.random.key(5), x)
  _, partners, _ = _check_cutmix(x, out, y)
  assert (partners != np.arange(B)).any()


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.uint8])
def test_cutmix_keeps_dtype_and_copies_pixels(dtype):
  x = distinct_images(SHAPE, dtype, seed=3)
  out, y = _cutmix(jax.random.key(6), x)
  assert out.dtype == dtype and y.dtype == jnp.float32
  _, partners, _ = _check_cutmix(x, out, y)  # Bit-exact copies of the inputs.
  assert (partners != np.arange(B)).any()


def test_sample_boxes_side_and_clipping():
  """Unclipped side ⌊H·√(1 − λ)⌋ × ⌊W·√(1 − λ)⌋, centre in the image, clipped to it."""
  h, w = 20, 30
  rng = np.random.default_rng(0)
  lam = np.concatenate([[0.0, 1.0, 0.75], rng.uniform(size=4000)]).astype(np.float32)
  boxes = np.asarray(mixjax.sample_boxes(jax.random.key(1), jnp.asarray(lam), h, w))
  assert boxes.dtype == np.int32 and boxes.shape == (len(lam), 4)
  ratio = np.sqrt(np.float32(1) - lam)
  for lo, hi, size, cut in [(0, 2, h, np.floor(np.float32(h) * ratio).astype(int)),
                            (1, 3, w, np.floor(np.float32(w) * ratio).astype(int))]:
    start, end = boxes[:, lo], boxes[:, hi]
    assert ((0 <= start) & (start <= end) & (end <= size)).all()
    interior = (start > 0) & (end < size)
    np.testing.assert_array_equal((end - start)[interior], cut[interior])
    assert (end - start <= cut).all()
    # The box starts cut//2 before its centre, unless clipped at the start.
    centre = start + cut // 2
    clipped_start = start == 0
    assert ((centre[~clipped_start] >= 0) & (centre[~clipped_start] < size)).all()
    np.testing.assert_array_equal(end[~clipped_start],
                                  np.minimum(start + cut, size)[~clipped_start])
    assert (end[clipped_start] <= cut[clipped_start]).all()
    assert interior.mean() > 0.2 and clipped_start.mean() > 0.05
  # λ = 0: an image-sized box around a uniform centre, so clipped unless centred.
  assert boxes[0, 0] == 0 and boxes[0, 1] == 0
  assert mixjax.box_area(jnp.asarray(boxes))[1] == 0  # λ = 1: empty.
  area = np.asarray(mixjax.box_area(jnp.asarray(boxes)))
  assert (area <= (1 - lam) * h * w + 1e-3).all()


def test_box_centre_is_uniform():
  # λ = 1 gives empty boxes at the centre: top == bottom == c_y, left == right == c_x.
  # Chi-square over the 20 rows and 30 columns at the 1% level.
  h, w, n = 20, 30, 6000
  boxes = np.asarray(mixjax.sample_boxes(jax.random.key(2), jnp.ones((n,)), h, w))
  np.testing.assert_array_equal(boxes[:, 0], boxes[:, 2])
  np.testing.assert_array_equal(boxes[:, 1], boxes[:, 3])
  assert stats.chisquare(np.bincount(boxes[:, 0], minlength=h)).pvalue > 0.01
  assert stats.chisquare(np.bincount(boxes[:, 1], minlength=w)).pvalue > 0.01
  assert boxes[:, 0].max() == h - 1 and boxes[:, 1].max() == w - 1


def _simulate_cutmix(alpha, n, h, w, seed):
  """The spec in numpy: λ ~ Beta(α, α), side ⌊size·√(1 − λ)⌋, uniform centre, clipped."""
  rng = np.random.default_rng(seed)
  ratio = np.sqrt(1.0 - rng.beta(alpha, alpha, n))
  sides = []
  for size in (h, w):
    cut = np.floor(size * ratio).astype(int)
    start = rng.integers(0, size, n) - cut // 2
    sides.append(np.clip(start + cut, 0, size) - np.clip(start, 0, size))
  return sides[0], 1.0 - sides[0] * sides[1] / (h * w)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.0])
def test_cutmix_box_distribution_matches_spec(alpha):
  # Two-sample KS against the numpy simulation, 20,000 draws each, at the 1% level
  # (the data are discrete, which only makes the test conservative).
  h, w, n = 16, 16, 20_000
  boxes, weight = mixjax.sample_cutmix_boxes(jax.random.key(3), n, (h, w), alpha=alpha,
                                             mode="elem")
  boxes, weight = np.asarray(boxes), np.asarray(weight, np.float64)
  np.testing.assert_array_equal(
      weight, 1.0 - np.float32((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
      / np.float32(h * w))
  sim_height, sim_weight = _simulate_cutmix(alpha, n, h, w, seed=0)
  assert stats.ks_2samp(weight, sim_weight).pvalue > 0.01
  assert stats.ks_2samp(boxes[:, 2] - boxes[:, 0], sim_height).pvalue > 0.01
  # Power: the same test rejects a different α.
  _, other_weight = _simulate_cutmix(3 * alpha, n, h, w, seed=1)
  assert stats.ks_2samp(weight, other_weight).pvalue < 1e-6


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_minmax_boxes_in_range_and_never_clipped(mode):
  h, w, n = 20, 30, 4000
  boxes, weight = mixjax.sample_cutmix_boxes(jax.random.key(4), n, (h, w), mode=mode,
                                             minmax=(0.2, 0.6))
  boxes, weight = np.asarray(boxes), np.asarray(weight)
  heights, widths = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
  # Sides are integers in [⌊H·min⌋, ⌊H·max⌋] and the box lies wholly in the image.
  assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= h).all() and (boxes[:, 3] <= w).all()
  np.testing.assert_allclose(weight, 1.0 - heights * widths / (h * w), rtol=0, atol=1e-7)
  if mode == "batch":
    assert (boxes == boxes[0]).all()
    return
  assert set(heights) == set(range(4, 13)) and set(widths) == set(range(6, 19))
  assert stats.chisquare(np.bincount(heights)[4:]).pvalue > 0.01
  # Placement is uniform over the positions where the box fits, edges included.
  assert (boxes[:, 0] == 0).any() and (boxes[:, 2] == h).any()
  assert (boxes[:, 1] == 0).any() and (boxes[:, 3] == w).any()


def test_cutmix_minmax_output():
  x = distinct_images(SHAPE)
  sides = []
  for seed in range(3):
    out, y = _cutmix(jax.random.key(seed), x, minmax=(0.25, 0.5))
    boxes, partners, _ = _check_cutmix(x, out, y)
    moved = partners != np.arange(B)
    sides.append(boxes[moved][:, 2:] - boxes[moved][:, :2])
  sides = np.concatenate(sides)
  assert ((sides >= 2) & (sides <= 4)).all()  # ⌊8·0.25⌋ … ⌊8·0.5⌋, never clipped.


@pytest.mark.parametrize("minmax", [None, (0.2, 0.5)])
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_cutmix_is_one_program_for_any_batch(mode, minmax):
  def size(batch):
    x = jnp.zeros((batch, 8, 8, 3))
    y = jnp.zeros((batch,), jnp.int32)
    fn = lambda k, x, y: _cutmix(k, x, y, mode=mode, minmax=minmax)
    return num_eqns(jax.make_jaxpr(fn)(jax.random.key(0), x, y).jaxpr)
  assert size(4) == size(64)
