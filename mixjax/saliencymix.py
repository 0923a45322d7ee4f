"""SaliencyMix boxes (Uddin et al., 2021): the CutMix box on the partner's salient peak.

SaliencyMix ("SaliencyMix: A Saliency Guided Data Augmentation Strategy for
Better Regularization", ICLR 2021) places the CutMix box around the most salient
pixel of the image it is cut from, so the pasted patch holds the partner's
object rather than background. Its code, ``afm-shahab-uddin/SaliencyMix``
``SaliencyMix_CIFAR/saliencymix.py`` at commit 9ee02b8:

* ``saliency_bbox`` (lines 191–214): ``cut = ⌊n·√(1 − λ)⌋`` per axis; the saliency
  map quantised to ``uint8`` (``(map·255).astype("uint8")``, line 204) and its
  first maximum in row-major order (``np.argmax``, line 206) is the centre
  ``(c_y, c_x)``; rows ``[c_y − ⌊cut_h/2⌋, c_y + ⌊cut_h/2⌋)`` and columns alike,
  clipped: the rule of :func:`mixjax.boxes.sample_boxes` (``box_rule="reference"``)
  with the centre at the peak instead of uniform. Its ``W = size[1]`` of a CHW
  image is the row count, so rows use ``H``, as here.
* the training loop (lines 236–243): one ``λ ~ Beta(β, β)`` and one permutation
  per batch, and **one box for the whole batch**, centred on the peak of the
  first partner's map, ``saliency_bbox(images[rand_index[0]], lam)``, pasted from
  every example's own partner; the label weight is the exact box fraction
  (line 243). ``mode="batch"`` does exactly that (one saliency map per batch).
  ``mode="elem"`` draws ``λ`` per example and centres example ``i``'s box on the
  peak of its own partner ``perm[i]``'s map (``B`` maps).

The saliency map. The code uses OpenCV's ``StaticSaliencyFineGrained`` (line 202;
Montabone & Soto, 2010), a centre-surround filter on integral images; OpenMixup's
copy uses it too. mixjax computes OpenCV's ``StaticSaliencySpectralResidual``
(Hou & Zhang, 2007) instead, as its design asks: a few FFTs of a 64×64 image,
cheap on an accelerator. The two maps differ, so the boxes are the reference's
rule applied to a different map. :func:`saliency_maps` follows
``opencv_contrib`` ``modules/saliency/src/staticSaliencySpectralResidual.cpp``
(``computeSaliencyImpl``) at commit 65fc3f1, what ``opencv-contrib-python``
5.0.0 runs, step by step:

1. grey: ``Y = 0.299·R + 0.587·G + 0.114·B`` for ``C = 3`` (channels read as RGB;
   OpenCV reads BGR, and the SaliencyMix code hands it RGB tensors), the image
   itself for ``C = 1``;
2. resized to 64×64, bilinear with half-pixel centres and no antialiasing
   (``INTER_LINEAR``);
3. ``F = DFT(Y)``; log amplitude ``L = log(|F| + 1)`` (older OpenCV took
   ``log|F|``) minus its 3×3 box average (``blur``, border reflected without
   repeating the edge, ``BORDER_REFLECT_101``, on the unshifted spectrum), phase
   kept: ``R = exp(L − box(L))·F/|F|`` (phase 0 where ``F = 0``);
4. ``S = |IDFT(R)|``, blurred by a 5×5 Gaussian of ``σ = 8`` (reflect-101), squared,
   divided by its maximum;
5. resized back to ``H × W`` (bilinear).

On float images this is OpenCV's map to float32 rounding (the test compares them
when OpenCV is installed). On uint8 images OpenCV rounds the grey and the 64×64
images to uint8 (``INTER_LINEAR_EXACT``'s fixed point); here they stay float.

Fine grained (``saliency="fine_grained"``, the detector the SaliencyMix code runs on
``img.cpu().numpy().transpose(1, 2, 0)``, a normalised float32 HWC image).
:func:`fine_grained_saliency_maps` follows ``opencv_contrib``
``modules/saliency/src/staticSaliencyFineGrained.cpp`` at commit 65fc3f1 (unchanged since
1f6d6f0, 2018; the same text at 2a5154a), what ``opencv-contrib-python`` 5.0.0 runs:

1. ``calcIntensityChannel`` (lines 84–140): ``cvtColor(·, COLOR_BGR2GRAY)`` for three
   channels, a copy for one (line 111–118). The ``gray`` Mat is reallocated to the input's
   depth, so **float input stays float32** (there is no conversion to uint8). Channels are
   read as RGB here, R weighted 0.299 and B 0.114: OpenCV reads BGR, so this is OpenCV
   on ``image[..., ::-1]``. The reference code hands OpenCV RGB tensors, so its grey
   weights R by 0.114 and B by 0.299; pass ``images[..., ::-1]`` to reproduce that.
   uint8: ``(9798·R + 19235·G + 3735·B + 2¹⁴) >> 15`` (OpenCV 5's 15-bit weights).
   float32: ``fma(R, 0.299, fma(B, 0.114, G·0.587))`` rounded as the AVX2 kernel does
   (each FMA once; emulated exactly, Boldo & Melquiond 2008). float64 RGB is refused
   by OpenCV; here every non-uint8 dtype is cast to float32 first.
2. ``GaussianBlur(gray, gray, Size(3, 3), 0, 0)`` twice (lines 121–122): the kernel
   (¼, ½, ¼), reflect-101; uint8 in OpenCV's exact fixed point, ``(Σ[1 2 1]⊗[1 2 1]·x + 8)
   >> 4``; float32 rows then columns, ``(x₋ + x₊)·¼ + x·½``.
3. ``integral(gray, integralImage, CV_32F)`` (line 126): float32 sums; exact integers for
   uint8 below 2²⁴ (int32 here), else rounded as OpenCV's AVX2 row prefix sum (blocks of
   8, halves of 4, :func:`_fg_integral_f32`).
4. ``getIntensityScaled`` / ``getMean`` (lines 142–211), for the neighbourhoods
   ``n ∈ {12, 24, 48, 28, 56, 112}`` (line 102): the window sum ``s`` of rows
   ``[y − n + 1, y + n + 1)`` and columns alike, clipped to the image, ``mean = (s − c)/
   (area − 1)`` (float32), ``on = c − mean``, ``off = mean − c``, each stored as
   ``(uchar)`` when positive (truncated; a value ≥ 256 keeps its low byte). The centre
   ``c`` is ``gray.at<uchar>(y, x)``: for uint8 the pixel; **for float32 it is byte x of
   row y of the float image**, the ``(x mod 4)``-th little-endian byte of pixel
   ``(y, ⌊x/4⌋)``. So on float input (the reference's, in [0, 1] or normalised) the map
   is a function of the raw bytes of the left quarter of the blurred grey image, plus
   window means of the whole; reproduced bit for bit here, not fixed.
5. ``mixScales`` (lines 213–264): ``on``, ``off`` summed over the six scales (uint16),
   each mapped to ``uchar(255·float(sum/float(max)))``; ``mixOnOff`` (lines 266–306):
   ``uchar(255·(on + off)/max(max on, max off))`` (double; a value above 255 wraps).
6. ``computeSaliencyImpl`` (lines 65–77): ``convertTo(CV_32F, 1/255)``, so the map is
   ``v·float32(1/255)`` for an integer ``v ∈ [0, 255]``; 0 where every level is 0.

Every step is integer or a float32 operation rounded once, so the maps equal OpenCV's
bit for bit on x86-64 with AVX2 (the test compares them): OpenCV's FMA grey and its
vector integral are those of its AVX2 kernels; on a CPU where OpenCV dispatches other
kernels (AVX-512, NEON) its own float maps may differ in a few pixels.
"""

