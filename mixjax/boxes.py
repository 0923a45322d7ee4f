"""CutMix boxes: sampling, rasterising and measuring them.

A box is four int32 pixel coordinates ``(top, left, bottom, right)`` with
exclusive ends, so it covers rows ``top ≤ h < bottom`` and columns
``left ≤ w < right``; its area is ``(bottom − top)·(right − left)``. An empty box
(zero area) pastes nothing.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from mixjax import _validation


def sample_boxes(
    key: chex.PRNGKey,
    lam: chex.Array,
    height: int,
    width: int,
    box_rule: str = "reference",
) -> chex.Array:
  """Draws boxes of area ratio about ``1 − λ`` with uniform centres (CutMix).

  With ``cut_h = ⌊H·√(1 − λ)⌋``, ``cut_w = ⌊W·√(1 − λ)⌋`` and a centre
  ``c_y ~ U{0, …, H − 1}``, ``c_x ~ U{0, …, W − 1}``, ``box_rule`` chooses the box:

  * ``"reference"`` (default): rows ``[c_y − ⌊cut_h/2⌋, c_y + ⌊cut_h/2⌋)`` and
    columns ``[c_x − ⌊cut_w/2⌋, c_x + ⌊cut_w/2⌋)``, each clipped to the image:
    the rule of CutMix-PyTorch's ``rand_bbox`` (``train.py`` lines 279–295 at
    commit 2d8eb68, whose ``W``/``cx``/``bbx`` index the rows of its NCHW batch)
    and of timm's ``rand_bbox`` (``timm/data/mixup.py`` lines 30–51), so an
    unclipped side is ``2·⌊cut/2⌋``, one pixel short of ``cut`` when it is odd.
  * ``"full_side"``: rows ``[c_y − ⌊cut_h/2⌋, c_y − ⌊cut_h/2⌋ + cut_h)`` (columns
    alike), clipped: the unclipped side is exactly ``cut``. This was mixjax
    0.1.0's rule; with the same key it replays those draws bit for bit (the
    centres are drawn identically under both rules).

  The clipped area can be smaller than ``(1 − λ)·H·W``: use :func:`box_area` for
  the exact fraction (timm's ``correct_lam``).

  A segment: when exactly one of ``H``, ``W`` is 1 (a sequence ``[B, T, 1, D]``, see
  :func:`mixjax.axes.to_spatial`) the box is a 1-D cut of ratio ``1 − λ`` (not
  ``√(1 − λ)``) along the other axis, by the same rule, spanning the unit axis.

  Args:
    key: a PRNG key.
    lam: float ``[N]`` weights in ``[0, 1]``.
    height: ``H``.
    width: ``W``.
    box_rule: ``"reference"`` or ``"full_side"``.

  Returns:
    int32 ``[N, 4]`` boxes.
  """
  _validation.check_box_rule(box_rule)
  chex.assert_rank(lam, 1)
  key_y, key_x = jax.random.split(key)
  n = lam.shape[0]
  segment = (height == 1) != (width == 1)
  ratio = jnp.clip(1.0 - lam.astype(jnp.float32), 0.0, 1.0)
  ratio = ratio if segment else jnp.sqrt(ratio)
  cut_h = jnp.floor(height * ratio).astype(jnp.int32)
  cut_w = jnp.floor(width * ratio).astype(jnp.int32)
  centre_y = jax.random.randint(key_y, (n,), 0, height, dtype=jnp.int32)
  centre_x = jax.random.randint(key_x, (n,), 0, width, dtype=jnp.int32)
  top = centre_y - cut_h // 2
  left = centre_x - cut_w // 2
  if box_rule == "reference":
    bottom, right = centre_y + cut_h // 2, centre_x + cut_w // 2
  else:
    bottom, right = top + cut_h, left + cut_w
  boxes = jnp.stack([
      jnp.clip(top, 0, height),
      jnp.clip(left, 0, width),
      jnp.clip(bottom, 0, height),
      jnp.clip(right, 0, width),
  ], axis=-1)
  return _span_unit_axis(boxes, height, width) if segment else boxes


def _span_unit_axis(boxes: chex.Array, height: int, width: int) -> chex.Array:
  """A segment's boxes with the unit axis (``H = 1`` or ``W = 1``) covered: ``[0, 1)``."""
  if height == 1:
    return boxes.at[:, 0].set(0).at[:, 2].set(1)
  return boxes.at[:, 1].set(0).at[:, 3].set(1)


def sample_boxes_minmax(
    key: chex.PRNGKey,
    num: int,
    height: int,
    width: int,
    minmax: tuple[float, float],
) -> chex.Array:
  """Draws boxes whose side ratios are uniform in ``minmax`` (timm's ``cutmix_minmax``).

  Height and width are drawn independently as integers in
  ``[⌊H·min⌋, ⌊H·max⌋]`` and ``[⌊W·min⌋, ⌊W·max⌋]``; the box is placed uniformly
  so that it lies wholly inside the image (no clipping). ``λ`` follows from the area.
  A segment (exactly one of ``H``, ``W`` is 1) spans the unit axis.

  Returns:
    int32 ``[num, 4]`` boxes.
  """
  key_h, key_w, key_y, key_x = jax.random.split(key, 4)
  lo, hi = minmax
  cut_h = jax.random.randint(
      key_h, (num,), int(height * lo), int(height * hi) + 1, dtype=jnp.int32)
  cut_w = jax.random.randint(
      key_w, (num,), int(width * lo), int(width * hi) + 1, dtype=jnp.int32)
  top = jax.random.randint(key_y, (num,), 0, height - cut_h + 1, dtype=jnp.int32)
  left = jax.random.randint(key_x, (num,), 0, width - cut_w + 1, dtype=jnp.int32)
  boxes = jnp.stack([top, left, top + cut_h, left + cut_w], axis=-1)
  if (height == 1) != (width == 1):
    boxes = _span_unit_axis(boxes, height, width)
  return boxes


def box_area(boxes: chex.Array) -> chex.Array:
  """Pixel area of each box, int32 ``[N]``."""
  return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_mask(boxes: chex.Array, height: int, width: int) -> chex.Array:
  """Rasterises boxes: bool ``[N, H, W]``, True inside each box."""
  chex.assert_shape(boxes, (None, 4))
  rows = jnp.arange(height, dtype=jnp.int32)[None, :, None]
  cols = jnp.arange(width, dtype=jnp.int32)[None, None, :]
  top, left, bottom, right = (boxes[:, i, None, None] for i in range(4))
  return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
