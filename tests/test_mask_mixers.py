"""FMix, GridMix, SmoothMix and SaliencyMix applied: every changed pixel is the partner's,
inside exactly the mask; label weights are the exact mask mass; modes, dtypes, mixers,
errors. (Their samplers are tested against the references in test_<method>.py; jit,
vmap and shard_map in test_transforms.py.)"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixjax as mx
from tests.distinct_images import distinct_images, source_example
from tests.tolerances import F32_EPS, assert_close_in_ulps

B = 8
LABELS = jnp.arange(B, dtype=jnp.int32)
# 24 × 24 is about the smallest square that GridMix's CIFAR defaults fit: the narrowest
# crop, ⌊√(⌊24·24·0.5⌋/2)⌋ = 12 pixels, holds n_hi = 6 holes of 2.
SHAPES = [(B, 24, 24, 3), (B, 24, 26)]
BF16_EPS = 2.0**-7  # bfloat16 has 8 significand bits.

FUNCTIONS = {"fmix": mx.fmix, "gridmix": mx.gridmix, "smoothmix": mx.smoothmix,
             "saliencymix": mx.saliencymix}
HARD = ["fmix", "gridmix", "saliencymix"]
MODES = ["batch", "elem"]
DTYPES = [jnp.float32, jnp.bfloat16, jnp.uint8]
# (shape, dtype) of the mixed images: every dtype in colour, and grey (no channel axis,
# not square) in uint8, the usual grey format.
CASES = [(SHAPES[0], dtype) for dtype in DTYPES] + [(SHAPES[1], jnp.uint8)]
CASE_IDS = [f"{len(shape)}d-{jnp.dtype(dtype).name}" for shape, dtype in CASES]
SEEDS = range(3)


def _sample(name, key, x, mode):
  """The draw of what FUNCTIONS[name](key, x, ...) applies."""
  size = x.shape[1:3]
  if name == "saliencymix":
    return mx.sample_saliencymix(key, x, mode=mode)
  sample = {"fmix": mx.sample_fmix, "gridmix": mx.sample_gridmix,
            "smoothmix": mx.sample_smoothmix}[name]
  return sample(key, B, size, mode=mode)


def _mask(params, box_mask):
  """``[B, H, W]`` partner weight of a drawn mix (a box for SaliencyMix: ``box_mask``, the
  boxes rasterised by ``mx.box_mask``)."""
  if params.boxes is not None:
    assert params.mask is None
    return box_mask
  assert params.boxes is None
  return params.mask


def _case(shape, dtype, mode=None):
  """A name for the images of ``shape`` and ``dtype`` (and for their mix in ``mode``)."""
  name = f"{len(shape)}d-{shape[1]}x{shape[2]}-{jnp.dtype(dtype).name}"
  return name if mode is None else f"{name}-{mode}"


@functools.cache
def _mixes(name):
  """``FUNCTIONS[name]`` applied to every case (CASES) in every mode, and ``_sample``'s draw,
  for the keys of SEEDS: one compiled program, vmapped over the keys.

  Returns ``{case: (out, y, params, box_mask)}`` (``_case``; ``box_mask`` is
  ``mx.box_mask`` of SaliencyMix's boxes, else None), every leaf with a leading seed axis.
  The images go in as arguments (as constants XLA would fold them at compile time).
  """
  images = {_case(shape, dtype): distinct_images(shape, dtype) for shape, dtype in CASES}

  def one_key(seed, images):
    key = jax.random.key(seed)
    results, draws = {}, {}
    for shape, dtype in CASES:
      for mode in MODES:
        x = images[_case(shape, dtype)]
        # The draw is the same for every dtype, except SaliencyMix's (from the pixels).
        which = (shape, mode, dtype if name == "saliencymix" else None)
        if which not in draws:
          params = _sample(name, key, x, mode)
          box = None if params.boxes is None else mx.box_mask(params.boxes, *shape[1:3])
          draws[which] = (params, box)
        out, y = FUNCTIONS[name](key, x, LABELS, num_classes=B, mode=mode)
        results[_case(shape, dtype, mode)] = (out, y, *draws[which])
    return results

  seeds = jnp.asarray(list(SEEDS), jnp.int32)
  return jax.jit(jax.vmap(one_key, in_axes=(0, None)))(seeds, images)


def _mix(name, shape, mode, dtype, seed):
  """``(out, y, params, partner mask)`` for FUNCTIONS[name] on ``distinct_images(shape,
  dtype)`` with ``jax.random.key(seed)``, as numpy arrays, from :func:`_mixes`."""
  out, y, params, box = jax.tree.map(lambda leaf: np.asarray(leaf)[seed],
                                     _mixes(name)[_case(shape, dtype, mode)])
  return out, y, params, _mask(params, box)


def _per_pixel(mask, x):
  """The ``[B, H, W]`` mask broadcast over the channels of ``x``."""
  return mask[..., None] if x.ndim == 4 else mask


def _check_labels(y, perm, exact, ulps, err_msg=""):
  """The diagonal (own weight) matches ``exact``; every row is w·e_i + (1 − w)·e_p."""
  own = perm == np.arange(B)
  weight = np.asarray(y)[np.arange(B), np.arange(B)]
  assert_close_in_ulps(weight[~own], exact[~own], ulps, scale=1.0, err_msg=err_msg)
  rows = np.eye(B, dtype=np.float32)
  want = weight[:, None] * rows + (np.float32(1) - weight[:, None]) * rows[perm]
  want[own] = rows[own]
  np.testing.assert_array_equal(np.asarray(y), want, err_msg=err_msg)


def _check_modes(masks, mode, err_msg=""):
  if mode == "batch":  # One mask per call.
    np.testing.assert_array_equal(masks, np.broadcast_to(masks[0], masks.shape),
                                  err_msg=err_msg)
  else:  # One per example.
    assert len({m.tobytes() for m in masks}) > B // 2, f"one mask per example {err_msg}"


@pytest.mark.parametrize("name", HARD)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape, dtype", CASES, ids=CASE_IDS)
def test_hard_masks_take_exactly_the_partners_pixels(name, mode, dtype, shape):
  # All of a method's cases and seeds are mixed and drawn in one program (_mixes).
  x = distinct_images(shape, dtype)
  xs = np.asarray(x)
  size = shape[1:3]
  sources = np.broadcast_to(np.arange(B).reshape((B,) + (1,) * (len(shape) - 1)), shape)
  for seed in SEEDS:
    msg = f"seed {seed}"
    out, y, params, mask = _mix(name, shape, mode, dtype, seed)
    assert out.dtype == dtype and out.shape == x.shape, msg  # Pixels are copied.
    perm = params.perm
    assert mask.dtype == np.bool_ and mask.any() and not mask.all(), msg
    inside = _per_pixel(mask, xs)
    # Every pixel traced to its example: the partner's inside the mask, its own outside.
    want_source = np.where(inside, perm.reshape((B,) + (1,) * (len(shape) - 1)), sources)
    np.testing.assert_array_equal(source_example(out, dtype), want_source, err_msg=msg)
    np.testing.assert_array_equal(out, np.where(inside, xs[perm], xs), err_msg=msg)
    # w = 1 − |M|/(H·W): float32 of an exact count's fraction (a quotient XLA may take as
    # a product with 1/(H·W): two roundings, within 2 ulps of 1).
    exact = 1.0 - mask.sum(axis=(1, 2)) / (size[0] * size[1])
    assert_close_in_ulps(params.label_weight, exact, 2, scale=1.0, err_msg=msg)
    _check_labels(y, perm, exact, 2, msg)
    _check_modes(mask, mode, msg)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape, dtype", CASES, ids=CASE_IDS)
def test_smoothmix_blends_exactly_the_soft_mask(mode, dtype, shape):
  # All cases and seeds are mixed and drawn in one program (_mixes).
  x = distinct_images(shape, dtype)
  xs = np.asarray(x, np.float64)
  size = shape[1:3]
  out_dtype = jnp.float32 if dtype == jnp.uint8 else dtype  # mixed_dtype: a soft mask.
  for seed in SEEDS:
    msg = f"seed {seed}"
    out, y, params, mask = _mix("smoothmix", shape, mode, dtype, seed)
    assert out.dtype == out_dtype and out.shape == x.shape, msg
    assert mx.mixed_dtype(params, dtype) == out_dtype, msg
    perm = params.perm
    assert mask.dtype == np.float32, msg
    mask = mask.astype(np.float64)
    assert ((mask > 0) & (mask <= 1)).all(), msg
    m = _per_pixel(mask, xs)
    want = m * xs[perm] + (1 - m) * xs
    # float32 arithmetic on values |x| ≤ X: m·x_p, (1 − m), (1 − m)·x and the sum each
    # round by ≤ ½ ulp of X, and the mask itself may differ by an ulp between the jitted
    # program and the eager draw (≤ 1 ulp of X more): 3 ulps of X. A bfloat16 result
    # then rounds once more, by ½ of its ulp of X, which dominates.
    ulps, eps = (3, F32_EPS) if out_dtype != jnp.bfloat16 else (1, BF16_EPS)
    own = perm == np.arange(B)
    assert_close_in_ulps(np.asarray(out, np.float64)[~own], want[~own], ulps, scale=xs,
                         eps=eps, err_msg=msg)
    # An example paired with itself comes back bit for bit.
    np.testing.assert_array_equal(np.asarray(out, np.float64)[own], xs[own], err_msg=msg)
    # w = 1 − mean(M) of the float32 mask: a float32 sum of H·W terms in [0, 1] (error
    # ≤ H·W ulps of the sum, so ≤ H·W ulps of 1 after dividing by H·W) and a division.
    exact = 1.0 - mask.mean(axis=(1, 2))
    ulps_w = size[0] * size[1] + 2
    assert_close_in_ulps(params.label_weight, exact, ulps_w, scale=1.0, err_msg=msg)
    _check_labels(y, perm, exact, ulps_w, msg)
    _check_modes(mask, mode, msg)


def test_fmix_soft_edges_blend_and_keep_the_exact_mass():
  x = distinct_images((B, 16, 16, 3), jnp.uint8)
  key = jax.random.key(4)

  @jax.jit  # The mix and its draw in one program.
  def mix_and_draw(key, x):
    return (mx.fmix(key, x, LABELS, num_classes=B, mode="elem", max_soft=0.2),
            mx.sample_fmix(key, B, (16, 16), mode="elem", max_soft=0.2))

  (out, y), params = mix_and_draw(key, x)
  assert out.dtype == jnp.float32  # A soft mask blends: uint8 becomes float32.
  mask = np.asarray(params.mask, np.float64)
  assert ((mask > 0) & (mask < 1)).any()
  xs = np.asarray(x, np.float64)
  perm = np.asarray(params.perm)
  want = mask[..., None] * xs[perm] + (1 - mask[..., None]) * xs
  own = perm == np.arange(B)
  assert_close_in_ulps(np.asarray(out)[~own], want[~own], 3, scale=xs)  # As SmoothMix.
  exact = 1.0 - mask.mean(axis=(1, 2))
  _check_labels(y, perm, exact, 16 * 16 + 2)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_mixer_and_registry_draw_what_the_function_draws(name):
  x = distinct_images(SHAPES[0], jnp.uint8)
  key = jax.random.key(5)
  mixers = {mode: mx.get_mixer(name, num_classes=B, mode=mode, label_smoothing=0.1)
            for mode in MODES}

  @jax.jit  # Both modes' mixes and draws, by the mixer and by the functions, in one program.
  def mixes_and_draws(key, x):
    got = {}
    for mode, mixer in mixers.items():
      got[mode] = {
          "mixer": mixer(key, x, LABELS),
          "function": FUNCTIONS[name](key, x, LABELS, num_classes=B, mode=mode,
                                      label_smoothing=0.1)}
      if name != "saliencymix":
        got[mode]["mixer.sample"] = mixer.sample(key, B, x.shape[1:])
        got[mode]["sample"] = _sample(name, key, x, mode)
    if name == "saliencymix":
      got["images="] = (mixers["elem"].sample(key, B, x.shape[1:], images=x),
                        mx.sample_saliencymix(key, x, mode="elem"))
    return got

  got = mixes_and_draws(key, x)
  for mode, mixer in mixers.items():
    assert mixer.uses_images == (name == "saliencymix")
    chex.assert_trees_all_equal(got[mode]["mixer"], got[mode]["function"])
    if name != "saliencymix":
      chex.assert_trees_all_equal(got[mode]["mixer.sample"], got[mode]["sample"])
  if name == "saliencymix":
    with pytest.raises(ValueError, match="pass images= to sample"):
      mixers["elem"].sample(key, B, x.shape[1:])
    chex.assert_trees_all_equal(*got["images="])


def test_paper_defaults():
  assert mx.FMix() == mx.FMix(alpha=1.0, decay_power=3.0, max_soft=0.0, spectrum="reference")
  assert mx.GridMix() == mx.GridMix(alpha=1.0, n_holes=(2, 6), hole_aspect_ratio=1.0,
                                    cut_area_ratio=(0.5, 1.0), cut_aspect_ratio=(0.5, 2.0))
  assert mx.SmoothMix().sigma == (0.25, 0.5)
  assert mx.SaliencyMix().alpha == 1.0
  for cls in (mx.FMix, mx.GridMix, mx.SmoothMix, mx.SaliencyMix):
    assert cls().mode == "batch" and cls().pairing == "permute" and cls.spatial
  # A number is kept as the range (v, v), which draws the same.
  x = distinct_images(SHAPES[0])
  key = jax.random.key(6)

  @jax.jit  # The four mixes in one program.
  def mixes(key, x):
    return (mx.gridmix(key, x, LABELS, num_classes=B, n_holes=3),
            mx.gridmix(key, x, LABELS, num_classes=B, n_holes=(3, 3)),
            mx.smoothmix(key, x, LABELS, num_classes=B, sigma=0.3),
            mx.get_mixer("smoothmix", num_classes=B, sigma=0.3)(key, x, LABELS))

  grid_number, grid_pair, smooth_function, smooth_mixer = mixes(key, x)
  chex.assert_trees_all_equal(grid_number, grid_pair)
  chex.assert_trees_all_equal(smooth_function, smooth_mixer)


BAD = [
    ("fmix", {"alpha": 0.0}, "alpha must be > 0"),
    ("fmix", {"decay_power": -1.0}, "decay_power must be a number > 0"),
    ("fmix", {"max_soft": 0.6}, r"max_soft must be a number in \[0, 0.5\]"),
    ("fmix", {"spectrum": "full"}, "spectrum must be one of"),
    ("gridmix", {"alpha": -1.0}, "alpha must be > 0"),
    ("gridmix", {"n_holes": (0, 2)}, "n_holes must be a positive int"),
    ("gridmix", {"n_holes": (2.5, 3)}, "n_holes must be a positive int"),
    ("gridmix", {"cut_area_ratio": (0.5, 1.5)}, "cut_area_ratio must be .* <= 1.0"),
    ("gridmix", {"cut_aspect_ratio": (2.0, 0.5)}, "cut_aspect_ratio must be"),
    ("gridmix", {"n_holes": (2, 7)}, "n_holes must be at most half the narrowest crop"),
    ("gridmix", {"hole_aspect_ratio": 0.1}, "makes patches of height"),
    ("smoothmix", {"sigma": (0.5, 0.25)}, "sigma must be a positive number or a pair"),
    ("smoothmix", {"sigma": 0.0}, "sigma must be a positive number or a pair"),
    ("saliencymix", {"alpha": 0.0}, "alpha must be > 0"),
]


@pytest.mark.parametrize("name,kwargs,match", BAD)
def test_bad_hyper_parameters_raise_through_the_public_functions(name, kwargs, match):
  x = distinct_images(SHAPES[0])
  with pytest.raises(ValueError, match=match):
    FUNCTIONS[name](jax.random.key(0), x, LABELS, num_classes=B, **kwargs)
  if "n_holes must be at most" in match or "patches of height" in match:
    return  # Needs the image size: raised when the mixer draws, checked below.
  with pytest.raises(ValueError, match=match):
    mx.get_mixer(name, **kwargs)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_shared_options_raise(name):
  x = distinct_images(SHAPES[0])
  fn = FUNCTIONS[name]
  with pytest.raises(ValueError, match="mode must be one of"):
    fn(jax.random.key(0), x, LABELS, num_classes=B, mode="pixel")
  with pytest.raises(ValueError, match="pairing must be one of"):
    fn(jax.random.key(0), x, LABELS, num_classes=B, pairing="shuffle")
  with pytest.raises(ValueError, match="looks channels-first"):
    fn(jax.random.key(0), jnp.zeros((B, 3, 24, 24)), LABELS, num_classes=B)
  with pytest.raises(ValueError, match="two spatial axes"):
    fn(jax.random.key(0), jnp.zeros((B, 24)), LABELS, num_classes=B)
  with pytest.raises(ValueError, match="same batch size"):
    fn(jax.random.key(0), x, LABELS[:4], num_classes=B)


def test_gridmix_defaults_on_small_images_raise_clearly():
  """The CIFAR defaults (2–6 holes) do not fit 8×8 digits; 2 holes do."""
  x = distinct_images((B, 8, 8, 1))
  with pytest.raises(ValueError, match=r"are 4 wide, so n_holes <= 2, got \(2, 6\)"):
    mx.gridmix(jax.random.key(0), x, LABELS, num_classes=B)
  with pytest.raises(ValueError, match="n_holes <= 2"):
    mx.get_mixer("gridmix", num_classes=B)(jax.random.key(0), x, LABELS)
  out, _ = mx.gridmix(jax.random.key(0), x, LABELS, num_classes=B, n_holes=2)
  assert out.shape == x.shape


def test_saliencymix_needs_grey_or_rgb():
  with pytest.raises(ValueError, match="saliency_maps needs grey"):
    mx.saliencymix(jax.random.key(0), jnp.zeros((B, 24, 24, 2)), LABELS, num_classes=B)
  with pytest.raises(ValueError, match="images must be"):
    mx.SaliencyMix().sample(jax.random.key(0), B, (24, 24, 3),
                            images=jnp.zeros((B, 24, 24, 1)))
