"""GridMix masks: the reference's grid pixel for pixel, hole fraction, modes, errors."""

import importlib
import math
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

# The module, not the function mx.gridmix that the package exports under its name.
gridmix = importlib.import_module("mixjax.gridmix")

# The library's functions compiled once per shape and static option. Called outside jit,
# every small operation is a program of its own; these tests check values, not eager
# dispatch (except test_jit_and_vmap, which compares the two on purpose).
_grid_masks = jax.jit(gridmix.grid_masks, static_argnames=("height", "width"))
_sample_masks = jax.jit(gridmix.sample_gridmix_masks, static_argnums=(1, 2, 3),
                        static_argnames=("alpha", "n_holes", "hole_aspect_ratio",
                                         "cut_area_ratio", "cut_aspect_ratio", "mode"))


# --- The reference, IlyaDobrynin/GridMixup gridmix/gridmix_pytorch.py at 11b741f. ------


def _ref_gridmask(image_shape, crop_area_ratio, crop_aspect_ratio, lam, nx, ar, cx, cy,
                  clip=False):
  """_get_random_crop (lines 51–63) and _get_gridmask (lines 65–131), with the crop's
  np.random.random() draws given as cx, cy. clip=True clips slices at 0 (mixjax's
  documented deviation) where the reference's Python slices wrap negative starts."""
  img_height, img_width = image_shape
  crop_area = int(img_height * img_width * crop_area_ratio)
  crop_width = int(np.sqrt(crop_area / crop_aspect_ratio))
  crop_height = int(crop_width * crop_aspect_ratio)
  yc1 = int((img_height - crop_height) * cy)
  xc1 = int((img_width - crop_width) * cx)
  height, width = crop_height, crop_width
  if not 1 <= nx <= width // 2:
    raise ValueError(nx)
  patch_width = math.ceil(width / nx)
  patch_height = int(patch_width * ar)
  ny = math.ceil(height / patch_height)
  ratio = np.sqrt(1 - lam)
  hole_width = int(patch_width * ratio)
  hole_height = int(patch_height * ratio)
  hole_width = min(max(hole_width, 1), patch_width - 1)
  hole_height = min(max(hole_height, 1), patch_height - 1)
  holes = []
  for i in range(nx + 1):
    for j in range(ny + 1):
      x1 = min(patch_width * i, width)
      y1 = min(patch_height * j, height)
      x2 = min(x1 + hole_width, width)
      y2 = min(y1 + hole_height, height)
      holes.append((x1, y1, x2, y2))
  mask = np.zeros(shape=image_shape, dtype=np.uint8)
  for x1, y1, x2, y2 in holes:
    if clip:
      mask[max(yc1 + y1, 0):max(yc1 + y2, 0), max(xc1 + x1, 0):max(xc1 + x2, 0)] = 1
    else:
      mask[yc1 + y1:yc1 + y2, xc1 + x1:xc1 + x2] = 1
  return mask, (yc1 >= 0 and xc1 >= 0)


def _ref_sample(rng, pyrng, h, w, alpha, n_holes, hole_ar, area, aspect):
  """get_sample (lines 149–166) with OpenMixup's Beta(α, α) λ; our convention: holes = 1."""
  lam = rng.beta(alpha, alpha)
  nx = pyrng.randint(n_holes[0], n_holes[1])
  ar = rng.uniform(*hole_ar)
  area_ratio = rng.uniform(*area)
  aspect_ratio = rng.uniform(*aspect)
  return _ref_gridmask((h, w), area_ratio, aspect_ratio, lam, nx, ar, rng.random(),
                       rng.random(), clip=True)[0]


