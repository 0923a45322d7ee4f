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

``saliency="fine_grained"`` runs the detector the SaliencyMix code runs, OpenCV's
``StaticSaliencyFineGrained``, bit for bit instead
(:func:`mixjax.saliency_fine_grained.fine_grained_saliency_maps`).
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mixjax import _validation
from mixjax.mixer import Mixer, box_params
from mixjax.params import MixParams, apply_mix
from mixjax.saliency_fine_grained import fine_grained_saliency_maps
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
  if images.ndim == 5:
    raise ValueError(f"saliency_maps takes images [B, H, W(, C)], got clips {tuple(images.shape)} "
                     "(sample_saliencymix uses each clip's mean frame).")
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


SALIENCY_DETECTORS = ("spectral_residual", "fine_grained")


def _check_detector(saliency: str) -> None:
  if saliency not in SALIENCY_DETECTORS:
    raise ValueError(f"saliency must be one of {SALIENCY_DETECTORS}, got {saliency!r}.")


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
    perm: chex.Array | None = None,
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
    images: ``[B, H, W, C]`` (``C ∈ {1, 3}``, RGB) or ``[B, H, W]``; for clips
      ``[B, T, H, W, C]`` the saliency of each clip's mean frame (one box per clip).
    alpha: ``α > 0``.
    mode: ``"batch"`` or ``"elem"``.
    pairing: ``"permute"``, ``"flip"`` or ``"roll"``.
    saliency: the detector, one of :data:`SALIENCY_DETECTORS`: ``"spectral_residual"``
      (:func:`saliency_maps`, the default) or ``"fine_grained"``
      (:func:`fine_grained_saliency_maps`, the one the reference code runs).
    perm: optional int ``[B]`` partners drawn by the caller (with ``pairing``; a
      :class:`~mixjax.Choice` shares one draw among its mixers); ``None`` draws
      them. The key is split the same way either way.

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
  if images.ndim == 5:  # Clips: the saliency of the mean frame.
    images = jnp.mean(images.astype(jnp.float32), axis=1)
  key_lam, key_perm = jax.random.split(key)
  if perm is None:
    perm = sample_partners(key_perm, batch, pairing)
  elif perm.shape != (batch,) or not jnp.issubdtype(perm.dtype, jnp.integer):
    raise ValueError(f"perm must be int [B] with B = {batch}, got {perm.dtype} "
                     f"{tuple(perm.shape)}.")
  perm = perm.astype(jnp.int32)
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
    perm: chex.Array | None = None,
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
                                            pairing=pairing, saliency=saliency, perm=perm)
  return box_params(perm, boxes, _validation.check_spatial(images), pairing=pairing)


@_validation.jit_with_hyperparameters(
    ("alpha", "num_classes", "mode", "pairing", "label_smoothing", "layout", "saliency"),
    traceable=("alpha",))
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
    alpha: ``α > 0``; 1 (the reference's ``--beta 1``). May be traced (it then
      draws what the same value known at trace time draws).
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
    alpha: ``α > 0`` of ``Beta(α, α)``; 1 in the reference. May be traced.
    saliency: one of :data:`SALIENCY_DETECTORS`; ``"spectral_residual"`` by default,
      ``"fine_grained"`` for the reference code's detector.
  """
  alpha: float = 1.0
  saliency: str = "spectral_residual"

  spatial = True
  uses_images = True
  traceable = ("alpha",)

  def validate(self):
    _validation.check_alpha(self.alpha)
    _check_detector(self.saliency)

  def draw(self, key, batch_size, image_shape, *, images):
    del batch_size, image_shape  # Checked against images by Mixer.sample.
    return sample_saliencymix(key, images, alpha=self.alpha, mode=self.mode,
                              pairing=self.pairing, saliency=self.saliency)

  def draw_with_partners(self, key, batch_size, image_shape, partners, *, images):
    # The boxes follow the partners' saliency: centred on the given partners' peaks.
    del batch_size, image_shape
    return sample_saliencymix(key, images, alpha=self.alpha, mode=self.mode,
                              pairing=self.pairing, saliency=self.saliency,
                              perm=partners[:, 0])
