"""Standard image augmentation on device: random crop with padding, flips.

Pure functions of a key and a whole batch, in the style of dm-pix: no Python
loop over examples. The crop and the flip are one gather, for example ``b`` with
crop offsets ``(o_b, q_b) ∈ [0, 2p]²`` and flip ``f_b``:

  ``x̃_b[i, j] = pad_p(x_b)[o_b + i, q_b + j]``            if not ``f_b``,
  ``x̃_b[i, j] = pad_p(x_b)[o_b + i, q_b + W − 1 − j]``    if ``f_b``,

where ``pad_p`` adds ``p`` zero rows/columns on each spatial side. So every
output is an ``H×W`` window of the padded image, or its mirror.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np


def _check_images(images: chex.Array) -> None:
  if not hasattr(images, "shape") or images.ndim not in (3, 4):
    raise ValueError(
        "images must be a batch [B, H, W, C] or [B, H, W], got shape "
        f"{getattr(images, 'shape', type(images).__name__)}.")


def _check_padding(padding) -> int:
  if (isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or
      padding < 0):
    raise ValueError(f"padding must be an integer >= 0, got {padding!r}.")
  return int(padding)


def sample_crop_flip(
    key: chex.PRNGKey,
    batch_size: int,
    padding: int = 4,
    flip: bool = True,
) -> tuple[chex.Array, chex.Array]:
  """Draws per-example crop offsets and flips.

  Args:
    key: a PRNG key.
    batch_size: ``B``.
    padding: ``p ≥ 0``; offsets are uniform on ``{0, …, 2p}``.
    flip: whether to draw flips (each with probability 1/2); else none.

  Returns:
    ``(offsets, flips)``: int32 ``[B, 2]`` ``(row, column)`` offsets into the
    padded image and bool ``[B]``.
  """
  padding = _check_padding(padding)
  key_crop, key_flip = jax.random.split(key)
  offsets = jax.random.randint(key_crop, (batch_size, 2), 0, 2 * padding + 1,
                               dtype=jnp.int32)
  if flip:
    flips = jax.random.bernoulli(key_flip, 0.5, (batch_size,))
  else:
    flips = jnp.zeros((batch_size,), jnp.bool_)
  return offsets, flips


def crop_flip(
    images: chex.Array,
    offsets: chex.Array,
    flips: chex.Array,
    padding: int,
) -> chex.Array:
  """Applies drawn crops and flips (see the module docstring for the formula).

  Args:
    images: ``[B, H, W, C]`` or ``[B, H, W]``, any dtype.
    offsets: int ``[B, 2]`` ``(row, column)`` offsets in ``[0, 2p]``.
    flips: bool ``[B]``; True mirrors the crop left–right.
    padding: ``p``, the zero padding on each spatial side.

  Returns:
    The augmented batch, same shape and dtype.
  """
  _check_images(images)
  padding = _check_padding(padding)
  batch, height, width = images.shape[:3]
  chex.assert_shape(offsets, (batch, 2))
  chex.assert_shape(flips, (batch,))
  pad_width = [(0, 0), (padding, padding), (padding, padding)]
  padded = jnp.pad(images, pad_width + [(0, 0)] * (images.ndim - 3))
  rows = offsets[:, :1] + jnp.arange(height)  # [B, H]
  columns = jnp.where(flips[:, None], width - 1 - jnp.arange(width),
                      jnp.arange(width))
  columns = offsets[:, 1:] + columns  # [B, W]
  return padded[jnp.arange(batch)[:, None, None], rows[:, :, None],
                columns[:, None, :]]


@functools.partial(jax.jit, static_argnames=("padding", "flip"))
def random_crop_flip(
    key: chex.PRNGKey,
    images: chex.Array,
    padding: int = 4,
    flip: bool = True,
) -> chex.Array:
  """Standard CIFAR augmentation: pad, random crop, random horizontal flip.

  Each image is zero-padded by ``p`` on every spatial side, an ``H×W`` window
  with offsets uniform on ``{0, …, 2p}²`` is cut out, and with probability 1/2
  mirrored left–right, independently per example. ``padding=0`` crops nothing;
  ``padding=0, flip=False`` returns the input.

  Args:
    key: a PRNG key; the same key gives the same output.
    images: ``[B, H, W, C]`` or ``[B, H, W]``, uint8 or float.
    padding: ``p ≥ 0`` (static).
    flip: whether to flip at random (static).

  Returns:
    The augmented batch, same shape and dtype (uint8 stays uint8).

  Raises:
    ValueError: at trace time for images that are not a 3-D/4-D batch or a
      negative or non-integer ``padding``.
  """
  _check_images(images)
  padding = _check_padding(padding)
  if padding == 0 and not flip:
    return images
  offsets, flips = sample_crop_flip(key, images.shape[0], padding, flip)
  return crop_flip(images, offsets, flips, padding)


def normalize(
    images: chex.Array,
    mean: Sequence[float] | chex.Array,
    std: Sequence[float] | chex.Array,
    dtype=jnp.float32,
) -> chex.Array:
  """Standardises per channel: ``(x − μ_c) / σ_c``, in the 0..255 scale.

  Computed in float32 and cast to ``dtype``. ``mean``/``std`` are the
  :class:`~mixjax.data.Dataset` statistics (one value per channel, or one for
  all channels).

  Args:
    images: ``[..., C]``, uint8 (0..255) or float in the same scale.
    mean: ``μ``, ``C`` values or one.
    std: ``σ > 0``, ``C`` values or one.
    dtype: the output dtype (float).

  Returns:
    Normalised images of ``dtype``, same shape.

  Raises:
    ValueError: ``mean``/``std`` of the wrong length, a non-positive ``std``
      known at trace time, or a non-floating ``dtype``.
  """
  if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
    raise ValueError(f"dtype must be a floating dtype, got {jnp.dtype(dtype)}.")
  channels = images.shape[-1] if images.ndim else 1
  for name, value in (("mean", mean), ("std", std)):
    shape = np.shape(value)
    if len(shape) > 1 or int(np.prod(shape)) not in (1, channels):
      raise ValueError(
          f"{name} must have one value per channel ({channels}) or a single "
          f"value, got shape {shape}.")
  # Checked on the given values: under jit, jnp.asarray(std) is a tracer.
  if not isinstance(std, jax.core.Tracer) and np.any(np.asarray(std) <= 0):
    raise ValueError(f"std must be > 0, got {np.asarray(std).tolist()}.")
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  x = jnp.asarray(images).astype(jnp.float32)
  return ((x - mean) / std).astype(dtype)