from __future__ import annotations

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mixjax import _validation
from mixjax.mixer import Mixer, box_params
from mixjax.params import MixParams, apply_mix
from mixjax.sampling import sample_lambda, sample_partners

SALIENCY_SIZE = 64  # OpenCV's resImWidth = resImHeight = 64.
_GREY = (0.299, 0.587, 0.114)
_GAUSSIAN_SIZE, _GAUSSIAN_SIGMA = 5, 8.0
_INDEX_BITS = 23  # 255 << 23 fits int32: maps up to 2^23 pixels take saliency_peaks' fast path.
_INDEX_LIMIT = 1 << _INDEX_BITS


def _gaussian_kernel() -> np.ndarray:
  """OpenCV's ``getGaussianKernel(5, 8)``: ``∝ exp(−(i − 2)²/(2·8²))``, summing to 1."""
  x = np.arange(_GAUSSIAN_SIZE, dtype=np.float64) - (_GAUSSIAN_SIZE - 1) / 2
  k = np.exp(-x * x / (2 * _GAUSSIAN_SIGMA ** 2))
  return (k / k.sum()).astype(np.float32)


def _separable(x: chex.Array, kernel: np.ndarray) -> chex.Array:
  """Correlates the last two axes with ``kernel ⊗ kernel``, borders reflected (101)."""
  r = len(kernel) // 2
  x = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)], mode="reflect")
  h, w = x.shape[-2] - 2 * r, x.shape[-1] - 2 * r
  x = sum(float(k) * x[..., i:i + h, :] for i, k in enumerate(kernel))
  return sum(float(k) * x[..., :, i:i + w] for i, k in enumerate(kernel))


