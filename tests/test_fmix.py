"""FMix masks: the reference's Fourier noise and binarisation, mask mass, modes, errors."""

import functools
import importlib
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from tests.tolerances import assert_close_in_ulps

# The module, not the function mx.fmix that the package exports under its name.
fmix = importlib.import_module("mixjax.fmix")

# The library's functions compiled once per shape and static option. Called outside jit,
# every small operation is a program of its own and the sampler's loop and branch are
# compiled anew on every call; these tests check values, not eager dispatch (except
# test_jit_and_vmap, which compares the two on purpose).
_sample_masks = jax.jit(fmix.sample_fmix_masks, static_argnums=(1, 2, 3),
                        static_argnames=("alpha", "decay_power", "max_soft", "mode", "spectrum"))
_binarise = jax.jit(fmix.binarise, static_argnames="max_soft")
_low_freq_images = jax.jit(fmix.low_freq_images, static_argnums=(1, 2, 3, 4))

# --- The reference, ecs-vlc/FMix fmix.py at e5991dc, transcribed to numpy. ---------------


def _ref_fftfreqnd(h, w):  # fmix.py lines 8–33 (2-D case).
  fy = np.expand_dims(np.fft.fftfreq(h), -1)
  fx = np.fft.fftfreq(w)[: w // 2 + 2] if w % 2 == 1 else np.fft.fftfreq(w)[: w // 2 + 1]
  return np.sqrt(fx * fx + fy * fy)


def _ref_image(param, decay, h, w, spectrum="reference"):
  """make_low_freq_image (lines 56–78), get_spectrum's randn (line 49) given as param.

  param: [N, h, w_f, 2]; each of the N is the reference's [1, h, w_f, 2] draw. With
  spectrum="reference", line 65 literally (``spectrum[:, 0] + 1j * spectrum[:, 1]``);
  with "paper", the real and imaginary parts read from the last axis.
  """
  freqs = _ref_fftfreqnd(h, w)
  scale = np.ones(1) / (np.maximum(freqs, np.array([1. / max(w, h)])) ** decay)
  images = []
  for one in param:
    spec = np.expand_dims(scale, -1)[None, :] * one[None]  # get_spectrum, lines 46–53.
    if spectrum == "reference":
      spec = spec[:, 0] + 1j * spec[:, 1]
    else:
      spec = spec[..., 0] + 1j * spec[..., 1]
    mask = np.real(np.fft.irfftn(spec, (h, w), axes=(-2, -1)))
    mask = mask[:1, :h, :w]
    mask = mask - mask.min()
    images.append((mask / mask.max())[0])
  return np.stack(images)


def _ref_binarise(mask, lam, num, max_soft=0.0):
  """binarise_mask (lines 95–121) with the coin's choice of num given; the own weight."""
  shape = mask.shape
  idx = mask.reshape(-1).argsort()[::-1]
  mask = mask.reshape(-1).astype(np.float64).copy()
  eff_soft = max_soft
  if max_soft > lam or max_soft > (1 - lam):
    eff_soft = min(lam, 1 - lam)
  soft = int(mask.size * eff_soft)
  num_low, num_high = num - soft, num + soft
  mask[idx[:num_high]] = 1
  mask[idx[num_low:]] = 0
  mask[idx[num_low:num_high]] = np.linspace(1, 0, (num_high - num_low))
  return mask.reshape(shape)


def _ref_sample_mask(rng, alpha, decay, h, w, spectrum="reference"):
  """sample_mask (line 124): λ, then the own-pixel mask; returns (λ, own weight mask)."""
  lam = rng.beta(alpha, alpha)
  param = rng.standard_normal((1, h, _ref_fftfreqnd(h, w).shape[1], 2))
  image = _ref_image(param, decay, h, w, spectrum)[0]
  size = h * w
  num = math.ceil(lam * size) if rng.random() > 0.5 else math.floor(lam * size)
  return lam, _ref_binarise(image, lam, num)


# --- Tests. --------------------------------------------------------------------------------


def test_reference_spectrum_has_two_column_frequencies():
  """The reference's line 65 indexes axis 1 of the [1, H, W_f, 2] spectrum: its images
  hold only the column frequencies 0 and 1/W; the paper's spectrum holds them all."""
  h, w = 16, 16
  param = np.random.default_rng(0).standard_normal((1, h, w // 2 + 1, 2))
  for spectrum, columns in [("reference", 2), ("paper", w // 2 + 1)]:
    for image in [_ref_image(param, 3.0, h, w, spectrum)[0],
                  np.asarray(_low_freq_images(param.astype(np.float32), h, w, 3.0,
                                              spectrum))[0]]:
      power = np.abs(np.fft.rfft2(image - image.mean()))
      assert (power.max(axis=0) > 1e-4 * power.max()).sum() == columns, spectrum


def test_low_freq_images_match_reference_given_the_same_draws():
  # float32 irfft2 against float64 numpy, both normalised to [0, 1]: an FFT of N points
  # rounds to about log2(N) ulps of its output range per element, and the shift/scale
  # adds 2 more; 4·log2(H·W) ulps of 1.0 bounds that (measured ≤ 2 ulps).
  # Eager on purpose: compiled, XLA may compute the image twice (for its minimum and for
  # the shift), a few ulps apart, so that the minimum is not exactly 0.
  rng = np.random.default_rng(1)
  for (h, w), spectrum in itertools.product([(7, 9), (12, 20), (4, 15), (2, 2), (6, 2),
                                             (224, 224)],
                                            fmix.SPECTRA):
    case = f"{h}x{w} {spectrum}"
    cols = _ref_fftfreqnd(h, w).shape[1]
    assert fmix.fft_frequencies(h, w).shape == (h, cols), case
    noise = rng.standard_normal((4, h, cols, 2)).astype(np.float32)
    got = np.asarray(fmix.low_freq_images(jnp.asarray(noise), h, w, 3.0, spectrum))
    want = _ref_image(noise.astype(np.float64), 3.0, h, w, spectrum)
    assert got.dtype == np.float32 and got.shape == (4, h, w), case
    assert_close_in_ulps(got, want, 4 * math.log2(h * w), scale=1.0, err_msg=case)
    np.testing.assert_array_equal(got.min(axis=(1, 2)), 0.0, err_msg=case)
    # x/max x may be computed as x·(1/max x): 1 ulp.
    assert_close_in_ulps(got.max(axis=(1, 2)), 1.0, 1, scale=1.0, err_msg=case)


def test_reference_spectrum_reads_two_rows_of_draws():
  """The reference reads rows 0 and 1 of its draws: those alone give the same images
  (bit for bit), and the sampler draws only them (noise_shape)."""
  h, w = 12, 20
  noise = jax.random.normal(jax.random.key(3), (4, h, fmix.fft_frequencies(h, w).shape[1], 2))
  # Eager (as test_low_freq_images_match_reference_given_the_same_draws, whose 12×20 programs
  # these reuse), so that each of the two is computed op by op, alike.
  full = fmix.low_freq_images(noise, h, w)
  np.testing.assert_array_equal(fmix.low_freq_images(noise[:, :2], h, w), full)
  assert fmix.noise_shape(h, w, "reference") == (2,) + noise.shape[2:]
  assert fmix.noise_shape(h, w, "paper") == noise.shape[1:]
  with pytest.raises(ValueError, match="needs H >= 2 and W >= 2, got H = 1, W = 20"):
    fmix.low_freq_images(noise[:, :1], 1, w)
  with pytest.raises(ValueError, match="got H = 12, W = 1"):  # A constant image (NaN).
    _sample_masks(jax.random.key(0), 4, h, 1)
  assert np.isfinite(_sample_masks(jax.random.key(0), 4, h, 1, spectrum="paper")[1]).all()


SEARCH_SIZES = [50176, 1024, 17, 169, 15, 30, 1]


def _search_input(size):
  """Nine rows of ``size`` values in [0, 1] and the ``num`` searched for in each."""
  rng = np.random.default_rng(size)
  x = rng.random((9, size)).astype(np.float32)
  x[0] = 0.5
  x[1, :size // 2] = 1.0
  x[2] = np.round(x[2] * 4) / 4
  num = rng.integers(0, size + 1, (9, 1)).astype(np.int32)
  num[3], num[4], num[5] = 0, size, 1
  return x, num


@functools.cache
def _searches():
  """``_num_th_largest_bits`` of every size's input, all in one compiled program."""
  inputs = [_search_input(size) for size in SEARCH_SIZES]
  # float32 → int32 bits: numpy's view is bitcast_convert_type.
  got = jax.jit(lambda args: [fmix._num_th_largest_bits(bits, num) for bits, num in args])(
      [(x.view(np.int32), num) for x, num in inputs])
  return dict(zip(SEARCH_SIZES, (np.asarray(g) for g in got), strict=True))


@pytest.mark.parametrize("size", SEARCH_SIZES)
def test_num_th_largest_bits_is_a_sort(size):
  """The 8-ary search ends on the num-th largest value exactly (np.sort), with ties,
  constant rows, num = 0, 1 and S, sizes that divide into chunks and ones padded."""
  x, num = _search_input(size)
  got = _searches()[size]
  for i in range(9):
    want = (fmix._ONE_BITS if num[i, 0] == 0 else
            np.sort(x[i].view(np.int32))[::-1][num[i, 0] - 1])
    assert got[i, 0] == want, (i, num[i, 0])


@pytest.mark.parametrize("max_soft", [0.0, 0.1, 0.45])
def test_binarise_is_the_reference_complement(max_soft):
  """Given the same image, λ and rounding, the partner mask is 1 − the reference's mask."""
  h, w = 16, 12
  rng = np.random.default_rng(2)
  images = rng.uniform(size=(40, h, w)).astype(np.float32)
  assert all(np.unique(im).size == h * w for im in images)  # No ties to break.
  lam = np.concatenate([[0.0, 1.0, 0.5, 0.05, 0.97], rng.uniform(size=35)]).astype(np.float32)
  ceil = rng.uniform(size=40) > 0.5
  masks = np.asarray(_binarise(images, lam, ceil, max_soft=max_soft))
  assert masks.dtype == (np.bool_ if max_soft == 0 else np.float32)
  for i in range(40):
    target = np.float32(lam[i]) * np.float32(h * w)  # λ·H·W as float32 rounds it.
    num = int(np.ceil(target) if ceil[i] else np.floor(target))
    want = 1.0 - _ref_binarise(images[i].astype(np.float64), float(lam[i]), num, max_soft)
    # The ramp's values 1 − k/(2s − 1) are computed in float32: 1 ulp of 1.0.
    assert_close_in_ulps(masks[i].astype(np.float64), want, 1, scale=1.0)
    # Own label weight 1 − mean(mask) is num/(H·W) exactly (the ramp sums to s).
    assert_close_in_ulps(1.0 - masks[i].astype(np.float64).mean(), num / (h * w), 8,
                         scale=1.0)


def test_binarise_breaks_ties_by_position_with_exact_counts():
  """Images with many equal values: exactly num own pixels, ties taken first-come in
  row-major order (a stable sort of −value), however λ·H·W falls."""
  h, w = 9, 7
  rng = np.random.default_rng(5)
  images = (rng.integers(0, 4, size=(50, h, w)) / 3).astype(np.float32)  # Four levels.
  lam = rng.uniform(size=50).astype(np.float32)
  lam[:3] = [0.0, 1.0, 0.5]
  ceil = rng.uniform(size=50) > 0.5
  masks = np.asarray(_binarise(images, lam, ceil))
  for i in range(50):
    target = np.float32(lam[i]) * np.float32(h * w)
    num = int(np.ceil(target) if ceil[i] else np.floor(target))
    order = np.argsort(-images[i].reshape(-1), kind="stable")
    own = np.zeros(h * w, bool)
    own[order[:num]] = True
    np.testing.assert_array_equal(masks[i].reshape(-1), ~own, err_msg=str(i))


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_shapes_dtypes_and_modes(mode):
  b, h, w = 6, 10, 14
  masks, lam = _sample_masks(jax.random.key(0), b, h, w, mode=mode)
  assert masks.shape == (b, h, w) and masks.dtype == jnp.bool_
  assert lam.shape == (b,) and lam.dtype == jnp.float32
  masks, lam = np.asarray(masks), np.asarray(lam)
  kept = 1.0 - masks.mean(axis=(1, 2))
  lam_size = lam * np.float32(h * w)
  # Own weight = ⌈λ·H·W⌉ or ⌊λ·H·W⌋ over H·W, each example.
  assert (np.isclose(kept * h * w, np.ceil(lam_size)) |
          np.isclose(kept * h * w, np.floor(lam_size))).all()
  if mode == "batch":
    assert (masks == masks[0]).all() and (lam == lam[0]).all()
  else:
    assert len({m.tobytes() for m in masks}) == b and len(set(lam.tolist())) == b


def test_soft_masks_keep_the_exact_mass():
  masks, lam = _sample_masks(jax.random.key(1), 64, 16, 16, mode="elem", max_soft=0.1)
  masks, lam = np.asarray(masks, np.float64), np.asarray(lam)
  assert masks.dtype == np.float64 and ((masks >= 0) & (masks <= 1)).all()
  soft = ((masks > 0) & (masks < 1)).sum(axis=(1, 2))
  assert (soft > 0).mean() > 0.8  # Most λ leave room for a ramp of 2·⌊256·min(0.1, λ, 1 − λ)⌋.
  num = (1.0 - masks.mean(axis=(1, 2))) * 256
  # Mass: an integer count within float32 summation rounding (256 terms of ≤ 1 ulp).
  np.testing.assert_allclose(num, np.rint(num), rtol=0, atol=256 * 2 * 2**-24 * 256)
  assert (np.abs(np.rint(num) - lam * 256) <= 1).all()


def test_both_roundings_occur_and_the_coin_is_fair():
  n = 4000
  masks, lam = _sample_masks(jax.random.key(2), n, 8, 8, mode="elem")
  num = np.rint((1.0 - np.asarray(masks).mean(axis=(1, 2))) * 64).astype(int)
  target = np.asarray(lam) * np.float32(64)
  frac = target != np.floor(target)
  up = num[frac] == np.ceil(target[frac])
  assert (up | (num[frac] == np.floor(target[frac]))).all()
  # Rounded up with probability ½: a two-sided binomial test at the 1% level.
  assert stats.binomtest(int(up.sum()), int(frac.sum())).pvalue > 0.01


def _boundaries(masks):
  """Differing neighbour pairs down the columns and along the rows: small for smooth
  (low-frequency) masks; the reference spectrum's rows change at most twice."""
  masks = np.asarray(masks, bool)
  return ((masks[:, 1:] != masks[:, :-1]).sum(axis=(1, 2)),
          (masks[:, :, 1:] != masks[:, :, :-1]).sum(axis=(1, 2)))


@pytest.mark.parametrize("alpha,decay,size,spectrum",
                         [(1.0, 3.0, (32, 32), "reference"), (0.5, 2.0, (16, 24), "reference"),
                          (1.0, 3.0, (32, 32), "paper")],
                         ids=["a1-d3-32x32", "a0.5-d2-16x24", "paper-a1-d3-32x32"])
def test_mask_distribution_matches_reference_sampler(alpha, decay, size, spectrum):
  """Two-sample KS (fixed seeds) of our masks against the numpy reference sampler.

  Statistics: the own label weight 1 − mean(mask) (λ's Beta law, rounded to a pixel
  count) and the mask's boundary lengths down the columns and along the rows (the
  noise's spatial spectrum). 2,000 draws each; each at the 0.01/3 level (Bonferroni: the
  three together at 1%). Power: a different decay power and a different α are each
  rejected, and the two spectra differ in a property each one has exactly.
  """
  h, w = size
  n = 2000
  masks, lam = _sample_masks(jax.random.key(3), n, h, w, alpha=alpha, decay_power=decay,
                             mode="elem", spectrum=spectrum)
  masks = np.asarray(masks)
  ours = {"weight": 1.0 - masks.mean(axis=(1, 2))}
  ours["down"], ours["along"] = _boundaries(masks)
  rng = np.random.default_rng(0)

  def reference(alpha, decay, spectrum=spectrum):
    draws = [_ref_sample_mask(rng, alpha, decay, h, w, spectrum) for _ in range(n)]
    partner = 1.0 - np.stack([m for _, m in draws])  # Our convention: partner = 1.
    down, along = _boundaries(partner)
    return {"weight": 1.0 - partner.mean(axis=(1, 2)), "down": down, "along": along}

  ref = reference(alpha, decay)
  for name in ours:
    pvalue = stats.ks_2samp(ours[name], ref[name]).pvalue
    assert pvalue > 0.01 / 3, (name, pvalue)
  assert stats.ks_2samp(ours["down"], reference(alpha, decay / 3)["down"]).pvalue < 1e-6
  assert stats.ks_2samp(ours["weight"], reference(alpha * 4, decay)["weight"]).pvalue < 1e-6
  # The spectra differ: the reference's rows are a + b·cos(2πx/W + φ), so they cross the
  # threshold at most twice; the paper's rows cross it more often, for a quarter of masks
  # (measured 27% at 32×32), so 10% is a safe lower bound.
  row_changes = (masks[:, :, 1:] != masks[:, :, :-1]).sum(axis=2).max(axis=1)
  if spectrum == "reference":
    assert row_changes.max() <= 2
  else:
    assert (row_changes > 2).mean() > 0.1


def test_partner_is_the_low_noise_side():
  """The partner's pixels are those of lowest noise: λ = 1 keeps every own pixel
  (the reference's mask is all ones), λ → 0 takes every pixel from the partner."""
  image = np.random.default_rng(4).uniform(size=(1, 6, 6)).astype(np.float32)
  up = np.ones(1, bool)
  ones = _binarise(image, np.ones(1, np.float32), up)
  zeros = _binarise(image, np.zeros(1, np.float32), up)
  assert not np.asarray(ones).any() and np.asarray(zeros).all()
  half = np.asarray(_binarise(image, np.full(1, 0.5, np.float32), up))[0]
  values = image[0]
  assert values[half].max() < values[~half].min()


def test_jit_and_vmap():
  key = jax.random.key(5)
  # Op by op against compiled, per example (batch mode runs the same ops on one draw).
  eager = fmix.sample_fmix_masks(key, 4, 9, 11, mode="elem")
  jitted = _sample_masks(key, 4, 9, 11, mode="elem")
  np.testing.assert_array_equal(eager[0], jitted[0])
  np.testing.assert_array_equal(eager[1], jitted[1])
  keys = jax.random.split(key, 3)
  # vmap against the unbatched draw, both compiled (the eager draw is compared above).
  masks, lam = jax.jit(jax.vmap(lambda k: fmix.sample_fmix_masks(k, 4, 9, 11, mode="elem")))(
      keys)
  assert masks.shape == (3, 4, 9, 11) and lam.shape == (3, 4)
  for i in range(3):
    one = _sample_masks(keys[i], 4, 9, 11, mode="elem")
    np.testing.assert_array_equal(masks[i], one[0], err_msg=str(i))
    np.testing.assert_array_equal(lam[i], one[1], err_msg=str(i))


@pytest.mark.parametrize("kwargs,match", [
    ({"alpha": 0.0}, "alpha must be > 0"),
    ({"alpha": -1.0}, "alpha must be > 0"),
    ({"decay_power": 0.0}, "decay_power must be a number > 0"),
    ({"max_soft": 0.6}, r"max_soft must be a number in \[0, 0.5\]"),
    ({"max_soft": -0.1}, r"max_soft must be a number in \[0, 0.5\]"),
    ({"mode": "pixel"}, "mode must be one of"),
    ({"spectrum": "full"}, "spectrum must be one of"),
])
def test_bad_hyper_parameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    fmix.sample_fmix_masks(jax.random.key(0), 4, 8, 8, **kwargs)


def test_bad_sizes():
  with pytest.raises(ValueError, match="height must be a positive int, got 0"):
    fmix.sample_fmix_masks(jax.random.key(0), 4, 0, 8)
  with pytest.raises(ValueError, match="batch_size must be a positive int"):
    fmix.sample_fmix_masks(jax.random.key(0), 0, 8, 8)
