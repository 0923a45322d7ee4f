"""CutMix: pasted rectangles, exact label weights, box distribution, minmax, dtypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import mixjax
from tests.distinct_images import distinct_images, source_example
from tests.jaxpr_utils import num_eqns
from tests.tolerances import assert_close_in_ulps

B = 8  # Batch == num_classes with labels = arange(B).
SHAPE = (B, 8, 8, 3)  # H·W = 64: the kept fraction 1 − area/64 is exact in float32.
LABELS = jnp.arange(B, dtype=jnp.int32)


def _cutmix(key, x, labels=LABELS, mode="elem", pairing="permute", minmax=None,
            box_rule="reference"):
  # One spelling of the call everywhere (jit keys its cache on the keywords as passed),
  # so each configuration compiles once.
  return mixjax.cutmix(key, x, labels, num_classes=B, mode=mode, minmax=minmax,
                       pairing=pairing, box_rule=box_rule)


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
    # Seen in the pixels: the default is the reference rand_bbox rule, whose box sides
    # are 2·⌊cut/2⌋, even, wherever the box is not clipped on that axis.
    for lo, hi, size in [(0, 2, h), (1, 3, w)]:
      free = moved & (boxes[:, lo] > 0) & (boxes[:, hi] < size)
      assert ((boxes[free, hi] - boxes[free, lo]) % 2 == 0).all()
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


def _sides(boxes):
  return boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]


def test_sample_boxes_side_and_clipping():
  """Reference rule: rows [c − ⌊cut/2⌋, c + ⌊cut/2⌋) with cut = ⌊H·√(1 − λ)⌋ (columns
  alike with W), centre c in the image, clipped to it (rand_bbox, see _rand_bbox)."""
  h, w = 20, 30
  rng = np.random.default_rng(0)
  lam = np.concatenate([[0.0, 1.0, 0.75], rng.uniform(size=4000)]).astype(np.float32)
  boxes = np.asarray(mixjax.sample_boxes(jax.random.key(1), jnp.asarray(lam), h, w))
  assert boxes.dtype == np.int32 and boxes.shape == (len(lam), 4)
  ratio = np.sqrt(np.float32(1) - lam)
  for lo, hi, size, cut in [(0, 2, h, np.floor(np.float32(h) * ratio).astype(int)),
                            (1, 3, w, np.floor(np.float32(w) * ratio).astype(int))]:
    half = cut // 2
    start, end = boxes[:, lo], boxes[:, hi]
    assert ((0 <= start) & (start <= end) & (end <= size)).all()
    interior = (start > 0) & (end < size)
    # Unclipped, a side is 2·⌊cut/2⌋: cut itself when even, one short when odd.
    np.testing.assert_array_equal((end - start)[interior], 2 * half[interior])
    assert (interior & (cut % 2 == 1)).any() and (interior & (cut % 2 == 0)).any()
    # An unclipped end fixes the centre c = start + ⌊cut/2⌋ (or end − ⌊cut/2⌋), which
    # lies in the image; the other end is c ∓ ⌊cut/2⌋, clipped.
    kept = start > 0
    centre = np.where(kept, start + half, end - half)
    unknown = (start == 0) & (end == size)
    assert ((centre[~unknown] >= 0) & (centre[~unknown] < size)).all()
    np.testing.assert_array_equal(end[kept], np.minimum(centre + half, size)[kept])
    kept = end < size
    np.testing.assert_array_equal(start[kept], np.maximum(centre - half, 0)[kept])
    assert (end - start <= 2 * half).all()
    assert interior.mean() > 0.2 and (start == 0).mean() > 0.05 and (end == size).mean() > 0.05
  # λ = 0: an image-sized box around a uniform centre, so clipped unless centred.
  assert boxes[0, 0] == 0 and boxes[0, 1] == 0
  assert mixjax.box_area(jnp.asarray(boxes))[1] == 0  # λ = 1: empty.
  area = np.asarray(mixjax.box_area(jnp.asarray(boxes)))
  assert (area <= (1 - lam) * h * w + 1e-3).all()


def test_full_side_rule_replays_mixjax_0_1_boxes():
  """box_rule="full_side" is mixjax 0.1.0's rule: same key, same boxes, bit for bit."""
  lam = jnp.asarray([0.1, 0.3, 0.5, 0.62, 0.8, 0.95, 0.0, 0.45], jnp.float32)
  # sample_boxes(jax.random.key(11), lam, 20, 30) at commit f079acb (mixjax 0.1.0).
  recorded = [[0, 0, 17, 14], [0, 16, 13, 30], [0, 8, 12, 29], [12, 3, 20, 21],
              [13, 19, 20, 30], [7, 23, 11, 29], [0, 0, 14, 17], [0, 0, 13, 20]]
  key = jax.random.key(11)
  old = np.asarray(mixjax.sample_boxes(key, lam, 20, 30, "full_side"))
  np.testing.assert_array_equal(old, recorded)
  new = np.asarray(mixjax.sample_boxes(key, lam, 20, 30))
  assert (new != old).any()
  # Many draws: the same centres; full_side's unclipped side is exactly cut, so it
  # starts where the reference box starts and ends up to one pixel further.
  h, w, n = 20, 30, 4000
  lam = jax.random.uniform(jax.random.key(2), (n,))
  old = np.asarray(mixjax.sample_boxes(key, lam, h, w, box_rule="full_side"))
  new = np.asarray(mixjax.sample_boxes(key, lam, h, w, box_rule="reference"))
  np.testing.assert_array_equal(old[:, :2], new[:, :2])
  assert set(np.unique(old[:, 2:] - new[:, 2:])) == {0, 1}
  ratio = np.sqrt(np.float32(1) - np.asarray(lam))
  for (lo, hi), size in [((0, 2), h), ((1, 3), w)]:
    cut = np.floor(np.float32(size) * ratio).astype(int)
    interior = (old[:, lo] > 0) & (old[:, hi] < size)
    np.testing.assert_array_equal((old[:, hi] - old[:, lo])[interior], cut[interior])

