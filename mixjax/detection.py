"""Detection boxes under a drawn mix: both examples' boxes, kept, clipped or dropped.

A mix of two images holds objects of both, so the mixed example's boxes are its own
``N`` boxes followed by its partner's ``N`` (``2N`` slots, padded, with a validity
mask: the shapes are static, so it stays jit-able). Each box is judged on the pixels
of its own image that the mixed image shows (the mix's per-pixel weight map, the
same one :func:`~mixjax.mix_images` applies):

* **visible fraction** ``v``: the fraction of the box's pixels that still show some
  of its image (weight > 0). A box is kept when ``v ≥ min_visible`` (default 0.5)
  and it was valid; otherwise its slot is invalid (and zero). Under a blend (Mixup,
  SmoothMix's soft mask) every pixel holds some of both images, so every box shows
  (``v = 1``): there ``weight`` says how much.
* **weight**: the mean weight of its image over the box (Mixup: ``λ`` for the
  example's boxes and ``1 − λ`` for the partner's, every box kept; CutMix: the
  visible fraction). A loss can weight each box by it, as Mixup for detection does
  (Zhang et al., 2019, "Bag of Freebies for Training Object Detection Neural
  Networks").
* **clipping**, for a pasted rectangle ``R`` (CutMix, ResizeMix, SaliencyMix, the
  policy's CutMix): the partner's boxes are cut to ``R`` (ResizeMix first maps them
  from the partner's rectangle into ``R``: ``y' = R_top + (y − S_top)·h_R/h_S``);
  an own box is trimmed to the bounding box of what ``R`` leaves of it when ``R``
  spans the box's full height (its columns are trimmed) or full width (its rows).
  Masks (FMix, GridMix, SmoothMix) do not clip: what they leave of a box is not a
  rectangle, so the box stays whole and its ``v`` and weight say how much shows.

An example paired with itself is unchanged by a paste in place or a mask (its own
boxes stay, no second copy); ResizeMix pastes a shrunken copy of it, whose boxes are
its partner slots. Boxes are ``(top, left, bottom, right)`` in pixels of the
``H × W`` image (TF's ``[ymin, xmin, ymax, xmax]``: multiply normalised boxes by
``(H, W, H, W)``), ends exclusive as :mod:`mixjax.boxes`. A box covers the pixels its
extent touches (``⌊top⌋ … ⌈bottom⌉ − 1``) when ``v`` and the weight are measured; a
box without pixels shows nothing and is dropped.
"""

from __future__ import annotations

import chex
import flax.struct
import jax.numpy as jnp

from mixjax.params import MixParams, _self_paired, _take_rows


@flax.struct.dataclass
class MixedBoxes:
  """The boxes of a mixed batch: each example's own ``N``, then its partner's ``N``.

  Attributes:
    boxes: float32 ``[B, 2N, 4]`` ``(top, left, bottom, right)`` in pixels (zero
      where not valid).
    valid: bool ``[B, 2N]``: a real box that stays visible enough.
    weight: float32 ``[B, 2N]``: the mean weight of the box's image over it.
    visible: float32 ``[B, 2N]``: the fraction of the box's pixels that show its image.
    classes: ``[B, 2N]`` class ids when given, else ``None``.
  """
  boxes: chex.Array
  valid: chex.Array
  weight: chex.Array
  visible: chex.Array
  classes: chex.Array | None = None


def _resized(params: MixParams) -> chex.Array:
  """bool ``[B]``: the example gets a resized partner pasted (ResizeMix's box)."""
  if params.boxes is None or params.source_boxes is None:
    return jnp.zeros((params.batch_size,), jnp.bool_)
  return _nonempty(params.boxes) & jnp.any(params.source_boxes != params.boxes, axis=1)


def _nonempty(rects: chex.Array) -> chex.Array:
  """bool ``[B]``: the rectangle ``[B, 4]`` holds pixels (the kernel pastes something)."""
  return (rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])


def partner_weight_map(params: MixParams, height: int, width: int) -> chex.Array:
  """float32 ``[B, H, W]``: the partner's weight in each mixed pixel (the kernel's).

  ``λ`` gives ``1 − λ`` everywhere, a box 1 inside it, a mask ``m`` over what is there
  ``m + (1 − m)·w``. An example paired with itself is all its own (0), except inside a
  box where a resized copy of it is pasted (ResizeMix), which counts as its partner.
  """
  batch = params.batch_size
  weight = jnp.zeros((batch, height, width), jnp.float32)
  inside = jnp.zeros((batch, height, width), jnp.bool_)
  if params.lam is not None:
    weight = weight + (1 - params.lam.astype(jnp.float32))[:, None, None]
  if params.boxes is not None:
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    top, left, bottom, right = (params.boxes[:, i, None, None] for i in range(4))
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    weight = jnp.where(inside, 1.0, weight)
  if params.mask is not None:
    if params.mask.shape != (batch, height, width):
      raise ValueError(f"mix_boxes needs a mask [B, H, W] = {(batch, height, width)}, got "
                       f"{tuple(params.mask.shape)}.")
    m = params.mask.astype(jnp.float32)
    weight = m + (1 - m) * weight
  copy = (inside & _resized(params)[:, None, None]).astype(jnp.float32)
  return jnp.where(_self_paired(params, 3), copy, weight)


