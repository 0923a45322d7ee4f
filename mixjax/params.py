"""What a drawn mix is (``MixParams``) and how it is applied.

Every method in mixjax samples a :class:`MixParams` from a key and then applies
it with :func:`mix_images` / :func:`mix_labels`. Keeping the two apart means a
mix can be replayed, inspected and tested deterministically, and one kernel
serves Mixup, CutMix, the combined policy and Manifold Mixup.

For example ``i`` with partner ``p = perm[i]``, per-example pixel weight ``λ_i``,
box ``M_i`` and label weight ``w_i``:

  ``x̃_i = M_i ⊙ x_p + (1 − M_i) ⊙ (λ_i·x_i + (1 − λ_i)·x_p)``
  ``ỹ_i = w_i·y_i + (1 − w_i)·y_p``

Mixup has no box (``w = λ``); CutMix has no ``λ`` (pixels are copied, never
blended, ``w = 1 − |M|/(H·W)``); the combined policy has both.
"""

from __future__ import annotations

import math

import chex
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from mixjax import _validation
from mixjax.labels import soft_labels


@flax.struct.dataclass
class MixParams:
  """A drawn mix for a batch of ``B`` examples (a pytree of arrays).

  Attributes:
    perm: int32 ``[B]``, the partner of each example.
    label_weight: float32 ``[B]``, ``w_i``, the weight of the example's own label.
    lam: float32 ``[B]`` pixel weight ``λ_i`` of the example itself, or ``None``
      when the mix never blends pixels (pure CutMix keeps the input dtype).
    boxes: int32 ``[B, 4]`` ``(top, left, bottom, right)`` pasted from the
      partner, or ``None`` when the mix pastes nothing (Mixup, any rank).
  """
  perm: chex.Array
  label_weight: chex.Array
  lam: chex.Array | None = None
  boxes: chex.Array | None = None

  @property
  def batch_size(self) -> int:
    return self.perm.shape[0]


def mixed_dtype(params: MixParams, dtype) -> jnp.dtype:
  """The dtype :func:`mix_images` returns for inputs of ``dtype``.

  Floating inputs keep their dtype. Integer inputs (e.g. uint8) keep it when the
  mix only pastes (CutMix), and become float32 when pixels are blended (Mixup,
  the policy with Mixup enabled), since a blend is not an integer and rounding it
  would break the label weights; no value ever wraps around.
  """
  dtype = jnp.dtype(dtype)
  if params.lam is None or jnp.issubdtype(dtype, jnp.floating):
    return dtype
  return jnp.dtype(jnp.float32)


def _check_params(params: MixParams, batch_size: int) -> None:
  if params.perm.shape != (batch_size,):
    raise ValueError(
        f"MixParams were drawn for a batch of {params.perm.shape[0]}, but the "
        f"input has batch {batch_size}.")


def _self_paired(params: MixParams, ndim: int) -> chex.Array:
  """bool ``[B, 1, …]``: True where an example is its own partner."""
  batch = params.batch_size
  own = params.perm == jnp.arange(batch, dtype=params.perm.dtype)
  return own.reshape((batch,) + (1,) * (ndim - 1))


def _bits(x: chex.Array) -> chex.Array:
  """16-bit floats as their uint16 bit patterns; other dtypes unchanged.

  XLA's CPU backend computes 16-bit floats in float32, so a ``select`` or a
  gather of bfloat16 values costs a convert to float32 and a rounding back per
  element; on bit patterns they are plain 16-bit moves, with the same result.
  """
  if jnp.issubdtype(x.dtype, jnp.floating) and jnp.dtype(x.dtype).itemsize == 2:
    return jax.lax.bitcast_convert_type(x, jnp.uint16)
  return x


def _unbits(x: chex.Array, dtype) -> chex.Array:
  """Inverse of :func:`_bits` for values of ``dtype``."""
  dtype = jnp.dtype(dtype)
  if x.dtype != dtype:
    return jax.lax.bitcast_convert_type(x, dtype)
  return x


def _take_rows(bits: chex.Array, perm: chex.Array, dtype) -> chex.Array:
  """``jnp.take(view, perm, axis=0)`` (NaN fill out of range) on :func:`_bits`."""
  if bits.dtype == jnp.dtype(dtype):
    return jnp.take(bits, perm, axis=0)
  nan_bits = int(np.array(np.nan, dtype).view(np.uint16))
  return jnp.take(bits, perm, axis=0, fill_value=nan_bits)


def _widen(bits: chex.Array, dtype) -> chex.Array:
  """Values of ``dtype`` given as :func:`_bits`, as the float32 they equal.

  bfloat16 is the top half of a float32, so widening it is a 16-bit shift;
  XLA:CPU's own convert does not vectorise as well.
  """
  if jnp.dtype(dtype) == jnp.bfloat16:
    wide = jax.lax.convert_element_type(bits, jnp.uint32) << 16
    return jax.lax.bitcast_convert_type(wide, jnp.float32)
  return _unbits(bits, dtype).astype(jnp.promote_types(dtype, jnp.float32))


def _narrow(values: chex.Array, dtype) -> chex.Array:
  """float32 (or wider) ``values`` rounded to ``dtype``, as :func:`_bits`.

  For bfloat16 this is round-to-nearest-even on the bit pattern, NaNs becoming
  the canonical quiet NaN with their sign: the same bits as XLA:CPU's
  ``values.astype(jnp.bfloat16)`` (another backend may keep NaN payloads; the
  values are the same).
  """
  if jnp.dtype(dtype) == jnp.bfloat16 and values.dtype == jnp.float32:
    u = jax.lax.bitcast_convert_type(values, jnp.uint32)
    rounded = (u + (0x7FFF + ((u >> 16) & 1))) >> 16
    is_nan = (u & 0x7FFFFFFF) > 0x7F800000
    out = jnp.where(is_nan, ((u >> 16) & 0x8000) | 0x7FC0, rounded)
    return jax.lax.convert_element_type(out, jnp.uint16)
  return _bits(values.astype(dtype))