@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_box_rule_reaches_sample_cutmix_and_cutmix(mode):
  """box_rule flows from cutmix/sample_cutmix to the boxes, with exact weights for each."""
  h, w, n = 32, 32, 2000  # 32×32: even sides when unclipped under the reference rule.
  for rule, odd in [("reference", False), ("full_side", True)]:
    boxes, weight = mixjax.sample_cutmix_boxes(jax.random.key(9), n, (h, w), mode="elem",
                                               box_rule=rule)
    heights, _ = _sides(np.asarray(boxes))
    interior = (np.asarray(boxes)[:, 0] > 0) & (np.asarray(boxes)[:, 2] < h)
    assert (heights[interior] % 2 == 1).any() == odd
    params = mixjax.sample_cutmix(jax.random.key(9), B, (8, 8), mode=mode, box_rule=rule)
    x = distinct_images(SHAPE)
    out, y = _cutmix(jax.random.key(9), x, mode=mode, box_rule=rule)
    expected = mixjax.apply_mix(params, x, LABELS, B)
    np.testing.assert_array_equal(out, expected[0])  # Pasted pixels are copies.
    # w·e_i + (1 − w)·e_p, rounded once or fused into an FMA: 1 ulp of 1.
    assert_close_in_ulps(y, expected[1], 1, scale=1.0)


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


