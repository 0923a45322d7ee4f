"""Masks along chosen axes: time segments of sequences, time × frequency boxes of audio.

The box and mask methods work on an image view ``[B, H, W, C]``. :func:`to_spatial`
brings any batch ``[B, ...]`` to that view with the axes a mask should span in the
place of ``H`` and ``W``: two axes (a spectrogram's time × frequency, a box), or one
(a sequence's time axis, a segment: ``W = 1``); every other axis becomes ``C``, so the
mask is the same across it. :func:`from_spatial` undoes it. A mixer does both when
called with ``axes=`` (:meth:`mixjax.Mixer.__call__`)::

  # [B, T, D] token or audio-feature sequences: CutMix pastes a time segment.
  x, y = mx.CutMix(num_classes=K)(key, seqs, labels, axes=(1,))
  # [B, T, F] spectrograms: a time × frequency box (the image default, axes=(1, 2)).
  x, y = mx.CutMix(num_classes=K)(key, specs, labels)

  # Sampling apart from applying, e.g. to mix the targets of a sequence too:
  view = mx.to_spatial(seqs, (1,))                        # [B, T, 1, D]
  params = mx.FMix(spectrum="paper").sample(key, B, view.shape[1:])
  mixed = mx.from_spatial(mx.mix_images(params, view), seqs.shape, (1,))

On a segment view (one axis of size 1) CutMix cuts a ratio ``1 − λ`` of the axis
(:func:`mixjax.boxes.sample_boxes`), so the label weight is again the exact fraction
pasted; FMix draws 1-D low-frequency masks with ``spectrum="paper"`` (the reference
spectrum needs two axes of at least 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import chex
import jax.numpy as jnp


def check_axes(ndim: int, axes: Sequence[int]) -> tuple[int, ...]:
  """``axes`` as positive axis numbers of a rank-``ndim`` batch; ``ValueError`` otherwise."""
  if isinstance(axes, int) or not isinstance(axes, (tuple, list)):
    raise ValueError(f"axes must be a tuple of one or two axes, e.g. (1,) or (1, 2), got "
                     f"{axes!r}.")
  out = []
  for a in axes:
    if isinstance(a, bool) or not isinstance(a, int) or not -ndim <= a < ndim:
      raise ValueError(f"axes must be axes of a rank-{ndim} batch, got {tuple(axes)!r}.")
    out.append(a % ndim)
  if not 1 <= len(out) <= 2 or len(set(out)) != len(out) or 0 in out:
    raise ValueError(f"axes must name one or two distinct non-batch axes (not 0) of a "
                     f"rank-{ndim} batch, got {tuple(axes)!r}.")
  return tuple(out)


def _order(ndim: int, axes: tuple[int, ...]) -> tuple[int, ...]:
  return (0, *axes, *(a for a in range(1, ndim) if a not in axes))


def to_spatial(x: chex.Array, axes: Sequence[int]) -> chex.Array:
  """The image view ``[B, A₁, A₂, R]`` of ``x`` whose mask spans ``axes``.

  Args:
    x: ``[B, ...]``.
    axes: one or two non-batch axes of ``x`` (negative counts from the end): the
      mask's rows (``A₁``) and columns (``A₂``; 1 for a single axis, a segment).
      ``R`` is the product of the other axes (1 if none).

  Returns:
    ``x`` transposed and reshaped to ``[B, A₁, A₂, R]``.
  """
  x = jnp.asarray(x)
  axes = check_axes(x.ndim, axes)
  moved = jnp.transpose(x, _order(x.ndim, axes))
  rows = x.shape[axes[0]]
  cols = x.shape[axes[1]] if len(axes) == 2 else 1
  rest = math.prod(x.shape[a] for a in range(1, x.ndim) if a not in axes)
  return moved.reshape(x.shape[0], rows, cols, rest)


def from_spatial(view: chex.Array, shape: Sequence[int], axes: Sequence[int]) -> chex.Array:
  """Undoes :func:`to_spatial`: the view back to ``shape``, the shape of the original ``x``."""
  shape = tuple(shape)
  axes = check_axes(len(shape), axes)
  order = _order(len(shape), axes)
  moved = view.reshape(tuple(shape[a] for a in order))
  return jnp.transpose(moved, tuple(order.index(a) for a in range(len(shape))))