def _cast_bits(bits: chex.Array, dtype, out_dtype) -> chex.Array:
  """:func:`_bits` of ``dtype`` values cast to ``out_dtype``, as its bits."""
  if jnp.dtype(dtype) == jnp.dtype(out_dtype):
    return bits
  return _bits(_unbits(bits, dtype).astype(out_dtype))


def mix_images(
    params: MixParams, images: chex.Array, layout: str | None = None
) -> chex.Array:
  """Applies the pixel part of a mix.

  Args:
    params: a drawn mix for batch ``B``.
    images: ``[B, ...]``; with boxes, ``[B, H, W, C]`` or ``[B, H, W]``.
    layout: with boxes, ``None`` (default) refuses a rank-4 batch that looks
      channels-first ``[B, C, H, W]`` (axis 1 of size 1, 3 or 4 and a last axis
      larger than 4: transpose it with ``jnp.transpose(x, (0, 2, 3, 1))``);
      ``"NHWC"`` declares the batch NHWC and skips that check. Unused without boxes.

  Returns:
    The mixed batch, same shape, dtype :func:`mixed_dtype`. Blends are computed
    in at least float32 and cast back (bfloat16 in, bfloat16 out).
  """
  batch = _validation.check_batch(images)
  _validation.check_layout(layout)
  _check_params(params, batch)
  shape = images.shape
  out_dtype = mixed_dtype(params, images.dtype)
  # The mix runs on a view where every example is contiguous: ``[B, N]``, or
  # ``[B, H, W·C]`` with boxes (a box is then a run of columns in each of its
  # rows). XLA fuses it into one loop over the view whose contiguous inner axis
  # vectorises; over NHWC with C = 3 innermost, a CutMix loop does not.
  if params.boxes is not None:
    height, width = _validation.check_spatial(images, layout)
    view = images.reshape(batch, height, math.prod(shape[2:]))
  else:
    view = images.reshape(batch, math.prod(shape[1:]))
  # Everything is kept as bit patterns for 16-bit floats (see _bits).
  bits = _bits(view)
  partners = _take_rows(bits, params.perm, view.dtype)
  out = bits
  if params.lam is not None:
    wide = lambda b: _widen(b, view.dtype)
    lam = params.lam.astype(jnp.promote_types(out_dtype, jnp.float32))
    lam = lam.reshape((batch,) + (1,) * (view.ndim - 1))
    blend = _narrow(lam * wide(bits) + (1 - lam) * wide(partners), out_dtype)
    # λ·x + (1 − λ)·x can be off by an ulp: an example mixed with itself is exact.
    out = jnp.where(_self_paired(params, view.ndim),
                    _cast_bits(bits, view.dtype, out_dtype), blend)
  if params.boxes is not None:
    run = view.shape[2] // width if width else 1
    rows = jnp.arange(height, dtype=jnp.int32)[None, :, None]
    cols = jnp.arange(view.shape[2], dtype=jnp.int32)[None, None, :]
    top, left, bottom, right = (params.boxes[:, i, None, None] for i in range(4))
    # Rows top ≤ h < bottom, columns left ≤ w < right, i.e. the flat columns
    # left·C ≤ j < right·C: the same pixels as boxes.box_mask.
    mask = ((rows >= top) & (rows < bottom) &
            (cols >= left * run) & (cols < right * run))
    out = jnp.where(mask, _cast_bits(partners, view.dtype, out_dtype), out)
  return _unbits(out, out_dtype).reshape(shape)


def mix_labels(
    params: MixParams,
    labels: chex.Array,
    num_classes: int | None = None,
    label_smoothing: float = 0.0,
) -> chex.Array:
  """Applies the label part of a mix: float32 ``[B, K]`` rows summing to one.

  Args:
    params: a drawn mix for batch ``B``.
    labels: int ids ``[B]`` (needs ``num_classes``) or rows ``[B, K]``.
    num_classes: ``K``.
    label_smoothing: ``ε``, applied before mixing (``optax.smooth_labels``).
  """
  rows = soft_labels(labels, num_classes, label_smoothing,
                     batch_size=params.batch_size)
  weight = params.label_weight.astype(jnp.float32)[:, None]
  mixed = weight * rows + (1 - weight) * jnp.take(rows, params.perm, axis=0)
  return jnp.where(_self_paired(params, 2), rows, mixed)


def apply_mix(
    params: MixParams,
    images: chex.Array,
    labels: chex.Array,
    num_classes: int | None = None,
    label_smoothing: float = 0.0,
    layout: str | None = None,
) -> tuple[chex.Array, chex.Array]:
  """Applies a drawn mix to a batch: ``(mixed images, soft labels)``.

  ``layout`` is passed to :func:`mix_images` (``"NHWC"`` to paste boxes into a
  batch that looks channels-first but is not).
  """
  batch = _validation.check_batch(images)
  if labels.shape[0] != batch:
    raise ValueError(
        f"images and labels must have the same batch size, got images "
        f"{tuple(images.shape)} and labels {tuple(labels.shape)}.")
  return (mix_images(params, images, layout),
          mix_labels(params, labels, num_classes, label_smoothing))


def identity_params(batch_size: int) -> MixParams:
  """A mix that changes nothing: every example is its own partner, ``w = 1``."""
  return MixParams(perm=jnp.arange(batch_size, dtype=jnp.int32),
                   label_weight=jnp.ones((batch_size,), jnp.float32))


