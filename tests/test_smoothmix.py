"""SmoothMix masks: the reference's Gaussian kernel, mask mass, modes, errors."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from tests.tolerances import assert_close_in_ulps

# The module, not the function mx.smoothmix that the package exports under its name.
smoothmix = importlib.import_module("mixjax.smoothmix")

# The library's functions compiled once per shape and static option. Called outside jit,
# every small operation is a program of its own; these tests check values, not eager
# dispatch (except test_jit_and_vmap, which compares the two on purpose).
_gaussian_masks = jax.jit(smoothmix.gaussian_masks, static_argnums=(3, 4))
_sample_masks = jax.jit(smoothmix.sample_smoothmix_masks, static_argnums=(1, 2, 3),
                        static_argnames=("sigma", "mode"))

# --- The reference, OpenMixup openmixup/models/augments/smoothmix.py at 37e1372. --------


def _ref_gaussian_kernel(kernel_size, rand_w, rand_h, sigma):
  """gaussian_kernel (lines 34–50) in numpy; np.roll is torch.roll."""
  s = kernel_size * 2
  x_cord = np.arange(s)
  x_grid = np.tile(x_cord, s).reshape(s, s)
  y_grid = x_grid.T
  xy_grid = np.stack([x_grid, y_grid], axis=-1)
  xy_grid = np.roll(xy_grid, rand_w, 0)
  xy_grid = np.roll(xy_grid, rand_h, 1)
  crop_size = s // 4
  xy_grid = xy_grid[crop_size: s - crop_size, crop_size: s - crop_size]
  mean = (s - 1) / 2
  var = sigma ** 2
  g_filter = np.exp(-np.sum((xy_grid - mean) ** 2, axis=-1) / (2 * var))
  return g_filter.reshape(kernel_size, kernel_size)


def _ref_draw(rng, h, w):
  """Lines 69–72: the roll offsets, σ, and the call (whose rand_w/rand_h are swapped)."""
  k_w, k_h = rng.integers(0, w), rng.integers(0, h)
  rand_w, rand_h = int(k_w - w / 2), int(k_h - h / 2)
  sigma = (rng.random() / 4 + 0.25) * h
  return _ref_gaussian_kernel(h, rand_h, rand_w, sigma), (k_h, k_w, sigma)


# --- Tests. --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, 32, 224])
def test_gaussian_masks_are_the_reference_kernel(size):
  """On even square images the reference's kernel is a Gaussian at (k_h − ½, k_w − ½)."""
  rng = np.random.default_rng(0)
  draws = [_ref_draw(rng, size, size) for _ in range(20)]
  # The 20 kernels from one call (one compiled program), each example on its own.
  k_h, k_w, sigma = (np.asarray([d[1][i] for d in draws], np.float32) for i in range(3))
  got = np.asarray(_gaussian_masks(k_h - np.float32(0.5), k_w - np.float32(0.5), sigma,
                                   size, size))
  for i, (want, _) in enumerate(draws):
    # exp(−a) with a rounded to ~2 ulps relative: error ≤ e^{−a}·a·2ε + ulp ≤ 2ε/e + ε,
    # plus σ rounded to float32 (a·2ε more): 4 ulps of 1.0 bound it.
    assert_close_in_ulps(got[i], want, 4, scale=1.0, err_msg=str(i))
  # The peak sits on the corner (k_h − ½, k_w − ½): the four pixels around it are maximal.
  want, (k_h, k_w, _) = _ref_draw(np.random.default_rng(1), 16, 16)
  top = np.argwhere(want == want.max())
  assert {tuple(t) for t in top} <= {(k_h - 1, k_w - 1), (k_h - 1, k_w), (k_h, k_w - 1),
                                     (k_h, k_w)}


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_shapes_dtypes_and_modes(mode):
  b, h, w = 6, 16, 24
  masks = _sample_masks(jax.random.key(0), b, h, w, mode=mode)
  assert masks.shape == (b, h, w) and masks.dtype == jnp.float32
  masks = np.asarray(masks)
  assert ((masks > 0) & (masks <= 1)).all()
  if mode == "batch":
    assert (masks == masks[0]).all()
  else:
    assert len({m.tobytes() for m in masks}) == b


