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

import chex
import flax.struct
import jax.numpy as jnp

from mixjax import _validation
from mixjax import boxes as boxes_lib
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


def mix_images(params: MixParams, images: chex.Array) -> chex.Array:
  """Applies the pixel part of a mix.

  Args:
    params: a drawn mix for batch ``B``.
    images: ``[B, ...]``; with boxes, ``[B, H, W, C]`` or ``[B, H, W]``.

  Returns:
    The mixed batch, same shape, dtype :func:`mixed_dtype`. Blends are computed
    in at least float32 and cast back (bfloat16 in, bfloat16 out).
  """
  batch = _validation.check_batch(images)
  _check_params(params, batch)
  if params.boxes is not None:
    height, width = _validation.check_spatial(images)
  out_dtype = mixed_dtype(params, images.dtype)
  partners = jnp.take(images, params.perm, axis=0)
  out = images
  if params.lam is not None:
    compute = jnp.promote_types(out_dtype, jnp.float32)
    lam = params.lam.astype(compute).reshape((batch,) + (1,) * (images.ndim - 1))
    out = (lam * images.astype(compute) +
           (1 - lam) * partners.astype(compute)).astype(out_dtype)
    # λ·x + (1 − λ)·x can be off by an ulp: an example mixed with itself is exact.
    out = jnp.where(_self_paired(params, images.ndim), images.astype(out_dtype), out)
  if params.boxes is not None:
    mask = boxes_lib.box_mask(params.boxes, height, width)
    mask = mask.reshape(mask.shape + (1,) * (images.ndim - 3))
    out = jnp.where(mask, partners.astype(out_dtype), out)
  return out


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
) -> tuple[chex.Array, chex.Array]:
  """Applies a drawn mix to a batch: ``(mixed images, soft labels)``."""
  batch = _validation.check_batch(images)
  if labels.shape[0] != batch:
    raise ValueError(
        f"images and labels must have the same batch size, got images "
        f"{tuple(images.shape)} and labels {tuple(labels.shape)}.")
  return (mix_images(params, images),
          mix_labels(params, labels, num_classes, label_smoothing))


def identity_params(batch_size: int) -> MixParams:
  """A mix that changes nothing: every example is its own partner, ``w = 1``."""
  return MixParams(perm=jnp.arange(batch_size, dtype=jnp.int32),
                   label_weight=jnp.ones((batch_size,), jnp.float32))