def _rand_bbox(size, lam, rng):
  """CutMix-PyTorch's ``rand_bbox``, copied from clovaai/CutMix-PyTorch train.py lines
  279–295 (commit 2d8eb68), with ``np.int`` (gone from numpy) as ``int`` and
  ``np.random`` as the RandomState ``rng``. ``size`` is an NCHW shape, so its ``W``
  (``size[2]``) is the number of rows and ``bbx1:bbx2`` a row range (train.py line 235
  pastes ``input[:, :, bbx1:bbx2, bby1:bby2]``). timm's ``rand_bbox``
  (timm/data/mixup.py lines 30–51) is the same rule with the axes named by what they are.
  """
  W = size[2]  # noqa: N806 (the reference's names)
  H = size[3]  # noqa: N806
  cut_rat = np.sqrt(1. - lam)
  cut_w = int(W * cut_rat)
  cut_h = int(H * cut_rat)

  # uniform
  cx = rng.randint(W)
  cy = rng.randint(H)

  bbx1 = np.clip(cx - cut_w // 2, 0, W)
  bby1 = np.clip(cy - cut_h // 2, 0, H)
  bbx2 = np.clip(cx + cut_w // 2, 0, W)
  bby2 = np.clip(cy + cut_h // 2, 0, H)

  return bbx1, bby1, bbx2, bby2


def _reference_cutmix(alpha, n, h, w, seed):
  """n draws of CutMix-PyTorch's train.py: λ ~ Beta(α, α) (line 230), the box from
  rand_bbox (line 234) and λ corrected to the pasted fraction (line 237).

  Returns:
    (boxes [n, 4] as (top, left, bottom, right), label weights [n]).
  """
  rng = np.random.RandomState(seed)
  boxes = np.empty((n, 4), np.int64)
  for i in range(n):
    lam = rng.beta(alpha, alpha)
    bbx1, bby1, bbx2, bby2 = _rand_bbox((1, 3, h, w), lam, rng)
    boxes[i] = bbx1, bby1, bbx2, bby2
  heights, widths = _sides(boxes)
  return boxes, 1 - heights * widths / (h * w)


# Seven statistics per case: the pasted area (H·W·(1 − w), an integer, so that float32
# and float64 copies of one fraction tie as they should), the four corners, height, width.
_KS_LEVEL = 0.01 / 7  # Bonferroni: the seven together at the 1% level.


def _ks_statistics(boxes):
  heights, widths = _sides(boxes)
  return {"area": heights * widths, "top": boxes[:, 0], "left": boxes[:, 1],
          "bottom": boxes[:, 2], "right": boxes[:, 3], "height": heights, "width": widths}


@pytest.mark.parametrize("alpha,size", [(1.0, (32, 32)), (0.3, (20, 30)), (2.0, (15, 16))],
                         ids=["a1-32x32", "a0.3-20x30", "a2-15x16"])
def test_cutmix_boxes_match_reference_rand_bbox(alpha, size):
  """Two-sample KS of our default boxes against the numpy copy of rand_bbox.

  20,000 draws each, fixed seeds; each statistic at the 0.01/7 level, so the seven
  together at 1% (the data are discrete, which only makes KS conservative). The
  non-square sizes check that rows use H and columns W; 15 gives odd cuts of both
  parities. Power: the same test rejects mixjax 0.1.0's full_side boxes.
  """
  h, w = size
  n = 20_000
  boxes, weight = mixjax.sample_cutmix_boxes(jax.random.key(3), n, size, alpha=alpha,
                                             mode="elem")
  boxes, weight = np.asarray(boxes), np.asarray(weight)
  # The label weight is exactly 1 − area/(H·W) of each clipped box (correct_lam).
  heights, widths = _sides(boxes)
  assert_close_in_ulps(weight, 1.0 - heights * widths / (h * w), 1, scale=1.0)
  np.testing.assert_array_equal(np.rint((1.0 - weight.astype(np.float64)) * h * w),
                                heights * widths)
  ours = _ks_statistics(boxes)
  ref = _ks_statistics(_reference_cutmix(alpha, n, h, w, seed=0)[0])
  for name in ours:
    pvalue = stats.ks_2samp(ours[name], ref[name]).pvalue
    assert pvalue > _KS_LEVEL, (name, pvalue)
  # Power: the old rule's boxes are rejected (they differ only by one pixel at odd cuts).
  old, _ = mixjax.sample_cutmix_boxes(jax.random.key(4), n, size, alpha=alpha, mode="elem",
                                      box_rule="full_side")
  old = _ks_statistics(np.asarray(old))
  assert min(stats.ks_2samp(old[name], ref[name]).pvalue for name in old) < 1e-6
  # And a different α is rejected.
  other = _ks_statistics(_reference_cutmix(3 * alpha, n, h, w, seed=1)[0])
  assert stats.ks_2samp(ours["area"], other["area"]).pvalue < 1e-6


def test_mean_pasted_fraction_matches_reference():
  # α = 1 on 32×32: E[1 − w] = 0.2995 for rand_bbox (0.3105 for mixjax 0.1.0's rule).
  # 100,000 draws: the standard error is 0.25/√n < 0.001, so 4σ is 0.004 (< the 0.011 gap).
  n = 100_000
  _, weight = mixjax.sample_cutmix_boxes(jax.random.key(5), n, (32, 32), mode="elem")
  _, ref_weight = _reference_cutmix(1.0, n, 32, 32, seed=2)
  pasted, ref_pasted = 1 - np.asarray(weight, np.float64), 1 - ref_weight
  se = np.sqrt(pasted.var() / n + ref_pasted.var() / n)
  assert abs(pasted.mean() - ref_pasted.mean()) < 4 * se
  _, old_weight = mixjax.sample_cutmix_boxes(jax.random.key(5), n, (32, 32), mode="elem",
                                             box_rule="full_side")
  assert (1 - np.asarray(old_weight, np.float64)).mean() - ref_pasted.mean() > 8 * se


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