def _grey(images: chex.Array) -> chex.Array:
  images = images.astype(jnp.float32)
  if images.ndim == 3:
    return images
  if images.shape[-1] == 1:
    return images[..., 0]
  return sum(c * images[..., i] for i, c in enumerate(_GREY))


def _linear_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``INTER_LINEAR``'s two source indices and the second one's weight per output index.

  Half-pixel centres, ``s = (i + ½)·n_in/n_out − ½``, edges replicated (indices
  clamped): ``out[i] = (1 − f)·x[⌊s⌋] + f·x[⌊s⌋ + 1]``, ``f = s − ⌊s⌋``. No
  antialiasing: a downscale still reads two pixels, as OpenCV's does.
  """
  s = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5
  s = np.maximum(s, 0.0)
  low = np.minimum(np.floor(s).astype(np.int32), size_in - 1)
  high = np.minimum(low + 1, size_in - 1)
  return low, high, (s - low).astype(np.float32)


def _resize(x: chex.Array, height: int, width: int) -> chex.Array:
  """Bilinear resize of the last two axes (``INTER_LINEAR``, :func:`_linear_taps`).

  Two static gathers per axis instead of ``jax.image.resize``'s dense weight
  matrices (the same weights, up to rounding): a 224×224 → 64×64 resize reads the
  ~4·64² pixels it needs instead of contracting all 224² with each output row.
  """
  for axis, size in ((-2, height), (-1, width)):
    if x.shape[axis] == size:  # s = i: the identity.
      continue
    low, high, frac = _linear_taps(x.shape[axis], size)
    shape = [1] * x.ndim
    shape[axis] = size
    frac = frac.reshape(shape)
    x = (1.0 - frac) * jnp.take(x, low, axis=axis) + frac * jnp.take(x, high, axis=axis)
  return x


def _real_fft2(x: chex.Array) -> chex.Array:
  """``fft2`` of a real ``[..., N, M]`` array from ``rfft2`` and Hermitian symmetry.

  ``F(u, v) = conj(F(−u mod N, M − v))`` fills the columns ``v > ⌊M/2⌋``. XLA:CPU's
  ``fft2`` of a real array first widens it to complex and costs ~8x ``rfft2`` (64×64).
  """
  n, m = x.shape[-2:]
  half = jnp.fft.rfft2(x)
  rows = (-np.arange(n)) % n
  mirrored = jnp.conj(jnp.take(half, rows, axis=-2)[..., (m - 1) // 2:0:-1])
  return jnp.concatenate([half, mirrored], axis=-1)


@jax.jit
def saliency_maps(images: chex.Array) -> chex.Array:
  """Spectral-residual saliency (Hou & Zhang, 2007), as OpenCV computes it.

  The steps are those of the module docstring: grey, 64×64, the log-amplitude
  spectrum ``log(|F| + 1)`` minus its 3×3 average with the phase kept, back to the image domain,
  ``|·|``, a 5×5 Gaussian of ``σ = 8``, squared, normalised to a maximum of 1, and
  resized to ``H × W``. Runs on the device, compiled (``jax.jit``); float32 throughout.

  Args:
    images: ``[B, H, W, C]`` with ``C ∈ {1, 3}`` (RGB), or ``[B, H, W]``; any
      float or integer dtype (values are used as they are, e.g. 0–255 or
      normalised).

  Returns:
    float32 ``[B, H, W]``, maximum about 1 (exactly 1 at 64×64 before the last
    resize).

  Raises:
    ValueError: at trace time for images that are not ``[B, H, W(, C)]`` with
      ``C ∈ {1, 3}``.
  """
  _validation.check_batch(images)
  height, width = _validation.check_spatial(images)
  if images.ndim == 4 and images.shape[-1] not in (1, 3):
    raise ValueError(
        "saliency_maps needs grey [B, H, W] / [B, H, W, 1] or RGB [B, H, W, 3] images, "
        f"got {images.shape[-1]} channels (shape {tuple(images.shape)}).")
  n = SALIENCY_SIZE
  grey = _resize(_grey(images), n, n)
  spectrum = _real_fft2(grey)
  amplitude = jnp.abs(spectrum)
  log_amplitude = jnp.log1p(amplitude)
  box = _separable(log_amplitude, np.full(3, 1.0 / 3.0, np.float32))
  phase = jnp.where(amplitude > 0, spectrum / jnp.where(amplitude > 0, amplitude, 1.0), 1.0)
  residual = jnp.exp(log_amplitude - box) * phase
  saliency = jnp.abs(jnp.fft.ifft2(residual))
  saliency = jnp.square(_separable(saliency, _gaussian_kernel()))
  saliency = saliency / saliency.max(axis=(-2, -1), keepdims=True)
  return _resize(saliency, height, width)


# --- OpenCV's StaticSaliencyFineGrained ------------------------------------------------

SALIENCY_DETECTORS = ("spectral_residual", "fine_grained")
_FG_NEIGHBOURHOODS = (12, 24, 48, 28, 56, 112)  # neighborhoods[] = {3*4, 3*4*2, ...}.
_FG_GREY_U8 = (9798, 19235, 3735)  # cvtColor's 8-bit BGR2GRAY weights of R, G, B, >> 15.
_FG_GREY_F32 = (np.float32(0.299), np.float32(0.587), np.float32(0.114))
_FG_LANES = 8  # integral()'s AVX2 vector: 8 floats.


def _check_detector(saliency: str) -> None:
  if saliency not in SALIENCY_DETECTORS:
    raise ValueError(f"saliency must be one of {SALIENCY_DETECTORS}, got {saliency!r}.")


def _bits(x: chex.Array) -> chex.Array:
  return jax.lax.bitcast_convert_type(x, jnp.int32)


def _float(bits: chex.Array) -> chex.Array:
  return jax.lax.bitcast_convert_type(bits, jnp.float32)


def _round_to_odd_sum(x: chex.Array, y: chex.Array) -> chex.Array:
  """``x + y`` rounded to odd: the nearest float toward zero, with an odd last bit when
  inexact (TwoSum gives the exact error; stepping the bit pattern is nextafter)."""
  s = x + y
  yy = s - x
  err = (x - (s - yy)) + (y - yy)
  bump = jnp.where(jnp.sign(err) == jnp.sign(s), 1, -1)
  odd = (err != 0) & ((_bits(s) & 1) == 0)
  return jnp.where(odd, _float(_bits(s) + bump), s)


def _two_product(a: chex.Array, c: np.float32) -> tuple[chex.Array, chex.Array]:
  """``a·c = h + l`` exactly (Dekker): 12-bit halves of both, so each partial product is
  exact in float32 whether or not XLA contracts it into an FMA."""
  a_hi = _float(_bits(a) & ~0xFFF)
  a_lo = a - a_hi
  c_hi = (np.array([c], np.float32).view(np.int32) & ~0xFFF).view(np.float32)[0]
  c_lo = np.float32(np.float32(c) - c_hi)
  h = a * np.float32(c)
  low = ((a_hi * c_hi - h) + a_hi * c_lo + a_lo * c_hi) + a_lo * c_lo
  return h, low


def _fma(a: chex.Array, c: np.float32, b: chex.Array) -> chex.Array:
  """``fl(a·c + b)`` rounded once, as the FMA instruction (Boldo & Melquiond, 2008:
  the exact product, a TwoSum and one addition rounded to odd)."""
  h, low = _two_product(a, c)
  t_h = b + h
  hh = t_h - b
  t_l = (b - (t_h - hh)) + (h - hh)
  return t_h + _round_to_odd_sum(t_l, low)


def _fg_grey(images: chex.Array) -> tuple[chex.Array, bool]:
  """``cvtColor(·, COLOR_BGR2GRAY)`` (or the image itself for one channel), and whether
  it is uint8. Channels read as RGB: R gets 0.299, as the module's spectral residual."""
  exact = images.dtype == jnp.uint8
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim == 3:
    return (images.astype(jnp.int32) if exact else images.astype(jnp.float32)), exact
  if exact:
    x = images.astype(jnp.int32)
    w_r, w_g, w_b = _FG_GREY_U8
    return (x[..., 0] * w_r + x[..., 1] * w_g + x[..., 2] * w_b + (1 << 14)) >> 15, True
  x = images.astype(jnp.float32)
  w_r, w_g, w_b = _FG_GREY_F32
  # The AVX2 kernel's order: fma(R, 0.299, fma(B, 0.114, G·0.587)), each rounded once.
  return _fma(x[..., 0], w_r, _fma(x[..., 2], w_b, x[..., 1] * w_g)), False


