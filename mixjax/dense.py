"""Dense targets: one drawn mix applied to per-pixel label maps (segmentation).

A drawn :class:`~mixjax.MixParams` says, pixel by pixel, how much of the partner an
example gets; :func:`mix_images` applies it to the pixels and :func:`mix_dense` to
label maps of the same size, so the map is mixed exactly where the image was:

* **integer maps** ``[B, H, W]`` (class ids, e.g. with an ignore id such as 255): a
  mix that only pastes (CutMix, ResizeMix, SaliencyMix, FMix, GridMix: boxes and
  bool masks) copies the partner's ids into exactly the pasted pixels and keeps the
  integer dtype (an ignore id stays one); a mix that blends (Mixup's ``λ``, a soft
  mask such as SmoothMix's, the policy when Mixup can be drawn) makes each pixel a
  soft label ``[B, H, W, K]``, so it needs ``num_classes``: the maps are one-hot
  encoded (an id outside ``[0, K)`` gives an all-zero row, a pixel without weight in
  a soft-target loss, as an ignore id should) and blended;
* **soft maps** ``[B, H, W, K]`` (float): blended or pasted like an image with ``K``
  channels.

Clips of video ``[B, T, H, W]`` / ``[B, T, H, W, K]`` take their mix in every frame
(or one mask per frame), as :func:`~mixjax.mix_images` does for ``[B, T, H, W, C]``.

Example::

  params = mx.CutMix().sample(key, batch, images.shape[1:])
  x = mx.mix_images(params, images)          # [B, H, W, 3]
  y = mx.mix_dense(params, seg_maps)         # int [B, H, W], pasted where x was
  z = mx.mix_dense(mx.Mixup().sample(key, batch), seg_maps, num_classes=21)
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from mixjax import _validation
from mixjax.params import MixParams, blends, mix_images


def mix_dense(
    params: MixParams,
    targets: chex.Array,
    num_classes: int | None = None,
    *,
    axis_name: str | None = None,
) -> chex.Array:
  """Applies a drawn mix to per-pixel targets, the same pixels as :func:`~mixjax.mix_images`.

  Args:
    params: the mix drawn for the images (:meth:`Mixer.sample`), for batch ``B``
      (the global batch with ``axis_name``).
    targets: integer ids ``[B, H, W]`` (clips ``[B, T, H, W]``) or float soft maps
      ``[B, H, W, K]`` (clips ``[B, T, H, W, K]``), at the images' ``H × W``.
    num_classes: ``K``: needed for integer maps under a mix that blends; with it
      integer maps always come back as float32 soft maps.
    axis_name: as for :func:`~mixjax.mix_images` (this device's rows of a mix drawn
      for the global batch).

  Returns:
    Integer maps of the input dtype for a mix that only pastes (without
    ``num_classes``), else float soft maps ``[..., K]`` (float32 from integer maps,
    the input dtype from float maps).

  Raises:
    ValueError: at trace time for integer maps under a blending mix without
      ``num_classes``, integer maps that are not ``[B, H, W]`` / ``[B, T, H, W]``,
      float maps without a class axis, or a mask of another ``H × W``.
  """
  targets = jnp.asarray(targets)
  _validation.check_batch(targets, min_rank=3)
  if num_classes is not None and (isinstance(num_classes, bool) or
                                  not isinstance(num_classes, int) or num_classes < 1):
    raise ValueError(f"num_classes must be a positive int, got {num_classes!r}.")
  if jnp.issubdtype(targets.dtype, jnp.integer):
    if targets.ndim not in (3, 4):
      raise ValueError(
          f"integer label maps must be [B, H, W] (clips [B, T, H, W]), got shape "
          f"{tuple(targets.shape)}.")
    if num_classes is None:
      if blends(params):
        raise ValueError(
            "this mix blends pixels (Mixup's λ or a soft mask), so a pixel's label is a "
            "mixture: pass num_classes to get soft maps [..., K] from integer label maps "
            f"{tuple(targets.shape)}.")
      if targets.ndim == 4:   # [B, T, H, W]: a channel axis makes it a clip.
        return mix_images(params, targets[..., None], "NTHWC", axis_name=axis_name)[..., 0]
      return mix_images(params, targets, axis_name=axis_name)
    targets = jax.nn.one_hot(targets, num_classes, dtype=jnp.float32)
  else:
    if targets.ndim not in (4, 5):
      raise ValueError(
          f"soft label maps must be float [B, H, W, K] (clips [B, T, H, W, K]), got "
          f"shape {tuple(targets.shape)}.")
    if num_classes is not None and targets.shape[-1] != num_classes:
      raise ValueError(f"soft label maps must have K = num_classes = {num_classes} "
                       f"classes, got shape {tuple(targets.shape)}.")
  layout = "NTHWC" if targets.ndim == 5 else "NHWC"
  return mix_images(params, targets, layout, axis_name=axis_name)
