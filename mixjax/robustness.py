"""Perturbed test images for measuring robustness: occlusion and FGSM.

* **Occlusion** (Yun et al., 2019, "CutMix", §4.3): a rectangle covering a fraction
  ``f`` of each image is overwritten (with zeros, or with noise the caller draws). The
  rectangle has the image's aspect ratio, ``h = round(H·√f)`` by ``w = round(W·√f)``,
  centred or at a uniformly drawn position. :func:`occlusion_boxes` draws the boxes,
  :func:`occlude` applies them, so a draw can be replayed and inspected.
* **FGSM** (Goodfellow et al., 2015; the single-step attack of Verma et al., 2019,
  "Manifold Mixup", §5.3): ``x' = clip(x + ε·sign(∇ₓ L(x)), lo, hi)``, one step of size
  ``ε`` along the sign of the loss gradient w.r.t. the input.

All are pure ``jnp`` functions of explicit inputs (and a PRNG key), usable under ``jit``
and ``vmap``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp

POSITIONS = ("center", "random")


def occlusion_boxes(key: chex.PRNGKey | None, batch: int, height: int, width: int,
                    fraction: float, position: str = "center") -> chex.Array:
  """One occluding box per image: int32 ``[batch, 4]`` rows ``(top, left, h, w)``.

  Args:
    key: the draw's key; only read for ``position="random"`` (may be ``None`` for
      ``"center"``).
    batch: number of images ``B``.
    height: ``H``.
    width: ``W``.
    fraction: ``f ∈ [0, 1]``, the area fraction to cover (static): the box is
      ``round(H·√f) × round(W·√f)``.
    position: ``"center"`` (``top = (H − h) // 2``, ``left = (W − w) // 2``) or
      ``"random"`` (``top ~ U{0..H − h}``, ``left ~ U{0..W − w}`` per image).

  Raises:
    ValueError: ``fraction`` outside ``[0, 1]``, an unknown ``position``, a random
      position without a key, or sizes below 1.
  """
  for name, value in (("batch", batch), ("height", height), ("width", width)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
  if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
      or not 0 <= fraction <= 1:
    raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}.")
  if position not in POSITIONS:
    raise ValueError(f"position must be one of {POSITIONS}, got {position!r}.")
  h = min(height, round(height * math.sqrt(fraction)))
  w = min(width, round(width * math.sqrt(fraction)))
  if position == "center":
    top = jnp.full((batch,), (height - h) // 2, jnp.int32)
    left = jnp.full((batch,), (width - w) // 2, jnp.int32)
  else:
    if key is None:
      raise ValueError("position='random' needs a PRNG key.")
    k_top, k_left = jax.random.split(key)
    top = jax.random.randint(k_top, (batch,), 0, height - h + 1, jnp.int32)
    left = jax.random.randint(k_left, (batch,), 0, width - w + 1, jnp.int32)
  sizes = jnp.broadcast_to(jnp.array([h, w], jnp.int32), (batch, 2))
  return jnp.concatenate([top[:, None], left[:, None], sizes], axis=1)


def occlude(images: chex.Array, boxes: chex.Array, fill: chex.Numeric = 0) -> chex.Array:
  """``images`` with each box overwritten by ``fill``.

  Args:
    images: ``[B, H, W, C]`` (any dtype).
    boxes: int ``[B, 4]`` rows ``(top, left, h, w)`` (:func:`occlusion_boxes`).
    fill: a scalar, or an array broadcastable to ``images`` (e.g. noise), cast to
      the images' dtype.

  Returns:
    An array of the images' shape and dtype: ``fill`` inside each box, the image
    elsewhere.
  """
  images = jnp.asarray(images)
  boxes = jnp.asarray(boxes)
  if images.ndim != 4:
    raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}.")
  if boxes.shape != (images.shape[0], 4) or not jnp.issubdtype(boxes.dtype, jnp.integer):
    raise ValueError(f"boxes must be integer [B, 4] = [{images.shape[0]}, 4] (top, left, "
                     f"h, w), got {boxes.dtype} {boxes.shape}.")
  _, height, width, _ = images.shape
  rows = jnp.arange(height)[None, :, None]
  cols = jnp.arange(width)[None, None, :]
  top, left, h, w = (boxes[:, i, None, None] for i in range(4))
  inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
  fill = jnp.broadcast_to(jnp.asarray(fill).astype(images.dtype), images.shape)
  return jnp.where(inside[..., None], fill, images)


def fgsm(loss_fn: Callable[[chex.Array], chex.Array], images: chex.Array, eps: float,
         clip: tuple[float, float] | None = (0.0, 1.0)) -> chex.Array:
  """The fast gradient sign attack: ``clip(x + ε·sign(∇ₓ loss_fn(x)), *clip)``.

  Args:
    loss_fn: the scalar loss of a batch of images (close over the model's
      parameters and the true labels).
    images: the clean images, in the space the model reads (e.g. ``[0, 1]``).
    eps: the step ``ε ≥ 0``, in that space.
    clip: the valid range of the images; ``None`` leaves them unclipped.

  Returns:
    The adversarial images, in the images' dtype.
  """
  if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
    raise ValueError(f"eps must be a number >= 0, got {eps!r}.")
  images = jnp.asarray(images)
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(f"fgsm needs floating images (a gradient w.r.t. them), got "
                     f"{images.dtype}.")
  grad = jax.grad(lambda x: jnp.asarray(loss_fn(x), jnp.float32))(images)
  adversarial = images + jnp.asarray(eps, images.dtype) * jnp.sign(grad).astype(images.dtype)
  if clip is not None:
    adversarial = jnp.clip(adversarial, *clip).astype(images.dtype)
  return adversarial