def _reflect101(x: chex.Array, axis: int) -> tuple[chex.Array, chex.Array, chex.Array]:
  n = x.shape[axis]
  left = np.concatenate([[1 if n > 1 else 0], np.arange(n - 1)])
  right = np.concatenate([np.arange(1, n), [n - 2 if n > 1 else 0]])
  return jnp.take(x, left, axis=axis), x, jnp.take(x, right, axis=axis)


def _fg_blur(grey: chex.Array, exact: bool) -> chex.Array:
  """``GaussianBlur(·, (3, 3), 0)``: the kernel (¼, ½, ¼) both ways, reflect-101.

  uint8: OpenCV's fixed point is exact, ``(Σ [1 2 1]⊗[1 2 1]·x + 8) >> 4``. float32:
  rows then columns, each ``(x₋ + x₊)·¼ + x·½`` (the products are exact).
  """
  if exact:
    for axis in (-1, -2):
      a, b, c = _reflect101(grey, axis)
      grey = a + 2 * b + c
    return (grey + 8) >> 4
  for axis in (-1, -2):
    a, b, c = _reflect101(grey, axis)
    grey = (a + c) * np.float32(0.25) + b * np.float32(0.5)
  return grey


def _fg_integral_f32(grey: chex.Array) -> chex.Array:
  """``integral(grey, CV_32F)`` of a float32 image, rounding as OpenCV's AVX2 kernel.

  Each row in blocks of 8 from its start: a prefix sum within each half of 4 (shifts by
  1 and 2), the high half plus the low half's total, plus the running total of the
  blocks before; the last ``W mod 8`` one by one; each row then added to the integral row
  above. ``[B, H, W] → [B, H, W]`` (the integral without its zero row and column).
  """
  b, h, w = grey.shape
  blocks = w // _FG_LANES
  head = grey[..., :blocks * _FG_LANES].reshape(b, h, blocks, 2, 4)
  v = head
  for k in (1, 2):
    v = v + jnp.pad(v[..., :-k], [(0, 0)] * 4 + [(k, 0)])
  v = jnp.concatenate([v[..., :1, :], v[..., 1:, :] + v[..., :1, 3:]], axis=-2)
  v = v.reshape(b, h, blocks, _FG_LANES)

  def carry_step(carry, block):
    out = block + carry[..., None]
    return out[..., -1], out

  carry, rows = jax.lax.scan(carry_step, jnp.zeros((b, h), jnp.float32),
                             jnp.moveaxis(v, 2, 0))
  parts = [jnp.moveaxis(rows, 0, 2).reshape(b, h, blocks * _FG_LANES)]
  for x in range(blocks * _FG_LANES, w):
    carry = carry + grey[..., x]
    parts.append(carry[..., None])
  rows = jnp.concatenate(parts, axis=-1)

  def row_step(above, row):
    out = above + row
    return out, out

  _, integral = jax.lax.scan(row_step, jnp.zeros((b, w), jnp.float32),
                             jnp.moveaxis(rows, 1, 0))
  return jnp.moveaxis(integral, 0, 1)


