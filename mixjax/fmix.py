"""FMix masks (Harris et al., 2020): thresholded low-frequency Fourier noise.

FMix ("FMix: Enhancing Mixed Sample Data Augmentation", arXiv:2002.12047)
draws ``λ ~ Beta(α, α)`` and a grey-scale image whose Fourier spectrum decays as
``1/f^δ`` (decay power ``δ = 3``), and keeps the example's own pixel wherever
that image is among its ``num ≈ λ·H·W`` largest values; every other pixel comes
from the partner. This module follows the reference implementation,
``ecs-vlc/FMix`` ``fmix.py`` at commit e5991dc:

* ``fftfreqnd`` (lines 8–33): the frequency of bin ``(u, v)`` is
  ``f = √(f_y(u)² + f_x(v)²)`` with ``f_y = fftfreq(H)`` and ``f_x`` the first
  ``⌊W/2⌋ + 1`` entries of ``fftfreq(W)`` (``⌊W/2⌋ + 2`` for odd ``W``; the extra
  column is cut off again by the inverse real FFT).
* ``get_spectrum`` (lines 36–53): each bin gets a complex coefficient
  ``(a + i·b)/max(f, 1/max(H, W))^δ``, ``a, b ~ N(0, 1)``.
* ``make_low_freq_image`` (lines 56–78): the real inverse FFT ``irfftn`` of that
  half spectrum at shape ``(H, W)``, shifted and scaled to ``[0, 1]``. Its line 65
  reads the real and imaginary parts from the wrong axis, so the code's masks are
  built from far fewer waves than the paper describes; ``spectrum="reference"``
  (default) reproduces the code, ``"paper"`` the paper (:func:`low_freq_images`).
* ``binarise_mask`` (lines 95–121): the pixels sorted by decreasing value, the
  first ``num`` of them are 1 (the reference's ``x * mask`` keeps the example's
  own pixel there, ``x[index] * (1 − mask)`` takes the partner's elsewhere, line
  161), with ``num = ⌈λ·H·W⌉`` or ``⌊λ·H·W⌋`` by a fair coin (line 106); with
  ``max_soft > 0`` the ``2·s`` pixels around the threshold,
  ``s = ⌊H·W·min(max_soft, λ, 1 − λ)⌋``, ramp linearly from 1 to 0 (lines
  108–118).

mixjax's masks hold the **partner's** weight (True / 1.0: the pixel comes from
the partner), so the mask returned here is the complement of the reference's:
True on the ``H·W − num`` pixels of lowest noise. The example's own label weight
is then ``1 − mean(mask) = num/(H·W)``, within ``1/(H·W)`` of ``λ``; with soft
edges the ramp sums to ``s``, so the mass is still exactly ``num/(H·W)``.
"""

from __future__ import annotations

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mixjax import _validation
from mixjax.mixer import Mixer, mask_params, spatial_size
from mixjax.params import MixParams, apply_mix
from mixjax.sampling import sample_lambda, sample_partners


def fft_frequencies(height: int, width: int) -> np.ndarray:
  """The reference's ``fftfreqnd(H, W)``: float32 ``[H, W_f]`` bin frequencies.

  ``W_f = ⌊W/2⌋ + 1`` for even ``W`` and ``⌊W/2⌋ + 2`` for odd ``W``, as in the
  reference (``fmix.py`` lines 21–24); computed in float64 by NumPy at trace time.
  """
  columns = width // 2 + (2 if width % 2 == 1 else 1)
  fy = np.fft.fftfreq(height)[:, None]
  fx = np.fft.fftfreq(width)[None, :columns]
  return np.sqrt(fx * fx + fy * fy).astype(np.float32)


def spectrum_scale(height: int, width: int, decay_power: float) -> np.ndarray:
  """``1/max(f, 1/max(H, W))^δ`` per bin, float32 ``[H, W_f]`` (``get_spectrum``, line 46)."""
  freqs = fft_frequencies(height, width).astype(np.float64)
  scale = 1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay_power
  return scale.astype(np.float32)