def _box_means(maps: chex.Array, boxes: chex.Array) -> chex.Array:
  """Mean of ``maps [B, H, W]`` over each box's pixels ``[B, M]`` (0 for an empty box),
  from a summed-area table."""
  _, height, width = maps.shape
  table = jnp.pad(jnp.cumsum(jnp.cumsum(maps, axis=1), axis=2), ((0, 0), (1, 0), (1, 0)))
  top = jnp.clip(jnp.floor(boxes[..., 0]), 0, height).astype(jnp.int32)
  left = jnp.clip(jnp.floor(boxes[..., 1]), 0, width).astype(jnp.int32)
  bottom = jnp.clip(jnp.ceil(boxes[..., 2]), 0, height).astype(jnp.int32)
  right = jnp.clip(jnp.ceil(boxes[..., 3]), 0, width).astype(jnp.int32)
  bottom, right = jnp.maximum(bottom, top), jnp.maximum(right, left)
  at = lambda r, c: jnp.take_along_axis(
      table.reshape(table.shape[0], -1), r * (width + 1) + c, axis=1)
  total = at(bottom, right) - at(top, right) - at(bottom, left) + at(top, left)
  area = ((bottom - top) * (right - left)).astype(jnp.float32)
  return jnp.where(area > 0, total / jnp.maximum(area, 1), 0.0)


def _trim_own(boxes: chex.Array, paste: chex.Array) -> chex.Array:
  """Own boxes ``[B, N, 4]`` trimmed to the bounding box of what ``paste [B, 4]`` leaves."""
  top, left, bottom, right = (boxes[..., i] for i in range(4))
  pt, pl, pb, pr = (paste[:, None, i].astype(jnp.float32) for i in range(4))
  nonempty = (pb > pt) & (pr > pl)
  spans_rows = nonempty & (pt <= top) & (pb >= bottom)   # Columns [pl, pr) gone in every row.
  spans_cols = nonempty & (pl <= left) & (pr >= right)   # Rows [pt, pb) gone in every column.
  new_l = jnp.where(spans_rows & (pl <= left) & (pr > left), jnp.minimum(pr, right), left)
  new_r = jnp.where(spans_rows & (pr >= right) & (pl < right), jnp.maximum(pl, left), right)
  new_t = jnp.where(spans_cols & (pt <= top) & (pb > top), jnp.minimum(pb, bottom), top)
  new_b = jnp.where(spans_cols & (pb >= bottom) & (pt < bottom), jnp.maximum(pt, top), bottom)
  trimmed = jnp.stack([new_t, new_l, new_b, new_r], axis=-1)
  empty = (new_b <= new_t) | (new_r <= new_l)        # Covered whole: nothing left.
  return jnp.where(empty[..., None], 0.0, trimmed)


def _cut(boxes: chex.Array, rect: chex.Array) -> chex.Array:
  """Boxes ``[B, N, 4]`` cut to each example's rectangle ``rect [B, 4]`` (may be empty)."""
  rect = rect[:, None, :].astype(jnp.float32)
  return jnp.concatenate([jnp.maximum(boxes[..., :2], rect[..., :2]),
                          jnp.minimum(boxes[..., 2:], rect[..., 2:])], axis=-1)


def _area(boxes: chex.Array) -> chex.Array:
  """Float area of boxes ``[..., 4]``, 0 for an empty (or inverted) box."""
  return (jnp.maximum(boxes[..., 2] - boxes[..., 0], 0) *
          jnp.maximum(boxes[..., 3] - boxes[..., 1], 0))


def _paste_partner(boxes: chex.Array, paste: chex.Array, source: chex.Array) -> chex.Array:
  """Partner boxes ``[B, N, 4]`` cut to the ``source`` rectangle and mapped onto ``paste``."""
  cut = _cut(boxes, source)
  paste = paste[:, None, :].astype(jnp.float32)
  source = source[:, None, :].astype(jnp.float32)
  scale = ((paste[..., 2:] - paste[..., :2]) /
           jnp.maximum(source[..., 2:] - source[..., :2], 1.0))
  start = paste[..., :2] + (cut[..., :2] - source[..., :2]) * scale
  end = paste[..., :2] + (cut[..., 2:] - source[..., :2]) * scale
  return jnp.concatenate([start, jnp.maximum(end, start)], axis=-1)