def _floor_255_times(q: chex.Array) -> chex.Array:
  """``⌊255·q⌋`` of float32 ``q ∈ [0, 1]`` exactly, as C's double product: 255·q needs 32
  bits, so fl(255·q) is corrected by exact sign tests (256·q and 256·q − k are exact)."""
  a = q * np.float32(256.0)
  k = jnp.floor(q * np.float32(255.0))
  k = jnp.where((a - k) - q < 0, k - 1, k)
  k = jnp.where((a - (k + 1)) - q >= 0, k + 1, k)
  return k.astype(jnp.int32)


@jax.jit
def fine_grained_saliency_maps(images: chex.Array) -> chex.Array:
  """OpenCV's ``StaticSaliencyFineGrained`` (Montabone & Soto, 2010), bit for bit.

  The steps, their OpenCV arithmetic and what it does to float input are in the module
  docstring (section "Fine grained"). Compiled (``jax.jit``).

  Args:
    images: ``[B, H, W, C]`` with ``C ∈ {1, 3}`` (RGB), or ``[B, H, W]``. uint8 takes
      OpenCV's 8-bit path; any other dtype is cast to float32 and takes its float path,
      which reads the bytes of the blurred float grey image as if they were pixels.

  Returns:
    float32 ``[B, H, W]``: ``v·float32(1/255)`` for integer ``v ∈ [0, 255]``, as OpenCV's.

  Raises:
    ValueError: at trace time for images that are not ``[B, H, W(, C)]`` with
      ``C ∈ {1, 3}``.
  """
  _validation.check_batch(images)
  height, width = _validation.check_spatial(images)
  if images.ndim == 4 and images.shape[-1] not in (1, 3):
    raise ValueError(
        "fine_grained_saliency_maps needs grey [B, H, W] / [B, H, W, 1] or RGB [B, H, W, 3] "
        f"images, got {images.shape[-1]} channels (shape {tuple(images.shape)}).")
  grey, exact = _fg_grey(images)
  grey = _fg_blur(_fg_blur(grey, exact), exact)  # Twice, as Frintrop and Itti.
  batch = grey.shape[0]
  if exact and 255 * height * width < (1 << 24):
    # Integer sums below 2^24: OpenCV's float32 integral is exact, so is this one.
    integral = jnp.cumsum(jnp.cumsum(grey, axis=-1), axis=-2).astype(jnp.float32)
  else:
    integral = _fg_integral_f32(grey.astype(jnp.float32))
  integral = jnp.pad(integral, [(0, 0), (1, 0), (1, 0)])
  if exact:
    centre = grey
  else:
    # getIntensityScaled reads gray.at<uchar>(y, x) of the float32 image: byte x of row y,
    # the (x mod 4)-th byte (little-endian) of pixel (y, ⌊x/4⌋); columns ≥ W/4 unread.
    raw = jax.lax.bitcast_convert_type(grey, jnp.uint8).reshape(batch, height, 4 * width)
    centre = raw[..., :width].astype(jnp.int32)
  centre_f = centre.astype(jnp.float32)
  sum_on = jnp.zeros((batch, height, width), jnp.int32)
  sum_off = jnp.zeros((batch, height, width), jnp.int32)
  for n in _FG_NEIGHBOURHOODS:
    y0 = np.clip(np.arange(height) - n + 1, 0, height)
    y1 = np.clip(np.arange(height) + n + 1, 0, height)
    x0 = np.clip(np.arange(width) - n + 1, 0, width)
    x1 = np.clip(np.arange(width) + n + 1, 0, width)
    rows_0, rows_1 = jnp.take(integral, y0, axis=1), jnp.take(integral, y1, axis=1)
    window = (((jnp.take(rows_1, x1, axis=2) + jnp.take(rows_0, x0, axis=2))
               - jnp.take(rows_1, x0, axis=2)) - jnp.take(rows_0, x1, axis=2))
    count = (np.outer(y1 - y0, x1 - x0) - 1).astype(np.float32)
    # The barrier keeps XLA from turning the division by a constant into a product with
    # its rounded reciprocal (off by an ulp, which truncation can show).
    count = jnp.broadcast_to(jnp.asarray(count), window.shape)  # Full-shape, as below.
    mean = (window - centre_f) / jax.lax.optimization_barrier(count)
    on, off = centre_f - mean, mean - centre_f
    # (uchar) of a float: truncated to int, its low byte kept.
    sum_on += jnp.where(on > 0, on.astype(jnp.int32) & 255, 0)
    sum_off += jnp.where(off > 0, off.astype(jnp.int32) & 255, 0)

  def scaled(total):  # mixScales: uchar(255.·float(total/float(max))); 0/0 gives 0.
    top = total.max(axis=(1, 2), keepdims=True)
    # Full-shape behind a barrier: XLA would divide by a broadcast via its reciprocal.
    denominator = jnp.broadcast_to(jnp.maximum(top, 1).astype(jnp.float32), total.shape)
    q = total.astype(jnp.float32) / jax.lax.optimization_barrier(denominator)
    return jnp.where(top > 0, _floor_255_times(q), 0)

  on, off = scaled(sum_on), scaled(sum_off)
  top = jnp.maximum(on.max(axis=(1, 2), keepdims=True), off.max(axis=(1, 2), keepdims=True))
  # mixOnOff: uchar(255.·(on + off)/maxVal) in double, exact as an integer division; a
  # sum above maxVal wraps (the low byte of the truncated int).
  value = jnp.where(top > 0, (255 * (on + off)) // jnp.maximum(top, 1), 0) & 255
  return value.astype(jnp.float32) * np.float32(1.0 / 255.0)


def detector_maps(images: chex.Array, saliency: str = "spectral_residual") -> chex.Array:
  """The saliency maps of ``saliency`` (one of :data:`SALIENCY_DETECTORS`)."""
  _check_detector(saliency)
  if saliency == "fine_grained":
    return fine_grained_saliency_maps(images)
  return saliency_maps(images)


def saliency_peaks(maps: chex.Array) -> tuple[chex.Array, chex.Array]:
  """The reference's centre: the first maximum (row-major) of ``uint8(255·map)``.

  Returns:
    ``(rows, cols)``, int32 ``[B]`` each.
  """
  b, height, width = maps.shape
  quantised = jnp.floor(jnp.clip(maps, 0.0, 1.0) * 255.0).astype(jnp.int32)
  size = height * width
  if size > _INDEX_LIMIT:
    index = jnp.argmax(quantised.reshape(b, -1), axis=-1).astype(jnp.int32)
  else:
    # argmax's first maximum as one integer max: the level in the top 8 bits, the
    # complement of the position below, so ties go to the lowest index. XLA:CPU's
    # variadic (value, index) reduce of argmax is ~4x slower at 224x224.
    order = _INDEX_LIMIT - 1 - jnp.arange(size, dtype=jnp.int32).reshape(height, width)
    keys = (quantised << _INDEX_BITS) | order
    index = _INDEX_LIMIT - 1 - (keys.max(axis=(1, 2)) & (_INDEX_LIMIT - 1))
  return index // width, index % width


def boxes_at(centre_y: chex.Array, centre_x: chex.Array, lam: chex.Array, height: int,
             width: int) -> chex.Array:
  """CutMix boxes of the reference rule around given centres (``saliency_bbox``).

  ``cut_h = ⌊H·√(1 − λ)⌋``, ``cut_w = ⌊W·√(1 − λ)⌋``, rows
  ``[c_y − ⌊cut_h/2⌋, c_y + ⌊cut_h/2⌋)`` and columns alike, clipped to the image:
  :func:`mixjax.boxes.sample_boxes`'s ``"reference"`` arithmetic with the centres given.

  Returns:
    int32 ``[N, 4]`` boxes ``(top, left, bottom, right)``.
  """
  ratio = jnp.sqrt(jnp.clip(1.0 - lam.astype(jnp.float32), 0.0, 1.0))
  half_h = jnp.floor(height * ratio).astype(jnp.int32) // 2
  half_w = jnp.floor(width * ratio).astype(jnp.int32) // 2
  return jnp.stack([
      jnp.clip(centre_y - half_h, 0, height),
      jnp.clip(centre_x - half_w, 0, width),
      jnp.clip(centre_y + half_h, 0, height),
      jnp.clip(centre_x + half_w, 0, width),
  ], axis=-1)


def sample_saliencymix_boxes(
    key: chex.PRNGKey,
    images: chex.Array,
    *,
    alpha: float = 1.0,
    mode: str = "batch",
    pairing: str = "permute",
    saliency: str = "spectral_residual",
) -> tuple[chex.Array, chex.Array, chex.Array]:
  """Draws SaliencyMix partners, boxes on the partners' salient peaks, and ``λ``.

  ``λ ~ Beta(α, α)`` (the reference's ``--beta 1``), partners from
  :func:`~mixjax.sampling.sample_partners`, then :func:`boxes_at` around
  :func:`saliency_peaks` of :func:`saliency_maps` of the partners:

  * ``"batch"``: one ``λ`` and one box for the batch, centred on the peak of
    ``images[perm[0]]`` (the reference; one saliency map);
  * ``"elem"``: ``λ_i`` per example and example ``i``'s box centred on the peak of
    its partner ``images[perm[i]]`` (``B`` maps).

  Args:
    key: a PRNG key.
    images: ``[B, H, W, C]`` (``C ∈ {1, 3}``, RGB) or ``[B, H, W]``.
    alpha: ``α > 0``.
    mode: ``"batch"`` or ``"elem"``.
    pairing: ``"permute"``, ``"flip"`` or ``"roll"``.
    saliency: the detector, one of :data:`SALIENCY_DETECTORS`: ``"spectral_residual"``
      (:func:`saliency_maps`, the default) or ``"fine_grained"``
      (:func:`fine_grained_saliency_maps`, the one the reference code runs).

  Returns:
    ``(perm, boxes, lam)``: int32 ``[B]`` partners, int32 ``[B, 4]`` boxes
    ``(top, left, bottom, right)`` (the pixels pasted from ``images[perm]``), and
    float32 ``[B]`` drawn ``λ``. The exact own label weight is
    ``1 − area/(H·W)`` (:func:`mixjax.boxes.box_area`), as in the reference.

  Raises:
    ValueError: at trace time for ``α ≤ 0``, an unknown ``mode``, ``pairing`` or ``saliency``, or
      images :func:`saliency_maps` refuses.
  """
  _validation.check_alpha(alpha)
  _validation.check_mode(mode)
  _validation.check_pairing(pairing)
  _check_detector(saliency)
  batch = _validation.check_batch(images)
  height, width = _validation.check_spatial(images)
  key_lam, key_perm = jax.random.split(key)
  perm = sample_partners(key_perm, batch, pairing)
  if mode == "batch":
    lam = sample_lambda(key_lam, 1, alpha, "elem")
    rows, cols = saliency_peaks(detector_maps(images[perm[:1]], saliency))
  else:
    lam = sample_lambda(key_lam, batch, alpha, "elem")
    # perm is a permutation, so the partners' peaks are the peaks of the batch, permuted:
    # the maps are computed from the images as they are, without a gathered copy.
    rows, cols = saliency_peaks(detector_maps(images, saliency))
    rows, cols = rows[perm], cols[perm]
  boxes = boxes_at(rows, cols, lam, height, width)
  return (perm, jnp.broadcast_to(boxes, (batch, 4)),
          jnp.broadcast_to(lam, (batch,)))


def sample_saliencymix(
    key: chex.PRNGKey,
    images: chex.Array,
    *,
    alpha: float = 1.0,
    mode: str = "batch",
    pairing: str = "permute",
    saliency: str = "spectral_residual",
) -> MixParams:
  """Draws a SaliencyMix from the batch: :func:`sample_saliencymix_boxes` as a mix.

  Unlike the other ``sample_*`` functions this one needs the pixels (the boxes
  follow the partners' saliency), so it takes ``images`` instead of a batch size
  and an image size.

  Returns:
    :class:`~mixjax.MixParams` with the boxes (pasted in place from the partner,
    as CutMix) and ``label_weight = 1 − area/(H·W)`` (:func:`~mixjax.box_params`).
  """
  perm, boxes, _ = sample_saliencymix_boxes(key, images, alpha=alpha, mode=mode,
                                            pairing=pairing, saliency=saliency)
  return box_params(perm, boxes, (images.shape[1], images.shape[2]))


@functools.partial(
    jax.jit,
    static_argnames=("alpha", "num_classes", "mode", "pairing", "label_smoothing", "layout",
                     "saliency"))
def saliencymix(
    key: chex.PRNGKey,
    images: chex.Array,
    labels: chex.Array,
    *,
    alpha: float = 1.0,
    num_classes: int | None = None,
    mode: str = "batch",
    pairing: str = "permute",
    label_smoothing: float = 0.0,
    layout: str | None = None,
    saliency: str = "spectral_residual",
) -> tuple[chex.Array, chex.Array]:
  """Mixes a batch with SaliencyMix (Uddin et al., 2021).

  ``λ ~ Beta(α, α)``; the CutMix box of side ratio ``√(1 − λ)`` is centred on the
  peak of the partner's spectral-residual saliency map (:func:`saliency_maps`,
  computed here on the device) and pasted from the partner (box ``R``):

    ``x̃_i = R_i ⊙ x_p + (1 − R_i) ⊙ x_i``,  ``ỹ_i = w_i·y_i + (1 − w_i)·y_p``,
    ``w_i = 1 − |R_i|/(H·W)`` (exact, after clipping).

  ``mode="batch"`` is the reference: one ``λ`` and one box for the batch, on the
  first partner's peak; ``"elem"`` draws ``λ`` and centres the box per example on
  its own partner's peak. Pixels are copied, so the dtype is kept. The map is
  computed at 64×64 whatever the image size (OpenCV's rule): small images (e.g.
  8×8 digits) are upsampled for it, which works but finds only coarse peaks.

  Args:
    key: a PRNG key.
    images: ``[B, H, W, C]`` with ``C ∈ {1, 3}`` (RGB) or ``[B, H, W]``, float or
      integer.
    labels: int class ids ``[B]`` (with ``num_classes``) or rows ``[B, K]``.
    alpha: ``α > 0``; 1 (the reference's ``--beta 1``).
    num_classes: ``K``.
    mode: ``"batch"`` or ``"elem"``.
    pairing: ``"permute"`` (default), ``"flip"`` or ``"roll"``.
    label_smoothing: ``ε`` applied to the labels before mixing.
    layout: as in :func:`~mixjax.cutmix` (the saliency needs ``C ∈ {1, 3}``, so a
      batch that looks channels-first is refused either way).
    saliency: ``"spectral_residual"`` (default) or ``"fine_grained"`` (OpenCV's
      ``StaticSaliencyFineGrained``, the reference code's detector).

  Returns:
    ``(x̃, ỹ)``: mixed images (input dtype) and float32 soft labels ``[B, K]``.

  Raises:
    ValueError: at trace time for ``α ≤ 0``, an unknown ``mode``/``pairing``/
      ``layout``/``saliency``, images that are not ``[B, H, W(, C)]`` with ``C ∈ {1, 3}`` or that
      look channels-first, a batch mismatch or labels that do not fit ``num_classes``.
  """
  _validation.check_batch(images)
  _validation.check_spatial(images, layout)
  params = sample_saliencymix(key, images, alpha=alpha, mode=mode, pairing=pairing,
                              saliency=saliency)
  return apply_mix(params, images, labels, num_classes, label_smoothing, layout=layout)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SaliencyMix(Mixer):
  """SaliencyMix as a :class:`~mixjax.Mixer` (registered as ``"saliencymix"``).

  Draws :func:`sample_saliencymix` from the batch it gets (``uses_images``).

  Attributes:
    alpha: ``α > 0`` of ``Beta(α, α)``; 1 in the reference.
    saliency: one of :data:`SALIENCY_DETECTORS`; ``"spectral_residual"`` by default,
      ``"fine_grained"`` for the reference code's detector.
  """
  alpha: float = 1.0
  saliency: str = "spectral_residual"

  spatial = True
  uses_images = True

  def validate(self):
    _validation.check_alpha(self.alpha)
    _check_detector(self.saliency)

  def draw(self, key, batch_size, image_shape, *, images):
    del batch_size, image_shape  # Checked against images by Mixer.sample.
    return sample_saliencymix(key, images, alpha=self.alpha, mode=self.mode,
                              pairing=self.pairing, saliency=self.saliency)