SPECTRA = ("reference", "paper")
_ONE_BITS = 0x3F800000  # The bits of 1.0f; the bits of floats in [0, 1] are 0 … this.
_SPLITS = 7  # Thresholds per counting pass: the search interval shrinks 8-fold per pass.
_FIELD_BITS = 31 // _SPLITS  # Each threshold's count packed in 4 bits of one int32 ...
_CHUNK = (1 << _FIELD_BITS) - 1  # ... summed over at most 15 values, so it cannot carry.


def _search_passes(span: int) -> int:
  """Passes until ``[lo, hi)`` of ``span`` values is one value (each: ``⌈span/8⌉``)."""
  passes = 0
  while span > 1:
    span, passes = -(-span // (_SPLITS + 1)), passes + 1
  return passes


def _num_th_largest_bits(bits: chex.Array, num: chex.Array) -> chex.Array:
  """Per row, the largest ``t`` with ``#{bits ≥ t} ≥ num``: the ``num``-th largest value.

  ``bits``: int32 ``[N, S]`` in ``[0, _ONE_BITS]``; ``num``: int32 ``[N, 1]`` (for
  ``num ≤ 0`` the result is ``_ONE_BITS``). An 8-ary search on ``[lo, hi)``, kept with
  ``#{≥ lo} ≥ num > #{≥ hi}``: each pass counts the values at or above 7 thresholds
  ``lo + ⌊j·(hi − lo)/8⌋`` at once, as 7 packed 4-bit counters of one int32 summed
  over chunks of ≤ 15 values (a chunk's count fits its field), then unpacked and
  summed per row. 10 passes over the data for floats in ``[0, 1]``, where a binary
  search takes 30 (on XLA:CPU a pass costs about as much either way: the counting is
  memory-bound).
  """
  n, size = bits.shape
  chunk = next(d for d in range(_CHUNK, 0, -1) if size % d == 0)
  if chunk < _CHUNK // 2:  # pad with -1, below every threshold: never counted
    chunk = _CHUNK
    bits = jnp.pad(bits, ((0, 0), (0, -size % chunk)), constant_values=-1)
  chunks = bits.reshape(n, -1, chunk)
  mask = (1 << _FIELD_BITS) - 1

  def step(_, bounds):
    lo, hi = bounds
    span = hi - lo  # ≤ _ONE_BITS + 1: no int32 overflow below.
    q, r = span // (_SPLITS + 1), span % (_SPLITS + 1)
    cuts = [lo + q * j + (r * j) // (_SPLITS + 1) for j in range(1, _SPLITS + 1)]
    packed = sum((chunks >= c[:, :, None]).astype(jnp.int32) << (_FIELD_BITS * j)
                 for j, c in enumerate(cuts)).sum(axis=-1)
    new_lo, new_hi = lo, hi
    for j, c in enumerate(cuts):  # counts fall as the cuts rise
      enough = ((packed >> (_FIELD_BITS * j)) & mask).sum(axis=-1, keepdims=True) >= num
      new_lo = jnp.where(enough, c, new_lo)
      new_hi = jnp.where(enough, new_hi, jnp.minimum(new_hi, c))
    return new_lo, new_hi

  start = (jnp.zeros_like(num), jnp.full_like(num, _ONE_BITS + 1))
  lo, _ = jax.lax.fori_loop(0, _search_passes(_ONE_BITS + 1), step, start)
  return lo


def noise_shape(height: int, width: int, spectrum: str = "reference") -> tuple[int, int, int]:
  """The ``N(0, 1)`` draws per image that :func:`low_freq_images` reads.

  ``(H, W_f, 2)`` for ``"paper"`` (every bin of the half spectrum, the
  reference's ``param``); ``(2, W_f, 2)`` for ``"reference"``, which reads only
  the rows ``u = 0`` and ``u = 1`` of that array (see :func:`low_freq_images`),
  so only those are drawn: ``H/2`` times fewer normals, the same distribution.
  """
  if spectrum not in SPECTRA:
    raise ValueError(f"spectrum must be one of {SPECTRA}, got {spectrum!r}.")
  columns = fft_frequencies(1, width).shape[1]
  return (2 if spectrum == "reference" else height, columns, 2)


def _two_column_irfft2(half: chex.Array, height: int, width: int) -> chex.Array:
  """``irfft2(half, s=(H, W))`` for a half spectrum with only columns 0 and 1 set.

  ``half`` is complex ``[N, H, c]``, ``c ∈ {1, 2}`` (the columns ``v = 0, 1``; the
  rest are zero). The inverse over rows is a small FFT, ``a_v = ifft(half[:, :, v])``;
  the real inverse over columns of two bins is then, per pixel,
  ``(Re a_0(y) + 2·Re(a_1(y)·e^{2πix/W}))/W`` (``Re a_1·(−1)^x`` when bin 1 is the
  Nyquist bin, ``W = 2``; the imaginary parts of those bins are dropped, as
  ``irfft`` drops them). One fused pass over ``[N, H, W]`` instead of an FFT of it.
  """
  rows = jnp.fft.ifft(half, axis=1)  # [N, H, c]
  image = jnp.real(rows[..., 0])[..., None]
  if half.shape[-1] > 1 and width >= 2:
    angle = 2.0 * np.pi * np.arange(width) / width
    cos, sin = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
    re, im = jnp.real(rows[..., 1])[..., None], jnp.imag(rows[..., 1])[..., None]
    if width == 2:
      image = image + re * cos
    else:
      image = image + 2.0 * (re * cos - im * sin)
  return jnp.broadcast_to(image, image.shape[:2] + (width,)) / jnp.float32(width)


def low_freq_images(noise: chex.Array, height: int, width: int,
                    decay_power: float = 3.0, spectrum: str = "reference") -> chex.Array:
  """Low-frequency images from standard normal draws (``make_low_freq_image``).

  With the scaled draws ``z(u, v, c) = n(u, v, c)·max(f(u, v), 1/max(H, W))^(−δ)``
  (``get_spectrum``), ``spectrum`` chooses the half spectrum that ``irfft2``
  inverts at shape ``(H, W)``:

  * ``"paper"``: ``Ŝ(u, v) = z(u, v, 0) + i·z(u, v, 1)``, the complex noise of the
    paper's Section 3 (every bin of the ``H × (⌊W/2⌋ + 1)`` half spectrum).
  * ``"reference"`` (default): what ``fmix.py`` line 65 computes,
    ``spectrum[:, 0] + 1j * spectrum[:, 1]`` of the ``[1, H, W_f, 2]`` array, which
    indexes its axis 1 (the rows ``u = 0`` and ``u = 1``), not the last axis: a
    ``[W_f, 2]`` array ``Ŝ(k, c) = z(0, k, c) + i·z(1, k, c)`` that ``irfftn``
    zero-pads (or crops) to ``H × (⌊W/2⌋ + 1)``. Only the column frequencies 0
    and ``1/W`` and the non-negative row frequencies below ``W_f/H`` are nonzero,
    so the images are few long waves (stripes and diagonal bands more than
    blobs). OpenMixup's ``fmix.py`` (line 66 at 37e1372), which produced its
    benchmark row, copies this line. Being two columns, the inverse is computed
    as two row FFTs and a cosine/sine per pixel (:func:`_two_column_irfft2`),
    the same transform as ``irfft2`` up to rounding.

  Each image is then shifted and scaled to ``[0, 1]``: ``(s − min s)/max(s − min s)``.
  Deterministic given ``noise``, so a test can feed the reference the same draws.

  Args:
    noise: float ``[N, H, W_f, 2]`` draws of ``N(0, 1)`` (the reference's ``param``,
      ``get_spectrum`` line 49); ``W_f`` as in :func:`fft_frequencies`. For
      ``"reference"`` ``[N, 2, W_f, 2]`` (its rows 0 and 1, :func:`noise_shape`)
      gives the same images, as the reference reads no other row.
    height: ``H``.
    width: ``W``.
    decay_power: ``δ``.
    spectrum: ``"reference"`` or ``"paper"``.

  Returns:
    float32 ``[N, H, W]`` in ``[0, 1]``.

  Raises:
    ValueError: for an unknown ``spectrum``, or ``"reference"`` with ``H < 2`` (the
      reference's line 65 reads the rows 0 and 1) or ``W < 2`` (one column: a constant
      image, which the reference normalises to NaN).
  """
  if spectrum not in SPECTRA:
    raise ValueError(f"spectrum must be one of {SPECTRA}, got {spectrum!r}.")
  scale = jnp.asarray(spectrum_scale(height, width, decay_power))
  rows, cols = height, width // 2 + 1
  if spectrum == "paper":
    chex.assert_shape(noise, (None, height, scale.shape[1], 2))
    scaled = noise.astype(jnp.float32) * scale[..., None]
    half = jax.lax.complex(scaled[..., 0], scaled[..., 1])
    # numpy's irfftn(a, (H, W)) zero-pads or crops a to [H, ⌊W/2⌋ + 1] first.
    half = half[:, :rows, :cols]
    half = jnp.pad(half, ((0, 0), (0, rows - half.shape[1]), (0, cols - half.shape[2])))
    image = jnp.fft.irfft2(half, s=(height, width), axes=(-2, -1))
  else:
    if height < 2 or width < 2:
      raise ValueError("spectrum='reference' reads the spectrum rows 0 and 1 (fmix.py line "
                       "65) and keeps the columns 0 and 1 (a single column is a constant "
                       f"image), so it needs H >= 2 and W >= 2, got H = {height}, W = "
                       f"{width}; for a 1-D mask (a segment) use spectrum='paper'.")
    if noise.ndim == 4 and noise.shape[1] == height:
      noise = noise[:, :2]
    chex.assert_shape(noise, (None, 2, scale.shape[1], 2))
    scaled = noise.astype(jnp.float32) * scale[:2, :, None]
    half = jax.lax.complex(scaled[:, 0], scaled[:, 1])  # [N, W_f, 2]: rows 0 and 1.
    half = half[:, :rows, :min(2, cols)]
    half = jnp.pad(half, ((0, 0), (0, rows - half.shape[1]), (0, 0)))
    image = _two_column_irfft2(half, height, width)
  image = image - image.min(axis=(-2, -1), keepdims=True)
  return image / image.max(axis=(-2, -1), keepdims=True)


# Compiled (once per shape and max_soft): called outside jit, a fresh loop body and
# cond branches would otherwise be compiled anew on every call.
@functools.partial(jax.jit, static_argnames="max_soft")
def binarise(images: chex.Array, lam: chex.Array, ceil: chex.Array,
             max_soft: float = 0.0) -> chex.Array:
  """Partner masks from low-frequency images (the reference's ``binarise_mask``).

  ``images`` must lie in ``[0, 1]`` (as :func:`low_freq_images` returns them). Ranks
  each image's pixels by decreasing value (ties by position, stably), so
  rank ``r ∈ {0, …, H·W − 1}``; with ``num = ⌈λ·H·W⌉`` where ``ceil`` else
  ``⌊λ·H·W⌋``, the reference's own-pixel weight is 1 for ``r < num − s``, ``0``
  for ``r ≥ num + s`` and ``1 − (r − num + s)/(2s − 1)`` between (NumPy's
  ``linspace(1, 0, 2s)``), ``s = ⌊H·W·min(max_soft, λ, 1 − λ)⌋``. The partner's
  weight returned is one minus that.

  Args:
    images: float ``[N, H, W]``.
    lam: float ``[N]`` own-pixel fractions ``λ``.
    ceil: bool ``[N]``: round ``λ·H·W`` up (True) or down.
    max_soft: ``0 ≤ max_soft ≤ ½``; 0 gives hard masks.

  Returns:
    bool ``[N, H, W]`` (``max_soft == 0``) or float32 ``[N, H, W]`` in ``[0, 1]``.
  """
  n, height, width = images.shape
  size = height * width
  flat = images.reshape(n, size)
  target = lam.astype(jnp.float32) * size
  num = jnp.where(ceil, jnp.ceil(target), jnp.floor(target)).astype(jnp.int32)[:, None]
  if max_soft == 0.0:
    # rank < num without ranking every pixel: the num-th largest value t, every pixel
    # above it, and of those equal to t the first ones in row-major order (a stable
    # argsort's tie rule). t is found on the bits of the values, which order like the
    # values for floats in [0, 1] (_num_th_largest_bits), cheaper than a sort of H·W
    # values on CPU (exact either way).
    bits = jax.lax.bitcast_convert_type(flat, jnp.int32)

    # Counts are summed as int32 (XLA:CPU sums a bool array ~1.3x slower).
    def count(m):
      return m.astype(jnp.int32).sum(axis=-1, keepdims=True)

    lo = _num_th_largest_bits(bits, num)
    t = jax.lax.bitcast_convert_type(lo, jnp.float32)
    above = flat > t
    tied = flat == t
    room = num - count(above)
    # Usually every pixel equal to t is kept (t is unique): skip the cumulative sum,
    # which cost XLA:CPU as much as a 30-pass binary search for t at 224x224.
    own = jax.lax.cond(
        jnp.all((count(tied) <= room) | (num <= 0)),
        lambda: above | tied,
        lambda: above | (tied & (jnp.cumsum(tied.astype(jnp.int32), axis=-1) <= room)))
    own = own & (num > 0)
    return (~own).reshape(n, height, width)
  order = jnp.argsort(-flat, axis=-1, stable=True)
  index = jnp.arange(size, dtype=jnp.int32)
  rank = jnp.zeros((n, size), jnp.int32).at[jnp.arange(n)[:, None], order].set(index)
  lam = lam.astype(jnp.float32)
  soft_frac = jnp.minimum(jnp.float32(max_soft), jnp.minimum(lam, 1.0 - lam))
  soft = jnp.floor(size * soft_frac).astype(jnp.int32)[:, None]
  low, high = num - soft, num + soft
  ramp = 1.0 - (rank - low).astype(jnp.float32) / jnp.maximum(2 * soft - 1, 1).astype(
      jnp.float32)
  own = jnp.where(rank < low, 1.0, jnp.where(rank >= high, 0.0, ramp))
  return (1.0 - own).reshape(n, height, width)


def sample_fmix_masks(
    key: chex.PRNGKey,
    batch_size: int,
    height: int,
    width: int,
    *,
    alpha: float = 1.0,
    decay_power: float = 3.0,
    max_soft: float = 0.0,
    mode: str = "batch",
    spectrum: str = "reference",
) -> tuple[chex.Array, chex.Array]:
  """Draws FMix partner masks and their ``λ`` (reference ``sample_mask``, line 124).

  ``λ ~ Beta(α, α)`` (:func:`~mixjax.sampling.sample_lambda`), a low-frequency
  image (:func:`low_freq_images`) and a fair coin for rounding ``λ·H·W`` up or
  down; the mask is True on the pixels outside the ``num`` largest of the image
  (:func:`binarise`). The reference's defaults: ``α = 1``, ``δ = 3``,
  ``max_soft = 0`` (``FMixBase``, line 176).

  Args:
    key: a PRNG key.
    batch_size: ``B``.
    height: ``H``.
    width: ``W``.
    alpha: ``α > 0`` of ``Beta(α, α)``.
    decay_power: ``δ > 0``; larger is smoother.
    max_soft: ``0 ≤ max_soft ≤ ½``: soft edges (float masks) when positive.
    mode: ``"batch"``: one ``λ`` and one mask for the batch (the reference),
      broadcast to ``[B, H, W]``; ``"elem"``: one each per example.
    spectrum: ``"reference"`` (default; the reference code's spectrum, few long
      waves) or ``"paper"`` (the paper's full complex spectrum); see
      :func:`low_freq_images`.

  Returns:
    ``(masks, lam)``: bool ``[B, H, W]`` (float32 when ``max_soft > 0``), the
    partner's weight per pixel, and float32 ``[B]`` drawn ``λ``. The exact own
    label weight is ``1 − mean(mask)`` over ``H × W`` (``num/(H·W)``).

  Raises:
    ValueError: at trace time for ``α ≤ 0``, ``δ ≤ 0``, ``max_soft`` outside
      ``[0, ½]``, an unknown ``mode`` or ``spectrum``, or non-positive sizes.
  """
  _validation.check_alpha(alpha)
  _validation.check_mode(mode)
  _check_size(batch_size, height, width)
  value, soft = _check_hyper(decay_power, max_soft, spectrum)
  num = 1 if mode == "batch" else batch_size
  key_lam, key_noise, key_coin = jax.random.split(key, 3)
  lam = sample_lambda(key_lam, num, alpha, "elem")
  noise = jax.random.normal(key_noise, (num,) + noise_shape(height, width, spectrum),
                            jnp.float32)
  images = low_freq_images(noise, height, width, value, spectrum)
  ceil = jax.random.uniform(key_coin, (num,)) > 0.5
  masks = binarise(images, lam, ceil, soft)
  return (jnp.broadcast_to(masks, (batch_size, height, width)),
          jnp.broadcast_to(lam, (batch_size,)))


def _check_hyper(decay_power, max_soft, spectrum) -> tuple[float, float]:
  """``(δ, max_soft)`` as floats; ``ValueError`` for bad values or an unknown spectrum."""
  value = _validation.concrete_number(decay_power)
  if value is None or not value > 0:
    raise ValueError(f"decay_power must be a number > 0, got {decay_power!r}.")
  soft = _validation.concrete_number(max_soft)
  if soft is None or not 0.0 <= soft <= 0.5:
    raise ValueError(f"max_soft must be a number in [0, 0.5], got {max_soft!r}.")
  if spectrum not in SPECTRA:
    raise ValueError(f"spectrum must be one of {SPECTRA}, got {spectrum!r}.")
  return value, soft


def _check_size(batch_size: int, height: int, width: int) -> None:
  for name, value in (("batch_size", batch_size), ("height", height), ("width", width)):
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}.")


def sample_fmix(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int],
    *,
    alpha: float = 1.0,
    decay_power: float = 3.0,
    max_soft: float = 0.0,
    mode: str = "batch",
    pairing: str = "permute",
    spectrum: str = "reference",
) -> MixParams:
  """Draws an FMix: masks (:func:`sample_fmix_masks`), exact label weights and partners.

  The key is split into ``(key_mask, key_perm)``: masks from the first, partners
  (:func:`~mixjax.sample_partners`) from the second.

  Args:
    key: a PRNG key.
    batch_size: ``B``.
    image_size: ``(H, W)``.
    alpha: ``α > 0`` of ``λ ~ Beta(α, α)``; 1 in the reference (``FMixBase``, line 176).
    decay_power: ``δ > 0``; 3 in the paper and the reference.
    max_soft: soft edges, ``0 ≤ max_soft ≤ ½``; 0 (hard masks) in the reference.
    mode: ``"batch"`` (one mask, the reference) or ``"elem"`` (one per example).
    pairing: ``"permute"``, ``"flip"`` or ``"roll"``.
    spectrum: ``"reference"`` (the code's spectrum, default) or ``"paper"``.

  Returns:
    :class:`~mixjax.MixParams` with ``mask`` (bool, or float32 with ``max_soft > 0``)
    and ``label_weight = 1 − mean(mask)`` (:func:`~mixjax.mask_params`), exactly
    ``num/(H·W)`` for hard masks.
  """
  _validation.check_pairing(pairing)
  height, width = image_size
  key_mask, key_perm = jax.random.split(key)
  masks, _ = sample_fmix_masks(key_mask, batch_size, height, width, alpha=alpha,
                               decay_power=decay_power, max_soft=max_soft, mode=mode,
                               spectrum=spectrum)
  return mask_params(sample_partners(key_perm, batch_size, pairing), masks, pairing=pairing)