def test_non_square_centres_and_widths():
  """Rows use H and columns W: the centres cover the whole image, σ/H ~ U[¼, ½) (KS at
  the 1% level)."""
  h, w = 8, 20
  n = 4000
  masks = np.asarray(_sample_masks(jax.random.key(1), n, h, w, mode="elem"))
  flat = masks.reshape(n, -1)
  peak = np.stack(np.unravel_index(flat.argmax(axis=1), (h, w)), axis=1)
  # A centre k − ½ ties pixels k − 1 and k; argmax takes k − 1 (or 0 for k = 0), so the
  # peaks cover every row and column but the last.
  assert set(peak[:, 0]) == set(range(h - 1)) and set(peak[:, 1]) == set(range(w - 1))
  # log G is quadratic with second difference −1/σ² along any row, whatever the centre.
  log = np.log(masks[:, 0, :3].astype(np.float64))
  sigma = np.sqrt(-1.0 / (log[:, 2] - 2 * log[:, 1] + log[:, 0])) / h
  assert stats.kstest(sigma, stats.uniform(0.25, 0.25).cdf).pvalue > 0.01


def test_mask_mass_matches_reference_sampler():
  """Two-sample KS (fixed seeds) of mean(mask) against the numpy reference sampler on
  32×32 (even and square, where the reference runs): 3,000 draws each, at the 1% level.
  Power: a σ range of [0.3, 0.5) is rejected."""
  n, h = 3000, 32
  ours = np.asarray(_sample_masks(jax.random.key(2), n, h, h, mode="elem")).mean(axis=(1, 2))
  rng = np.random.default_rng(0)
  ref = np.array([_ref_draw(rng, h, h)[0].mean() for _ in range(n)])
  assert stats.ks_2samp(ours, ref).pvalue > 0.01
  other = np.asarray(_sample_masks(jax.random.key(3), n, h, h, mode="elem",
                                  sigma=(0.3, 0.5))).mean(axis=(1, 2))
  assert stats.ks_2samp(other, ref).pvalue < 1e-6


def test_fixed_sigma():
  masks = np.asarray(_sample_masks(jax.random.key(4), 3, 10, 10, mode="elem", sigma=0.3))
  assert masks.max() < 1  # The centre is on a pixel corner, never on a pixel.
  # Nearest pixels at distance √½ from the centre: exp(−½/(2·3²)).
  assert_close_in_ulps(masks.max(axis=(1, 2)), np.exp(-0.5 / 18), 4, scale=1.0)


def test_jit_and_vmap():
  # test_shapes_dtypes_and_modes's sizes: its compiled programs serve here too (other keys).
  key = jax.random.key(5)
  for mode in ["batch", "elem"]:
    # XLA may fuse the exponent's arithmetic differently from eager: a few ulps of 1.0.
    assert_close_in_ulps(_sample_masks(key, 6, 16, 24, mode=mode),
                         smoothmix.sample_smoothmix_masks(key, 6, 16, 24, mode=mode), 4,
                         scale=1.0, err_msg=mode)
  keys = jax.random.split(key, 3)
  # vmap against the unbatched draw, both compiled (the eager draw is compared above).
  masks = jax.jit(jax.vmap(lambda k: smoothmix.sample_smoothmix_masks(k, 6, 16, 24,
                                                                      mode="elem")))(keys)
  assert masks.shape == (3, 6, 16, 24)
  for i in range(3):
    assert_close_in_ulps(masks[i], _sample_masks(keys[i], 6, 16, 24, mode="elem"), 4,
                         scale=1.0, err_msg=str(i))


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "soft"}, "mode must be one of"),
    ({"sigma": 0.0}, "sigma must be a positive number or a pair"),
    ({"sigma": (0.5, 0.25)}, "sigma must be a positive number or a pair"),
    ({"sigma": (0.1, 0.2, 0.3)}, "sigma must be a positive number or a pair"),
    ({"sigma": "wide"}, "sigma must be a positive number or a pair"),
])
def test_bad_hyper_parameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    smoothmix.sample_smoothmix_masks(jax.random.key(0), 4, 8, 8, **kwargs)


def test_bad_sizes():
  with pytest.raises(ValueError, match="width must be a positive int, got 0"):
    smoothmix.sample_smoothmix_masks(jax.random.key(0), 4, 8, 0)