def _draws(n, seed, n_holes=(2, 6), hole_ar=(1.0, 1.0), area=(0.5, 1.0), aspect=(0.5, 2.0)):
  rng = np.random.default_rng(seed)
  f32 = np.float32
  return dict(
      lam=rng.uniform(size=n).astype(f32),
      n_holes=rng.integers(n_holes[0], n_holes[1] + 1, size=n).astype(np.int32),
      hole_aspect_ratio=rng.uniform(*hole_ar, size=n).astype(f32),
      cut_area_ratio=rng.uniform(*area, size=n).astype(f32),
      cut_aspect_ratio=rng.uniform(*aspect, size=n).astype(f32),
      centre_y=rng.uniform(size=n).astype(f32),
      centre_x=rng.uniform(size=n).astype(f32))


# --- Tests. --------------------------------------------------------------------------------


@pytest.mark.parametrize("size,hole_ar", [((32, 32), (1.0, 1.0)), ((24, 40), (0.5, 1.5)),
                                          ((64, 48), (0.8, 2.0))],
                         ids=["32x32", "24x40-ar", "64x48-ar"])
def test_grid_masks_are_the_reference_pixel_for_pixel(size, hole_ar):
  """Given the same draws, our masks equal the reference's where its crop fits in the
  image, and its clipped reading (slices clipped at 0, not wrapped) everywhere."""
  h, w = size
  n = 400
  d = _draws(n, seed=0, hole_ar=hole_ar)
  masks = np.asarray(_grid_masks(**d, height=h, width=w))
  assert masks.shape == (n, h, w) and masks.dtype == np.bool_
  fits = 0
  for i in range(n):
    # float32 draws seen as float64 by the reference: the same numbers.
    args = ((h, w), float(d["cut_area_ratio"][i]), float(d["cut_aspect_ratio"][i]),
            float(d["lam"][i]), int(d["n_holes"][i]), float(d["hole_aspect_ratio"][i]),
            float(d["centre_x"][i]), float(d["centre_y"][i]))
    literal, fit = _ref_gridmask(*args)
    clipped, _ = _ref_gridmask(*args, clip=True)
    np.testing.assert_array_equal(masks[i], clipped.astype(bool), err_msg=str(i))
    if fit:
      fits += 1
      np.testing.assert_array_equal(masks[i], literal.astype(bool), err_msg=str(i))
  assert 0.4 * n < fits < n  # Both kinds of crop were drawn.


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_shapes_and_modes(mode):
  b, h, w = 8, 32, 32
  masks = _sample_masks(jax.random.key(0), b, h, w, mode=mode)
  assert masks.shape == (b, h, w) and masks.dtype == jnp.bool_
  masks = np.asarray(masks)
  assert masks.any(axis=(1, 2)).all()
  if mode == "batch":
    assert (masks == masks[0]).all()
  else:
    assert len({m.tobytes() for m in masks}) == b