@_validation.jit_with_hyperparameters(
    ("alpha", "decay_power", "max_soft", "spectrum", "num_classes", "mode", "pairing",
     "label_smoothing", "layout"), traceable=("alpha",))
def fmix(
    key: chex.PRNGKey,
    images: chex.Array,
    labels: chex.Array,
    *,
    alpha: float = 1.0,
    decay_power: float = 3.0,
    max_soft: float = 0.0,
    spectrum: str = "reference",
    num_classes: int | None = None,
    mode: str = "batch",
    pairing: str = "permute",
    label_smoothing: float = 0.0,
    layout: str | None = None,
) -> tuple[chex.Array, chex.Array]:
  """Mixes a batch with FMix (Harris et al., 2020).

  ``λ ~ Beta(α, α)``; a low-frequency Fourier image (spectrum ``∝ 1/f^δ``) keeps
  the example's own pixels on its ``num ∈ {⌊λ·H·W⌋, ⌈λ·H·W⌉}`` largest values, the
  partner's elsewhere (mask ``M``, True on the partner's pixels):

    ``x̃_i = M_i ⊙ x_p + (1 − M_i) ⊙ x_i``,  ``ỹ_i = w_i·y_i + (1 − w_i)·y_p``,
    ``w_i = 1 − |M_i|/(H·W)`` (exact).

  Hard masks copy pixels, so the dtype is kept (uint8 stays uint8); with
  ``max_soft > 0`` the edges blend and integer images become float32
  (:func:`~mixjax.mixed_dtype`).

  Args:
    key: a PRNG key.
    images: ``[B, H, W, C]`` or ``[B, H, W]``, float or integer.
    labels: int class ids ``[B]`` (with ``num_classes``) or rows ``[B, K]``.
    alpha: ``α > 0``; 1 in the reference. May be traced (it then draws what the
      same value known at trace time draws).
    decay_power: ``δ > 0``; 3 in the paper.
    max_soft: ``0 ≤ max_soft ≤ ½``; 0 (hard masks) in the paper.
    spectrum: ``"reference"`` (default; as ``ecs-vlc/FMix`` computes it) or
      ``"paper"``; see :func:`low_freq_images`.
    num_classes: ``K``.
    mode: ``"batch"`` (one mask, the reference) or ``"elem"`` (one per example).
    pairing: ``"permute"`` (default), ``"flip"`` or ``"roll"``.
    label_smoothing: ``ε`` applied to the labels before mixing.
    layout: as in :func:`~mixjax.cutmix`.

  Returns:
    ``(x̃, ỹ)``: mixed images (:func:`~mixjax.mixed_dtype`) and float32 soft labels.

  Raises:
    ValueError: at trace time for ``α ≤ 0``, ``δ ≤ 0``, ``max_soft`` outside
      ``[0, ½]``, an unknown ``spectrum``/``mode``/``pairing``/``layout``, images
      without two spatial axes or that look channels-first, a batch mismatch or
      labels that do not fit ``num_classes``.
  """
  batch = _validation.check_batch(images)
  height, width = _validation.check_spatial(images, layout)
  params = sample_fmix(key, batch, (height, width), alpha=alpha, decay_power=decay_power,
                       max_soft=max_soft, mode=mode, pairing=pairing, spectrum=spectrum)
  return apply_mix(params, images, labels, num_classes, label_smoothing, layout=layout)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FMix(Mixer):
  """FMix as a :class:`~mixjax.Mixer` (registered as ``"fmix"``); draws :func:`sample_fmix`.

  Attributes:
    alpha: ``α > 0`` of ``Beta(α, α)``; 1 in the reference. May be traced.
    decay_power: ``δ > 0``; 3 in the paper.
    max_soft: ``0 ≤ max_soft ≤ ½``; 0 (hard masks).
    spectrum: ``"reference"`` (default) or ``"paper"``.
  """
  alpha: float = 1.0
  decay_power: float = 3.0
  max_soft: float = 0.0
  spectrum: str = "reference"

  spatial = True
  segments = True   # With spectrum="paper": 1-D low-frequency masks.
  traceable = ("alpha",)

  def validate(self):
    _validation.check_alpha(self.alpha)
    _check_hyper(self.decay_power, self.max_soft, self.spectrum)

  def draw(self, key, batch_size, image_shape):
    return sample_fmix(key, batch_size, spatial_size(image_shape), alpha=self.alpha,
                       decay_power=self.decay_power, max_soft=self.max_soft,
                       mode=self.mode, pairing=self.pairing, spectrum=self.spectrum)
