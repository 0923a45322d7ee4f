"""Random erasing (Zhong et al., 2020): overwrite a random box of each image with noise.

As timm's ``RandomErasing`` does it (``timm/data/random_erasing.py`` lines 26–110
at commit aa4b585; DeiT trains with ``--reprob 0.25 --remode pixel --recount 1``).
For each example, independently:

* with probability ``1 − p`` nothing is erased; otherwise
* up to 10 candidate boxes are drawn, candidate ``k`` with area
  ``s_k ~ U(s_l, s_h)·H·W`` and aspect ratio ``r_k = exp(u_k)``,
  ``u_k ~ U(log r_1, log r_2)`` (log-uniform), and sides
  ``h_k = round(√(s_k·r_k))``, ``w_k = round(√(s_k / r_k))`` (round half to even,
  Python's ``round``);
* the first candidate with ``h_k < H`` and ``w_k < W`` is taken (none: nothing is
  erased), placed at ``top ~ U{0, …, H − h}``, ``left ~ U{0, …, W − w}``, and

  ``x̃[i, j, c] = f[i, j, c]`` for ``top ≤ i < top + h``, ``left ≤ j < left + w``,
  ``x̃[i, j, c] = x[i, j, c]`` elsewhere,

  with the fill ``f ~ N(0, 1)`` per pixel and channel (``mode="pixel"``), one
  ``N(0, 1)`` value per channel for the whole box (``"rand"``) or ``0``
  (``"const"``).

The fill is meant for *normalised* images (``(x − μ_c)/σ_c``): timm erases after
``Normalize`` (``timm/data/transforms_factory.py`` lines 246–262, and after the
normalisation in its GPU prefetcher, ``timm/data/loader.py`` lines 141–143), so
``N(0, 1)`` noise has the statistics of the data and ``0`` is the mean colour. Apply
it to the output of :func:`mixjax.data.augment.normalize`, before any mixing (timm's
Mixup/CutMix run on the erased batch).

The 10 attempts are drawn at once (all 10 candidates, then the first accepted),
so the op compiles to fixed shapes; an accepted box can still be empty (a side
that rounds to 0 on a tiny image), as in timm, and then erases nothing.

This follows timm's code, not the paper where they differ. The paper (Zhong et
al., 2020, Sec. 3.1, Alg. 1) draws the aspect ratio uniformly in ``[r_1, 1/r_1]``
(timm: log-uniform), uses ``s_h = 0.4`` (timm: 1/3), draws the corner
``(x_e, y_e)`` uniformly over the whole image together with the size and keeps the
box only if ``x_e + W_e ≤ W`` and ``y_e + H_e ≤ H``, redrawing otherwise (timm:
accepts on the size alone, ``h < H`` and ``w < W`` strictly, then places the box
uniformly where it fits, at most 10 attempts; the paper's rule favours small boxes)
and fills with random values in ``[0, 255]`` of the raw image (timm: ``N(0, 1)`` of
the normalised one). The authors' code (zhunzhong07/Random-Erasing,
``transforms.py``) is closer to timm: size-only acceptance and uniform placement,
but a uniform aspect ratio, ``s_h = 0.4``, 100 attempts and the dataset mean as a
constant fill.

Not supported from timm: ``max_count``/``min_count`` > 1 (several boxes per image,
each of area divided by the count: here always one box), ``num_splits`` (timm
leaves the first ``B/num_splits`` rows, AugMix's clean split, un-erased: erase the
other rows yourself, e.g. ``x.at[k:].set(random_erasing(key, x[k:]))``), the empty
mode string ``""`` as ``"const"``, ``max_aspect=0`` meaning ``1/min_aspect`` (pass
``None``), and ``RandomErasingMasked``.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mixjax import _validation
from mixjax.boxes import box_mask

ERASE_MODES = ("pixel", "rand", "const")
ATTEMPTS = 10  # timm/data/random_erasing.py line 85.


class ErasingBoxes(NamedTuple):
  """Drawn erasing boxes, one per example (a pytree of int32/bool ``[B]`` arrays).

  The box of example ``b`` covers rows ``top ≤ i < top + height`` and columns
  ``left ≤ j < left + width``; it is erased only where ``erase`` is True. Examples
  not erased have ``top = left = height = width = 0``.
  """
  top: chex.Array
  left: chex.Array
  height: chex.Array
  width: chex.Array
  erase: chex.Array

  def corners(self) -> chex.Array:
    """int32 ``[B, 4]`` ``(top, left, bottom, right)`` boxes (see
    :mod:`mixjax.boxes`), empty where ``erase`` is False."""
    height = jnp.where(self.erase, self.height, 0)
    width = jnp.where(self.erase, self.width, 0)
    return jnp.stack([self.top, self.left, self.top + height, self.left + width],
                     axis=-1).astype(jnp.int32)


def _real(value, name: str) -> float:
  value = _validation.static_value(value)
  _validation.check_static(value, name)
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ValueError(f"{name} must be a number, got {value!r}.")
  return float(value)


def _check_positive_int(value, name: str) -> int:
  value = _validation.static_value(value)
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
    raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
  return int(value)


def _check_image_size(image_size) -> tuple[int, int]:
  image_size = _validation.static_value(image_size)
  if not isinstance(image_size, tuple) or len(image_size) != 2:
    raise ValueError(f"image_size must be a pair (H, W), got {image_size!r}.")
  return (_check_positive_int(image_size[0], "image_size[0] (H)"),
          _check_positive_int(image_size[1], "image_size[1] (W)"))


def _check_ranges(min_area, max_area, min_aspect, max_aspect
                  ) -> tuple[float, float, float, float]:
  """The checked ``(s_l, s_h, r_1, r_2)``, ``r_2 = 1/r_1`` when ``max_aspect`` is None."""
  min_area, max_area = _real(min_area, "min_area"), _real(max_area, "max_area")
  if not 0.0 < min_area <= max_area <= 1.0:
    raise ValueError(
        "min_area and max_area (fractions of the image area) must satisfy "
        f"0 < min_area <= max_area <= 1, got {min_area} and {max_area}.")
  min_aspect = _real(min_aspect, "min_aspect")
  if not min_aspect > 0.0:
    raise ValueError(f"min_aspect must be > 0, got {min_aspect}.")
  if max_aspect is None:
    max_aspect = 1.0 / min_aspect
  else:
    max_aspect = _real(max_aspect, "max_aspect")
    if not max_aspect >= min_aspect:
      raise ValueError(
          f"max_aspect must be >= min_aspect ({min_aspect}) or None (1/min_aspect), "
          f"got {max_aspect}.")
  return min_area, max_area, min_aspect, max_aspect


def _check_erase_mode(mode) -> str:
  if mode not in ERASE_MODES:
    raise ValueError(f"mode must be one of {ERASE_MODES}, got {mode!r}.")
  return mode


def _check_images(images: chex.Array, layout: str | None) -> tuple[int, int, int]:
  """``(B, H, W)`` of a float NHWC or NHW batch; ``ValueError`` otherwise."""
  _validation.check_layout(layout)
  if not hasattr(images, "shape") or not hasattr(images, "dtype"):
    raise ValueError(f"images must be an array, got {type(images).__name__}.")
  if images.ndim not in (3, 4):
    raise ValueError(
        "random erasing needs a batch [B, H, W, C] or [B, H, W], got shape "
        f"{tuple(images.shape)}.")
  dtype = jnp.dtype(images.dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(
        "random erasing fills boxes with N(0, 1) values (or 0) meant for normalised "
        f"images, so images must have a floating dtype, got {dtype}: normalise them "
        "first (mixjax.data.augment.normalize), as timm erases after Normalize.")
  if (layout is None and images.ndim == 4 and images.shape[1] in (1, 3, 4)
      and images.shape[3] > 4):
    raise ValueError(
        f"random erasing reads images as [B, H, W, C], but shape {tuple(images.shape)} "
        f"looks channels-first [B, C, H, W] (axis 1 of size {images.shape[1]}, last "
        f"axis {images.shape[3]}). Transpose it to NHWC with "
        "jnp.transpose(x, (0, 2, 3, 1)), or pass layout='NHWC' if it really is "
        f"{images.shape[1]} rows of {images.shape[3]} channels.")
  if images.shape[0] < 1:
    raise ValueError("images must hold at least one example, got batch 0.")
  return images.shape[0], images.shape[1], images.shape[2]


def sample_erasing(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int],
    probability: float = 0.25,
    min_area: float = 0.02,
    max_area: float = 1 / 3,
    min_aspect: float = 0.3,
    max_aspect: float | None = None,
) -> ErasingBoxes:
  """Draws one erasing box per example, as timm's ``RandomErasing._erase`` does.

  Per example, from 21 uniforms ``u_0, …, u_20 ~ U[0, 1)``: ``erase = u_0 < p``;
  10 candidates ``s_k = (s_l + (s_h − s_l)·u_k)·H·W`` and
  ``r_k = exp(log r_1 + (log r_2 − log r_1)·u_{10+k})`` (Python's
  ``random.uniform(a, b) = a + (b − a)·u``), ``h_k = round(√(s_k·r_k))``,
  ``w_k = round(√(s_k/r_k))``; the first with ``h_k < H`` and ``w_k < W`` is kept
  (erasing only if there is one); ``top ~ U{0, …, H − h}``,
  ``left ~ U{0, …, W − w}`` (``jax.random.randint``), as in
  ``timm/data/random_erasing.py`` lines 79–92 at commit aa4b585. All 10 candidates
  are always drawn, so the shapes are fixed; taking the first that fits draws what
  timm's loop draws.

  Differences from timm, none of which changes the distribution beyond float
  rounding: the draws come from JAX keys, not Python's ``random``; the sides are
  computed in float32 (timm: float64), so a side at ``x.5`` within float32
  rounding of the boundary may round the other way; ``erase`` is ``u < p`` (timm:
  ``u ≤ p``, different only when ``u = p`` exactly), so ``p = 0`` never erases.

  Args:
    key: a PRNG key.
    batch_size: ``B`` (the global batch when the rows are split over devices: see
      :func:`apply_erasing`'s ``axis_name``).
    image_size: ``(H, W)``.
    probability: ``p ∈ [0, 1]``, the chance of erasing each example (timm's
      default is 0.5; DeiT's ``--reprob`` is 0.25, the default here).
    min_area: ``s_l``, the smallest box area as a fraction of ``H·W``.
    max_area: ``s_h``, the largest (``0 < s_l ≤ s_h ≤ 1``).
    min_aspect: ``r_1 > 0``, the smallest aspect ratio ``h/w``.
    max_aspect: ``r_2 ≥ r_1``; None (default): ``1/r_1``.

  Returns:
    :class:`ErasingBoxes`: int32 ``top``, ``left``, ``height``, ``width`` and bool
    ``erase``, each ``[B]``.

  Raises:
    ValueError: at trace time for a bad ``batch_size``/``image_size``, ``p``
      outside ``[0, 1]``, areas or aspect ratios out of range, or a traced
      hyper-parameter.
  """
  batch_size = _check_positive_int(batch_size, "batch_size")
  height, width = _check_image_size(image_size)
  _validation.check_probability(_validation.static_value(probability), "probability")
  probability = float(_validation.static_value(probability))
  min_area, max_area, min_aspect, max_aspect = _check_ranges(
      min_area, max_area, min_aspect, max_aspect)
  key_uniform, key_place = jax.random.split(key)
  # One uniform draw for the gates, the 10 areas and the 10 aspects of every example
  # (drawn flat: XLA:CPU compiles the generator over one axis faster).
  u = jax.random.uniform(key_uniform, (batch_size * (1 + 2 * ATTEMPTS),), jnp.float32)
  u = u.reshape(batch_size, 1 + 2 * ATTEMPTS)
  area = (min_area + (max_area - min_area) * u[:, 1:1 + ATTEMPTS]) * float(height * width)
  log_min, log_max = float(np.log(min_aspect)), float(np.log(max_aspect))
  aspect = jnp.exp(log_min + (log_max - log_min) * u[:, 1 + ATTEMPTS:])
  cand_h = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
  cand_w = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
  accepted = (cand_w < width) & (cand_h < height)
  first = jnp.argmax(accepted, axis=1)  # The first accepted attempt (0 if none).
  erase = (u[:, 0] < probability) & accepted.any(axis=1)
  rows = jnp.arange(batch_size)
  box_h = jnp.where(erase, cand_h[rows, first], 0)
  box_w = jnp.where(erase, cand_w[rows, first], 0)
  # top ~ U{0, …, H − h} and left ~ U{0, …, W − w}, in one draw.
  span = jnp.stack([height - box_h, width - box_w], axis=-1).reshape(-1) + 1
  corner = jax.random.randint(key_place, (2 * batch_size,), 0, span, jnp.int32)
  corner = corner.reshape(batch_size, 2)
  top = jnp.where(erase, corner[:, 0], 0)
  left = jnp.where(erase, corner[:, 1], 0)
  return ErasingBoxes(top=top, left=left, height=box_h, width=box_w, erase=erase)


def apply_erasing(
    key: chex.PRNGKey,
    images: chex.Array,
    boxes: ErasingBoxes,
    mode: str = "pixel",
    *,
    axis_name: str | None = None,
    layout: str | None = None,
) -> chex.Array:
  """Erases drawn boxes: fills them with ``N(0, 1)`` noise or zeros.

  ``x̃ = where(M, f, x)`` with ``M`` the boxes (where ``erase``) and the fill ``f``
  drawn from ``key`` in float32 and cast to the image dtype (timm draws in the
  image dtype, ``timm/data/random_erasing.py`` lines 14–23); the fill of global
  example ``n`` comes from ``fold_in(key, n)``, so it does not depend on the batch
  size or on how the batch is split over devices. Pixels outside the boxes are
  returned bit for bit; ``∂x̃/∂x`` is 1 outside the boxes and 0 inside.

  With ``axis_name`` (inside ``shard_map`` or ``pmap`` with the global batch split
  over that axis, device ``d`` holding global examples ``d·b … (d + 1)·b − 1``),
  ``boxes`` are drawn for the *global* batch from the same key on every device (as
  the trainer draws crops and mixes) and each device erases its rows: the result
  is the rows of the single-device result on the global batch.

  Args:
    key: a PRNG key for the fill (unused with ``mode="const"``).
    images: float ``[B, H, W, C]`` or ``[B, H, W]`` (float32, bfloat16, float16,
      ...), already normalised.
    boxes: :class:`ErasingBoxes` for ``B`` examples (``B·n`` with ``axis_name`` on
      ``n`` devices), e.g. from :func:`sample_erasing` or made by hand.
    mode: ``"pixel"`` (per-pixel, per-channel ``N(0, 1)``; DeiT's), ``"rand"``
      (one ``N(0, 1)`` colour per box: a value per channel) or ``"const"`` (0).
    axis_name: the mapped axis the global batch is split over, or None.
    layout: None (NHWC/NHW, refusing a batch that looks channels-first) or
      ``"NHWC"`` (trusted).

  Returns:
    The erased batch, same shape and dtype.

  Raises:
    ValueError: at trace time for non-float images (integer pixels: normalise
      first), a rank other than 3 or 4, channels-first-looking images, an unknown
      ``mode``/``layout``, or boxes for another batch size.
  """
  mode = _check_erase_mode(mode)
  batch, height, width = _check_images(images, layout)
  fields = tuple(np.shape(v) for v in boxes)
  total = batch * (jax.lax.axis_size(axis_name) if axis_name is not None else 1)
  if any(shape != (total,) for shape in fields):
    where = f" ({batch} on each device of {axis_name!r})" if axis_name is not None else ""
    raise ValueError(
        f"boxes must hold one box per example, shape ({total},){where}, got field "
        f"shapes {dict(zip(ErasingBoxes._fields, fields, strict=True))}.")
  start = 0
  if axis_name is not None:
    start = jax.lax.axis_index(axis_name) * batch
    boxes = ErasingBoxes(*(jax.lax.dynamic_slice_in_dim(v, start, batch) for v in boxes))
  mask = box_mask(boxes.corners(), height, width)
  mask = mask.reshape(mask.shape + (1,) * (images.ndim - 3))
  if mode == "const":
    fill = jnp.zeros((), images.dtype)
  else:
    shape = images.shape[1:] if mode == "pixel" else (1, 1) + images.shape[3:]
    index = start + jnp.arange(batch, dtype=jnp.int32)
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, index)
    # Drawn flat and reshaped (the same values in row-major order): XLA:CPU compiles
    # the generator over one axis several times faster than over three.
    size = int(np.prod(shape))
    fill = jax.vmap(lambda k: jax.random.normal(k, (size,), jnp.float32))(keys)
    fill = fill.reshape((batch,) + shape).astype(images.dtype)
  return jnp.where(mask, fill, images)


@_validation.jit_with_hyperparameters(
    ("probability", "mode", "min_area", "max_area", "min_aspect", "max_aspect",
     "axis_name", "layout"))
def _random_erasing(key, images, *, probability, mode, min_area, max_area, min_aspect,
                    max_aspect, axis_name, layout):
  mode = _check_erase_mode(mode)
  batch, height, width = _check_images(images, layout)
  total = batch * (jax.lax.axis_size(axis_name) if axis_name is not None else 1)
  key_box, key_fill = jax.random.split(key)
  boxes = sample_erasing(key_box, total, (height, width), probability, min_area,
                         max_area, min_aspect, max_aspect)
  return apply_erasing(key_fill, images, boxes, mode, axis_name=axis_name, layout=layout)


def random_erasing(
    key: chex.PRNGKey,
    images: chex.Array,
    probability: float = 0.25,
    mode: str = "pixel",
    *,
    min_area: float = 0.02,
    max_area: float = 1 / 3,
    min_aspect: float = 0.3,
    max_aspect: float | None = None,
    axis_name: str | None = None,
    layout: str | None = None,
) -> chex.Array:
  """Random erasing of a normalised batch: :func:`sample_erasing` then :func:`apply_erasing`.

  Each example, with probability ``p``, gets one box of area ``U(s_l, s_h)·H·W``
  and log-uniform aspect ratio in ``[r_1, r_2]`` overwritten with ``N(0, 1)`` noise
  (``"pixel"``), a random colour (``"rand"``) or zeros (``"const"``), exactly as
  timm's ``RandomErasing(probability, mode=mode)`` with ``max_count=1`` (see the
  module docstring). DeiT: ``random_erasing(key, x, 0.25, "pixel")`` on the
  normalised batch, before Mixup/CutMix. It is exactly
  ``apply_erasing(key_fill, images, sample_erasing(key_box, B, (H, W), ...), mode)``
  with ``key_box, key_fill = jax.random.split(key)``, so any call can be replayed
  and its boxes inspected.

  Args:
    key: a PRNG key; the same key gives the same output. Under ``shard_map`` pass
      the same key on every device together with ``axis_name``.
    images: float ``[B, H, W, C]`` or ``[B, H, W]``, already normalised.
    probability: ``p ∈ [0, 1]`` (static).
    mode: ``"pixel"``, ``"rand"`` or ``"const"`` (static).
    min_area: ``s_l`` (static).
    max_area: ``s_h`` (static).
    min_aspect: ``r_1`` (static).
    max_aspect: ``r_2``, None for ``1/r_1`` (static).
    axis_name: the mapped axis the global batch is split over (static): the boxes
      are drawn for the global batch and each device erases its rows, so the
      result does not depend on the number of devices.
    layout: None or ``"NHWC"`` (see :func:`apply_erasing`).

  Returns:
    The erased batch, same shape and dtype.

  Raises:
    ValueError: at trace time for the errors of :func:`sample_erasing` and
      :func:`apply_erasing`, or a traced hyper-parameter.
  """
  # Every hyper-parameter goes by keyword, so each is brought to a static value
  # (and a traced one refused by name) however it was passed.
  return _random_erasing(key, images, probability=probability, mode=mode,
                         min_area=min_area, max_area=max_area, min_aspect=min_aspect,
                         max_aspect=max_aspect, axis_name=axis_name, layout=layout)