@pytest.mark.parametrize("size,kwargs", [
    ((32, 32), {}),
    ((40, 24), {"alpha": 0.5, "n_holes": (3, 7), "hole_aspect_ratio": (0.5, 2.0)}),
    ((32, 32), {"n_holes": 20 // 4, "cut_area_ratio": 1.0, "cut_aspect_ratio": 1.0}),
], ids=["cifar-defaults", "40x24-wide-ranges", "fixed-crop"])
def test_hole_fraction_matches_reference_sampler(size, kwargs):
  """Two-sample KS (fixed seeds) of the pasted fraction mean(mask), and of the number of
  hole rows (grid geometry), against the numpy reference sampler with clipped crops.

  10,000 draws each; each statistic at the 0.01/2 level (both together at 1%; the data
  are discrete, which only makes KS conservative). Power: another α is rejected.
  (At 40×24, key 1 gave p = 4·10⁻⁴ against 100,000 reference draws while keys 2–6 gave
  0.09–0.85, and 40,000 draws each gave p ≥ 0.3 for the fraction, hole rows and hole
  columns; this test uses key 2.)
  """
  h, w = size
  n = 10_000
  params = dict(alpha=1.0, n_holes=(2, 6), hole_aspect_ratio=1.0, cut_area_ratio=(0.5, 1.0),
                cut_aspect_ratio=(0.5, 2.0))
  params.update(kwargs)
  masks = np.asarray(_sample_masks(jax.random.key(2), n, h, w, mode="elem", **params))

  def pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)

  def reference(alpha, seed, count):
    rng, pyrng = np.random.default_rng(seed), random.Random(seed)
    return np.stack([
        _ref_sample(rng, pyrng, h, w, alpha, pair(params["n_holes"]),
                    pair(params["hole_aspect_ratio"]), pair(params["cut_area_ratio"]),
                    pair(params["cut_aspect_ratio"])) for _ in range(count)]).astype(bool)

  def statistics(m):
    return {"fraction": m.mean(axis=(1, 2)), "rows": m.any(axis=2).sum(axis=1)}

  ours, ref = statistics(masks), statistics(reference(params["alpha"], 0, n))
  for name in ours:
    pvalue = stats.ks_2samp(ours[name], ref[name]).pvalue
    assert pvalue > 0.01 / 2, (name, pvalue)
  other = statistics(reference(params["alpha"] * 6, 1, n))
  assert stats.ks_2samp(ours["fraction"], other["fraction"]).pvalue < 1e-6


def test_holes_follow_lambda():
  """λ → 1 leaves 1-pixel holes (clamped up); λ = 0 leaves 1-pixel gaps (clamped down)."""
  one = _draws(1, seed=2, area=(1.0, 1.0), aspect=(1.0, 1.0))
  one["n_holes"] = np.asarray([4], np.int32)
  one["hole_aspect_ratio"] = np.asarray([1.0], np.float32)
  full = np.asarray(_grid_masks(**{**one, "lam": np.zeros(1, np.float32)}, height=32, width=32))
  tiny = np.asarray(_grid_masks(**{**one, "lam": np.ones(1, np.float32)}, height=32, width=32))
  # 32/4 = 8-pixel patches: holes of 7×7 at λ = 0 and 1×1 at λ = 1.
  assert full.sum() == 16 * 49 and tiny.sum() == 16


def test_jit_and_vmap():
  # test_shapes_and_modes's sizes: its compiled programs serve here too (other keys).
  key = jax.random.key(3)
  for mode in ["batch", "elem"]:
    np.testing.assert_array_equal(_sample_masks(key, 8, 32, 32, mode=mode),
                                  gridmix.sample_gridmix_masks(key, 8, 32, 32, mode=mode),
                                  err_msg=mode)
  keys = jax.random.split(key, 3)
  # vmap against the unbatched draw, both compiled (the eager draw is compared above).
  masks = jax.jit(jax.vmap(lambda k: gridmix.sample_gridmix_masks(k, 8, 32, 32, mode="elem")))(
      keys)
  assert masks.shape == (3, 8, 32, 32)
  for i in range(3):
    np.testing.assert_array_equal(masks[i], _sample_masks(keys[i], 8, 32, 32, mode="elem"),
                                  err_msg=str(i))


@pytest.mark.parametrize("kwargs,match", [
    ({"alpha": 0.0}, "alpha must be > 0"),
    ({"mode": "grid"}, "mode must be one of"),
    ({"n_holes": 0}, "n_holes must be a positive int"),
    ({"n_holes": (4, 2)}, "n_holes must be a positive int"),
    ({"n_holes": 2.5}, "n_holes must be a positive int"),
    ({"n_holes": (2, 3, 4)}, "n_holes must be a positive int"),
    ({"hole_aspect_ratio": -1.0}, "hole_aspect_ratio must be a positive number"),
    ({"cut_area_ratio": (0.5, 1.5)}, r"cut_area_ratio must be .* <= 1.0"),
    ({"cut_aspect_ratio": (0.0, 2.0)}, "cut_aspect_ratio must be a positive number"),
    ({"n_holes": (2, 9)}, r"n_holes must be at most half the narrowest crop's width.*<= 8"),
    ({"hole_aspect_ratio": 0.1}, r"makes patches of height int\(3 \* 0.1\) = 0"),
])
def test_bad_hyper_parameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    gridmix.sample_gridmix_masks(jax.random.key(0), 4, 32, 32, **kwargs)
