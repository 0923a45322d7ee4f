"""Clips of video: one box or mask per frame, on request.

Every mixer mixes clips ``[B, T, H, W, C]`` (Scenic's NTHWC) as they are: its box or
mask is drawn once per clip and pasted into every frame (:func:`~mixjax.mix_images`),
and the labels are weighted by the exact pasted fraction, the same in every frame.
:func:`sample_per_frame` draws a box or mask method's mix for each frame instead
(frame ``t`` of clip ``i`` takes frame ``t`` of the partner clip), for a mask
``[B, T, H, W]`` whose exact mean over the clip gives the label weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp

from mixjax.boxes import box_mask
from mixjax.mixer import Mixer, mask_params, spatial_size
from mixjax.params import MixParams
from mixjax.sampling import sample_partners


def sample_per_frame(mixer: Mixer, key: chex.PRNGKey, batch_size: int,
                     clip_shape: Sequence[int], *,
                     images: chex.Array | None = None) -> MixParams:
  """Draws ``mixer``'s box or mask separately for every frame of every clip.

  The partners are drawn per clip (``mixer.pairing``); then the ``B·T`` frames are
  drawn as a batch of images (``mixer.sample`` with frame ``t`` of clip ``i``
  paired with frame ``t`` of clip ``perm[i]``, so SaliencyMix centres each frame's
  box on that partner frame's saliency), with ``mode="elem"`` for a box or mask per
  frame (``prob`` then gates each frame). The frames' boxes and masks become one
  mask ``[B, T, H, W]`` (bool when every part is: pixels copied) and the label
  weight is ``1 − mean(mask)`` over the whole clip (:func:`~mixjax.mask_params`).

  Args:
    mixer: a mixer that pastes (boxes and/or masks: CutMix, FMix, GridMix,
      SaliencyMix, SmoothMix, a :class:`~mixjax.Choice` of them) with
      ``mode="elem"``.
    key: a PRNG key.
    batch_size: ``B`` clips.
    clip_shape: ``(T, H, W, C)``, i.e. ``clips.shape[1:]``.
    images: the clips ``[B, T, H, W, C]``, for a mixer that draws from the
      pixels (``uses_images``).

  Returns:
    :class:`~mixjax.MixParams` with ``mask [B, T, H, W]``, for
    :func:`~mixjax.apply_mix` on the clips.

  Raises:
    ValueError: at trace time for a ``clip_shape`` that is not ``(T, H, W, C)``,
      ``mode="batch"`` (one box for every frame: mix the clips directly), or a
      mix that blends whole frames (Mixup's ``λ``) or resizes the partner
      (ResizeMix), which have no per-frame mask.
  """
  clip_shape = tuple(int(d) for d in clip_shape)
  if len(clip_shape) != 4:
    raise ValueError(f"clip_shape must be (T, H, W, C) = clips.shape[1:], got {clip_shape!r}.")
  if mixer.mode != "elem":
    raise ValueError(
        f"per-frame draws need a mixer with mode='elem' (one draw per frame); "
        f"{type(mixer).__name__} has mode={mixer.mode!r}, which draws one box for every "
        "frame: mix the clips with it directly for that.")
  frames = clip_shape[0]
  height, width = spatial_size(clip_shape)
  key_perm, key_frames = jax.random.split(key)
  perm = sample_partners(key_perm, batch_size, mixer.pairing)
  frame_partners = (perm[:, None] * frames + jnp.arange(frames, dtype=jnp.int32)
                    ).reshape(batch_size * frames, 1)
  if images is not None:
    if tuple(images.shape) != (batch_size, *clip_shape):
      raise ValueError(f"images must be [B, *clip_shape] = {(batch_size, *clip_shape)}, "
                       f"got {tuple(images.shape)}.")
    images = images.reshape(batch_size * frames, *clip_shape[1:])
  drawn = mixer.sample(key_frames, batch_size * frames, clip_shape[1:], images=images,
                       partners=frame_partners)
  if drawn.lam is not None or drawn.more_perms is not None:
    raise ValueError(
        f"{type(mixer).__name__} blends whole frames (λ), which has no per-frame mask; "
        "per-frame draws are for box and mask methods (mix clips with Mixup directly).")
  if drawn.source_boxes is not None:
    raise ValueError(
        f"{type(mixer).__name__} pastes a resized partner (source_boxes), which has no "
        "per-frame mask; mix the clips with it directly (one box per clip).")
  parts = []
  if drawn.boxes is not None:
    parts.append(box_mask(drawn.boxes, height, width))
  if drawn.mask is not None:
    parts.append(drawn.mask)
  if len(parts) == 2 and all(p.dtype == jnp.bool_ for p in parts):
    mask = parts[0] | parts[1]
  elif len(parts) == 2:   # The kernel pastes the box, then blends the mask over it.
    box, soft = (p.astype(jnp.float32) for p in parts)
    mask = 1 - (1 - box) * (1 - soft)
  elif parts:
    mask = parts[0]
  else:   # The identity (ERM) drew nothing to paste.
    mask = jnp.zeros((batch_size * frames, height, width), jnp.bool_)
  return mask_params(perm, mask.reshape(batch_size, frames, height, width),
                     pairing=mixer.pairing)
