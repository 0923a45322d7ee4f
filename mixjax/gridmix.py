"""GridMix masks (Baek et al., 2021): a grid of holes pasted from the partner.

GridMix ("GridMix: Strong regularization through local context mapping", Pattern
Recognition 109, 2021) pastes a regular grid of rectangular holes, laid over a
random crop of the image, from the partner. This module follows the paper's code,
``IlyaDobrynin/GridMixup`` ``gridmix/gridmix_pytorch.py`` at commit 11b741f
(``GridMixupLoss``):

* ``_get_random_crop`` (lines 51–63): a crop of area ``A = ⌊H·W·a⌋`` and aspect
  ``s`` (height/width), ``w_c = ⌊√(A/s)⌋``, ``h_c = ⌊w_c·s⌋``, placed at
  ``y₀ = trunc((H − h_c)·c_y)``, ``x₀ = trunc((W − w_c)·c_x)``, ``c_y, c_x ~ U[0, 1)``.
* ``_get_gridmask`` (lines 65–131): ``n`` holes across the crop, a patch of
  ``p_w = ⌈w_c/n⌉`` by ``p_h = ⌊p_w·r⌋`` (``r`` the hole aspect ratio), a hole of
  ``⌊p_w·√(1 − λ)⌋`` by ``⌊p_h·√(1 − λ)⌋`` at the top-left of every patch, each
  clamped to ``[1, p − 1]`` (lines 111–116). A pixel at ``(y₀ + v, x₀ + u)`` with
  ``0 ≤ v < h_c``, ``0 ≤ u < w_c`` is a hole iff ``v mod p_h < hole_h`` and
  ``u mod p_w < hole_w``: the reference's loops over ``n + 1`` by ``⌈h_c/p_h⌉ + 1``
  patches, written per pixel.
* ``get_sample`` (lines 133–172): ``n ~ U{n_lo, …, n_hi}``, ``r``, ``a`` and ``s``
  uniform in their ranges, one draw for the batch; ``images·(1 − mask) +
  images[indices]·mask`` (line 172), so the holes are the **partner's** pixels, as
  in mixjax's convention; the label weight is ``1 − mean(mask)`` (line 168).

Two choices are OpenMixup's (``openmixup/models/augments/gridmix.py`` at
37e1372, whose CIFAR row the issue quotes): ``λ ~ Beta(α, α)`` with ``α = 1``
(line 101; GridMixup's default draws ``λ ~ U(0.1, 0.9)``, its line 23), and the
defaults ``n_holes=(2, 6)``, ``hole_aspect_ratio=1``, ``cut_area_ratio=(0.5, 1)``,
``cut_aspect_ratio=(0.5, 2)`` of its CIFAR-100 configs
(``configs/classification/cifar100/mixups/basic/r18_mixups_CE_none.py`` lines
17–18). OpenMixup's own ``rand_grid`` reads ``W, H = size[2], size[3]`` of an NCHW
batch (lines 50–51), swapping rows and columns on non-square images; GridMixup's
geometry is used here.

One deviation: a crop wider or taller than the image (``s < a`` or ``a·s > 1``,
a third of the draws at the CIFAR defaults) starts at a negative ``y₀`` or ``x₀``,
where the reference's NumPy slices ``mask[y₀ + y₁ : y₀ + y₂]`` wrap negative
starts to the far side of the image or drop the hole. Here such a crop is
clipped to the image: the holes keep their places on the crop's grid and only
their pixels inside the image are pasted. Where the crop fits, the masks are the
reference's pixel for pixel.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import chex
import jax
import jax.numpy as jnp

from mixjax import _validation
from mixjax.mixer import Mixer, mask_params, spatial_size
from mixjax.params import MixParams, apply_mix
from mixjax.sampling import sample_lambda, sample_partners

# OpenMixup's CIFAR-100 defaults (configs/.../r18_mixups_CE_none.py lines 17–18).
PAPER_N_HOLES = (2, 6)
PAPER_HOLE_ASPECT_RATIO = 1.0
PAPER_CUT_AREA_RATIO = (0.5, 1.0)
PAPER_CUT_ASPECT_RATIO = (0.5, 2.0)


def grid_masks(
    lam: chex.Array,
    n_holes: chex.Array,
    hole_aspect_ratio: chex.Array,
    cut_area_ratio: chex.Array,
    cut_aspect_ratio: chex.Array,
    centre_y: chex.Array,
    centre_x: chex.Array,
    height: int,
    width: int,
) -> chex.Array:
  """Rasterises GridMix masks from their drawn parameters (reference ``_get_gridmask``).

  Args:
    lam: float ``[N]`` ``λ``; the hole's side ratio in its patch is ``√(1 − λ)``.
    n_holes: int ``[N]`` holes across the crop, ``n``.
    hole_aspect_ratio: float ``[N]`` patch height / width, ``r``.
    cut_area_ratio: float ``[N]`` crop area / image area, ``a``.
    cut_aspect_ratio: float ``[N]`` crop height / width, ``s``.
    centre_y: float ``[N]`` in ``[0, 1)``: the crop's offset ``c_y``.
    centre_x: float ``[N]`` in ``[0, 1)``: ``c_x``.
    height: ``H``.
    width: ``W``.

  Returns:
    bool ``[N, H, W]``, True on the holes (the partner's pixels).
  """
  f32 = jnp.float32
  area = jnp.floor(jnp.float32(height * width) * cut_area_ratio.astype(f32))
  aspect = cut_aspect_ratio.astype(f32)
  crop_w = jnp.floor(jnp.sqrt(area / aspect)).astype(jnp.int32)
  crop_h = jnp.floor(crop_w.astype(f32) * aspect).astype(jnp.int32)
  top = jnp.trunc((height - crop_h).astype(f32) * centre_y.astype(f32)).astype(jnp.int32)
  left = jnp.trunc((width - crop_w).astype(f32) * centre_x.astype(f32)).astype(jnp.int32)
  n = n_holes.astype(jnp.int32)
  patch_w = (crop_w + n - 1) // n
  patch_h = jnp.floor(patch_w.astype(f32) * hole_aspect_ratio.astype(f32)).astype(jnp.int32)
  ratio = jnp.sqrt(1.0 - lam.astype(f32))
  hole_w = jnp.floor(patch_w.astype(f32) * ratio).astype(jnp.int32)
  hole_h = jnp.floor(patch_h.astype(f32) * ratio).astype(jnp.int32)
  hole_w = jnp.minimum(jnp.maximum(hole_w, 1), patch_w - 1)
  hole_h = jnp.minimum(jnp.maximum(hole_h, 1), patch_h - 1)

  def axis(size, start, crop, patch, hole):
    offset = jnp.arange(size, dtype=jnp.int32)[None, :] - start[:, None]
    inside = (offset >= 0) & (offset < crop[:, None])
    return inside & (offset % jnp.maximum(patch, 1)[:, None] < hole[:, None])

  rows = axis(height, top, crop_h, patch_h, hole_h)
  cols = axis(width, left, crop_w, patch_w, hole_w)
  return rows[:, :, None] & cols[:, None, :]


def _range(value, name: str, *, integer: bool = False, upper: float | None = None):
  """``value`` or ``(lo, hi)`` as a checked pair ``(lo, hi)`` (the reference's ``to_2tuple``)."""
  value = _validation.static_value(value)
  pair = (value, value) if isinstance(value, numbers.Real) else value
  kind = "int" if integer else "number"
  bound = f" <= {upper}" if upper is not None else ""
  expect = f"{name} must be a positive {kind} or a pair (lo, hi) with 0 < lo <= hi{bound}"
  if len(pair) != 2 or not all(isinstance(v, numbers.Real) for v in pair):
    raise ValueError(f"{expect}, got {value!r}.")
  if integer and not all(float(v) == int(v) for v in pair):
    raise ValueError(f"{expect}, got {value!r}.")
  lo, hi = (int(v) for v in pair) if integer else (float(v) for v in pair)
  if not 0 < lo <= hi or (upper is not None and hi > upper):
    raise ValueError(f"{expect}, got {value!r}.")
  return lo, hi


def sample_gridmix_masks(
    key: chex.PRNGKey,
    batch_size: int,
    height: int,
    width: int,
    *,
    alpha: float = 1.0,
    n_holes=PAPER_N_HOLES,
    hole_aspect_ratio=PAPER_HOLE_ASPECT_RATIO,
    cut_area_ratio=PAPER_CUT_AREA_RATIO,
    cut_aspect_ratio=PAPER_CUT_ASPECT_RATIO,
    mode: str = "batch",
) -> chex.Array:
  """Draws GridMix partner masks (reference ``get_sample``, lines 149–166).

  ``λ ~ Beta(α, α)``, ``n ~ U{n_lo, …, n_hi}`` holes across, hole aspect ``r``,
  crop area ``a`` and crop aspect ``s`` uniform in their ranges, and the crop's
  offsets ``c_y, c_x ~ U[0, 1)``; rasterised by :func:`grid_masks`. Each range is a
  number (fixed) or a pair ``(lo, hi)``.

  Args:
    key: a PRNG key.
    batch_size: ``B``.
    height: ``H``.
    width: ``W``.
    alpha: ``α > 0`` of ``Beta(α, α)``.
    n_holes: holes across the crop, an int or a pair of ints ``≥ 1``.
    hole_aspect_ratio: patch height / width, ``> 0``.
    cut_area_ratio: crop area / image area, in ``(0, 1]``.
    cut_aspect_ratio: crop height / width, ``> 0``.
    mode: ``"batch"``: one draw for the batch (the reference), broadcast to
      ``[B, H, W]``; ``"elem"``: one per example.

  Returns:
    bool ``[B, H, W]``, True where the pixel comes from the partner. The exact own
    label weight is ``1 − mean(mask)`` over ``H × W``.

  Raises:
    ValueError: at trace time for ``α ≤ 0``, an unknown ``mode``, malformed ranges,
      or ranges for which the reference itself fails on some draw: more holes than
      half the narrowest crop's width (its check, line 96), or a patch height
      ``⌊p_w·r⌋`` of 0 (its division by zero, line 105).
  """
  _validation.check_alpha(alpha)
  _validation.check_mode(mode)
  for name, value in (("batch_size", batch_size), ("height", height), ("width", width)):
    if not isinstance(value, numbers.Integral) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}.")
  holes, hole_ar, area, aspect = _ranges(n_holes, hole_aspect_ratio, cut_area_ratio,
                                         cut_aspect_ratio)
  # The narrowest crop and its patches, as the reference computes them (float64).
  narrowest = int(math.sqrt(int(height * width * area[0]) / aspect[1]))
  if holes[1] > narrowest // 2:
    raise ValueError(
        f"n_holes must be at most half the narrowest crop's width: crops of "
        f"cut_area_ratio {area[0]} and cut_aspect_ratio {aspect[1]} on {height}x{width} "
        f"are {narrowest} wide, so n_holes <= {narrowest // 2}, got {n_holes!r}.")
  narrowest_patch = -(-narrowest // holes[1])
  if int(narrowest_patch * hole_ar[0]) < 1:
    raise ValueError(
        f"hole_aspect_ratio {hole_ar[0]} makes patches of height "
        f"int({narrowest_patch} * {hole_ar[0]}) = 0 (patches are {narrowest_patch} wide "
        f"with n_holes {holes[1]} on the narrowest crop); raise it or lower n_holes, "
        f"got hole_aspect_ratio={hole_aspect_ratio!r}.")
  num = 1 if mode == "batch" else batch_size
  keys = jax.random.split(key, 7)
  lam = sample_lambda(keys[0], num, alpha, "elem")
  n = jax.random.randint(keys[1], (num,), holes[0], holes[1] + 1, dtype=jnp.int32)

  def uniform(k, bounds):
    return jax.random.uniform(k, (num,), jnp.float32, bounds[0], bounds[1])

  masks = grid_masks(lam, n, uniform(keys[2], hole_ar), uniform(keys[3], area),
                     uniform(keys[4], aspect), jax.random.uniform(keys[5], (num,)),
                     jax.random.uniform(keys[6], (num,)), height, width)
  return jnp.broadcast_to(masks, (batch_size, height, width))


def _ranges(n_holes, hole_aspect_ratio, cut_area_ratio, cut_aspect_ratio):
  """The four GridMix ranges as checked pairs ``(lo, hi)``."""
  return (_range(n_holes, "n_holes", integer=True),
          _range(hole_aspect_ratio, "hole_aspect_ratio"),
          _range(cut_area_ratio, "cut_area_ratio", upper=1.0),
          _range(cut_aspect_ratio, "cut_aspect_ratio"))


def sample_gridmix(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int],
    *,
    alpha: float = 1.0,
    n_holes=PAPER_N_HOLES,
    hole_aspect_ratio=PAPER_HOLE_ASPECT_RATIO,
    cut_area_ratio=PAPER_CUT_AREA_RATIO,
    cut_aspect_ratio=PAPER_CUT_ASPECT_RATIO,
    mode: str = "batch",
    pairing: str = "permute",
) -> MixParams:
  """Draws a GridMix: masks (:func:`sample_gridmix_masks`), exact weights and partners.

  The key is split into ``(key_mask, key_perm)``: masks from the first, partners
  (:func:`~mixjax.sample_partners`) from the second.

  Returns:
    :class:`~mixjax.MixParams` with a bool ``mask`` (the holes, pasted from the
    partner) and ``label_weight = 1 − |holes|/(H·W)`` (:func:`~mixjax.mask_params`).
  """
  _validation.check_pairing(pairing)
  height, width = image_size
  key_mask, key_perm = jax.random.split(key)
  masks = sample_gridmix_masks(key_mask, batch_size, height, width, alpha=alpha,
                               n_holes=n_holes, hole_aspect_ratio=hole_aspect_ratio,
                               cut_area_ratio=cut_area_ratio,
                               cut_aspect_ratio=cut_aspect_ratio, mode=mode)
  return mask_params(sample_partners(key_perm, batch_size, pairing), masks, pairing=pairing)


@_validation.jit_with_hyperparameters(
    ("alpha", "n_holes", "hole_aspect_ratio", "cut_area_ratio", "cut_aspect_ratio",
     "num_classes", "mode", "pairing", "label_smoothing", "layout"), traceable=("alpha",))
def gridmix(
    key: chex.PRNGKey,
    images: chex.Array,
    labels: chex.Array,
    *,
    alpha: float = 1.0,
    n_holes=PAPER_N_HOLES,
    hole_aspect_ratio=PAPER_HOLE_ASPECT_RATIO,
    cut_area_ratio=PAPER_CUT_AREA_RATIO,
    cut_aspect_ratio=PAPER_CUT_ASPECT_RATIO,
    num_classes: int | None = None,
    mode: str = "batch",
    pairing: str = "permute",
    label_smoothing: float = 0.0,
    layout: str | None = None,
) -> tuple[chex.Array, chex.Array]:
  """Mixes a batch with GridMix (Baek et al., 2021).

  A grid of ``n`` holes across a random crop (hole side ratio ``√(1 − λ)`` of its
  patch, ``λ ~ Beta(α, α)``) is pasted from each example's partner (mask ``M``):

    ``x̃_i = M_i ⊙ x_p + (1 − M_i) ⊙ x_i``,  ``ỹ_i = w_i·y_i + (1 − w_i)·y_p``,
    ``w_i = 1 − |M_i|/(H·W)`` (exact).

  Pixels are copied, so the dtype is kept (uint8 stays uint8). The defaults are
  OpenMixup's CIFAR ones (see the module docstring); they need ``H·W ≥ 576``
  (e.g. 24×24; 23×23 is refused): the narrowest crop must be at least ``2·n_hi``
  wide (``⌊√(⌊H·W·a_lo⌋/s_hi)⌋ ≥ 2·n_hi``, the reference's own check), 12 pixels
  for ``n_holes=(2, 6)``, ``cut_area_ratio=(0.5, 1)``, ``cut_aspect_ratio=(0.5, 2)``.
  On 8×8 images ``n_holes`` must be at most 2.

  Args:
    key: a PRNG key.
    images: ``[B, H, W, C]`` or ``[B, H, W]``, float or integer.
    labels: int class ids ``[B]`` (with ``num_classes``) or rows ``[B, K]``.
    alpha: ``α > 0`` of ``Beta(α, α)``; 1 (OpenMixup). May be traced (it then draws
      what the same value known at trace time draws).
    n_holes: holes across the crop, an int or a pair ``(lo, hi)``; ``(2, 6)``.
    hole_aspect_ratio: patch height / width, a number or a range; 1.
    cut_area_ratio: crop area / image area, in ``(0, 1]``; ``(0.5, 1)``.
    cut_aspect_ratio: crop height / width; ``(0.5, 2)``.
    num_classes: ``K``.
    mode: ``"batch"`` (one grid, the reference) or ``"elem"`` (one per example).
    pairing: ``"permute"`` (default), ``"flip"`` or ``"roll"``.
    label_smoothing: ``ε`` applied to the labels before mixing.
    layout: as in :func:`~mixjax.cutmix`.

  Returns:
    ``(x̃, ỹ)``: mixed images (input dtype) and float32 soft labels ``[B, K]``.

  Raises:
    ValueError: at trace time for ``α ≤ 0``, malformed ranges, ranges the image
      is too small for (see :func:`sample_gridmix_masks`), an unknown
      ``mode``/``pairing``/``layout``, images without two spatial axes or that look
      channels-first, a batch mismatch or labels that do not fit ``num_classes``.
  """
  batch = _validation.check_batch(images)
  height, width = _validation.check_spatial(images, layout)
  params = sample_gridmix(key, batch, (height, width), alpha=alpha, n_holes=n_holes,
                          hole_aspect_ratio=hole_aspect_ratio, cut_area_ratio=cut_area_ratio,
                          cut_aspect_ratio=cut_aspect_ratio, mode=mode, pairing=pairing)
  return apply_mix(params, images, labels, num_classes, label_smoothing, layout=layout)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GridMix(Mixer):
  """GridMix as a :class:`~mixjax.Mixer` (registered as ``"gridmix"``).

  Draws :func:`sample_gridmix`. The ranges are checked (and a number ``v`` kept
  as the pair ``(v, v)``, which draws the same) when the mixer is built; whether
  they fit the image is checked when it draws.

  Attributes:
    alpha: ``α > 0`` of ``Beta(α, α)``; 1. May be traced.
    n_holes: ``(2, 6)``.
    hole_aspect_ratio: ``(1, 1)``.
    cut_area_ratio: ``(0.5, 1)``.
    cut_aspect_ratio: ``(0.5, 2)``.
  """
  alpha: float = 1.0
  n_holes: tuple[int, int] = PAPER_N_HOLES
  hole_aspect_ratio: tuple[float, float] = (PAPER_HOLE_ASPECT_RATIO,) * 2
  cut_area_ratio: tuple[float, float] = PAPER_CUT_AREA_RATIO
  cut_aspect_ratio: tuple[float, float] = PAPER_CUT_ASPECT_RATIO

  spatial = True
  traceable = ("alpha",)

  def validate(self):
    _validation.check_alpha(self.alpha)
    checked = _ranges(self.n_holes, self.hole_aspect_ratio, self.cut_area_ratio,
                      self.cut_aspect_ratio)
    for name, value in zip(("n_holes", "hole_aspect_ratio", "cut_area_ratio",
                            "cut_aspect_ratio"), checked, strict=True):
      object.__setattr__(self, name, value)

  def draw(self, key, batch_size, image_shape):
    return sample_gridmix(key, batch_size, spatial_size(image_shape), alpha=self.alpha,
                          n_holes=self.n_holes, hole_aspect_ratio=self.hole_aspect_ratio,
                          cut_area_ratio=self.cut_area_ratio,
                          cut_aspect_ratio=self.cut_aspect_ratio, mode=self.mode,
                          pairing=self.pairing)
