"""OpenCV's ``StaticSaliencyFineGrained`` (Montabone & Soto, 2010) in JAX, bit for bit.

The saliency detector the SaliencyMix code runs (``saliency="fine_grained"`` of
:func:`mixjax.saliencymix`): ``afm-shahab-uddin/SaliencyMix``
``SaliencyMix_CIFAR/saliencymix.py`` line 202, on ``img.cpu().numpy().transpose(1, 2,
0)``, a normalised float32 HWC image.

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

Cost: the float path's integral image is two sequential ``lax.scan`` loops (OpenCV's
rounding order); measured on a 2-core CPU, 60 ms for 256×32×32×3 and 0.87 s for
64×224×224×3 float32. SaliencyMix's batch mode computes one map per batch.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mixjax import _validation

_FG_NEIGHBOURHOODS = (12, 24, 48, 28, 56, 112)  # neighborhoods[] = {3*4, 3*4*2, ...}.
_FG_GREY_U8 = (9798, 19235, 3735)  # cvtColor's 8-bit BGR2GRAY weights of R, G, B, >> 15.
_FG_GREY_F32 = (np.float32(0.299), np.float32(0.587), np.float32(0.114))
_FG_LANES = 8  # integral()'s AVX2 vector: 8 floats.


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
  if images.ndim == 5:
    raise ValueError(f"fine_grained_saliency_maps takes images [B, H, W(, C)], got clips "
                     f"{tuple(images.shape)} (sample_saliencymix uses each clip's mean frame).")
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