def mix_boxes(
    params: MixParams,
    boxes: chex.Array,
    valid: chex.Array,
    image_size: tuple[int, int],
    classes: chex.Array | None = None,
    *,
    min_visible: float = 0.5,
) -> MixedBoxes:
  """The boxes of the batch :func:`~mixjax.mix_images` mixes with ``params``.

  Args:
    params: a drawn mix for ``B`` images of ``image_size`` (two-way: n-way Mixup's
      further partners are not supported).
    boxes: ``[B, N, 4]`` ``(top, left, bottom, right)`` in pixels, padded.
    valid: bool ``[B, N]``: which rows of ``boxes`` are real.
    image_size: ``(H, W)``.
    classes: optional ``[B, N]`` class ids, carried to the partner's slots.
    min_visible: keep a box whose visible fraction is at least this (in ``[0, 1]``;
      0 keeps every box that shows at all).

  Returns:
    :class:`MixedBoxes` with ``2N`` slots per example.

  Raises:
    ValueError: at trace time for shapes that do not match, n-way mixes or a
      ``min_visible`` outside ``[0, 1]``.
  """
  boxes = jnp.asarray(boxes, jnp.float32)
  valid = jnp.asarray(valid)
  batch = params.batch_size
  if boxes.ndim != 3 or boxes.shape[0] != batch or boxes.shape[2] != 4:
    raise ValueError(f"boxes must be [B, N, 4] with B = {batch}, got {tuple(boxes.shape)}.")
  if valid.shape != boxes.shape[:2] or valid.dtype != jnp.bool_:
    raise ValueError(f"valid must be bool [B, N] = {boxes.shape[:2]}, got {valid.dtype} "
                     f"{tuple(valid.shape)}.")
  if classes is not None and tuple(classes.shape) != boxes.shape[:2]:
    raise ValueError(f"classes must be [B, N] = {boxes.shape[:2]}, got "
                     f"{tuple(classes.shape)}.")
  if params.more_perms is not None:
    raise ValueError("mix_boxes takes two-way mixes; n-way Mixup (more_perms) is not "
                     "supported.")
  if isinstance(min_visible, bool) or not 0 <= float(min_visible) <= 1:
    raise ValueError(f"min_visible must be in [0, 1], got {min_visible!r}.")
  height, width = image_size
  partner = partner_weight_map(params, height, width)
  own_weight = 1 - partner
  partner_boxes = _take_rows(boxes, params.perm)
  # Paired with itself: unchanged, no second copy, unless a resized copy is pasted.
  unchanged = _self_paired(params, 2) & ~_resized(params)[:, None]
  partner_valid = _take_rows(valid, params.perm) & ~unchanged
  if params.boxes is not None:
    paste = params.boxes
    source = paste if params.source_boxes is None else params.source_boxes
    pasted = _nonempty(paste)
    own_out = jnp.where(unchanged[..., None], boxes, _trim_own(boxes, paste))
    moved = _paste_partner(partner_boxes, paste, source)
    partner_out = jnp.where(pasted[:, None, None], moved, partner_boxes)
    # The part of each partner box inside the partner's pasted rectangle, as a fraction.
    shown = jnp.where(pasted[:, None], _area(_cut(partner_boxes, source)) /
                      jnp.maximum(_area(partner_boxes), 1e-12), 1.0)
  else:
    own_out, partner_out, shown = boxes, partner_boxes, 1.0
  # Measured where each box now lies; a resized partner box shows `shown` of the object.
  own_visible = _box_means((own_weight > 0).astype(jnp.float32), boxes)
  own_mean = _box_means(own_weight, boxes)
  partner_visible = shown * _box_means((partner > 0).astype(jnp.float32), partner_out)
  partner_mean = shown * _box_means(partner, partner_out)
  if params.boxes is not None and params.source_boxes is None:
    # Pasted in place: the object's own extent is what counts (its cut part shows whole).
    partner_visible = jnp.where(pasted[:, None], shown, partner_visible)
  visible = jnp.concatenate([own_visible, partner_visible], axis=1)
  weight = jnp.concatenate([own_mean, partner_mean], axis=1)
  keep = jnp.concatenate([valid, partner_valid], axis=1) & (visible >= min_visible) & (
      visible > 0)
  out_classes = None
  if classes is not None:
    out_classes = jnp.concatenate([classes, _take_rows(classes, params.perm)], axis=1)
  out = jnp.concatenate([own_out, partner_out], axis=1)
  return MixedBoxes(boxes=jnp.where(keep[..., None], out, 0.0), valid=keep,
                    weight=jnp.where(keep, weight, 0.0), visible=visible,
                    classes=out_classes)
