"""Mixup (Zhang et al., 2018): convex combinations of examples and labels.

  ``λ ~ Beta(α, α)``, ``x̃ = λ·x + (1 − λ)·x[perm]``, ``ỹ = λ·y + (1 − λ)·y[perm]``.
"""

from __future__ import annotations

import functools

import chex
import jax

from mixjax import _validation
from mixjax.params import MixParams, apply_mix
from mixjax.sampling import sample_lambda, sample_partners


def sample_mixup(
    key: chex.PRNGKey,
    batch_size: int,
    *,
    alpha: float = 1.0,
    mode: str = "batch",
    pairing: str = "permute",
) -> MixParams:
  """Draws a Mixup: ``λ ~ Beta(α, α)`` (one, or one per example) and partners.

  Args:
    key: a PRNG key.
    batch_size: ``B``.
    alpha: ``α > 0``.
    mode: ``"batch"`` (one ``λ``, as in the paper) or ``"elem"`` (one per example).
    pairing: ``"permute"``, ``"flip"`` or ``"roll"`` (see :func:`sample_partners`).

  Returns:
    :class:`MixParams` with ``lam == label_weight`` and no boxes.
  """
  key_lam, key_perm = jax.random.split(key)
  lam = sample_lambda(key_lam, batch_size, alpha, mode)
  return MixParams(perm=sample_partners(key_perm, batch_size, pairing),
                   label_weight=lam, lam=lam)


@functools.partial(
    jax.jit,
    static_argnames=("alpha", "num_classes", "mode", "pairing", "label_smoothing"))
def mixup(
    key: chex.PRNGKey,
    images: chex.Array,
    labels: chex.Array,
    *,
    alpha: float = 1.0,
    num_classes: int | None = None,
    mode: str = "batch",
    pairing: str = "permute",
    label_smoothing: float = 0.0,
) -> tuple[chex.Array, chex.Array]:
  """Mixes a batch with Mixup.

  ``x̃ = λ·x + (1 − λ)·x[perm]`` and ``ỹ = λ·y + (1 − λ)·y[perm]`` with
  ``λ ~ Beta(α, α)``. Not image-specific: ``images`` may be any ``[B, ...]``
  array (features, sequences, hidden states). A batch of one is mixed with
  itself and comes back unchanged.

  Args:
    key: a PRNG key.
    images: ``[B, ...]`` float (kept) or integer (returned as float32, so uint8
      never wraps or rounds).
    labels: int class ids ``[B]`` (with ``num_classes``) or rows ``[B, K]``.
    alpha: ``α > 0``; the paper uses 0.2–0.4 on ImageNet and 1.0 on CIFAR.
    num_classes: ``K``.
    mode: ``"batch"`` or ``"elem"``.
    pairing: ``"permute"`` (default), ``"flip"`` or ``"roll"``.
    label_smoothing: ``ε`` applied to the labels before mixing.

  Returns:
    ``(x̃, ỹ)``: mixed images and float32 soft labels ``[B, K]``.

  Raises:
    ValueError: at trace time for ``α ≤ 0``, unknown ``mode``/``pairing``, a
      batch mismatch or labels that do not fit ``num_classes``.
  """
  batch = _validation.check_batch(images)
  params = sample_mixup(key, batch, alpha=alpha, mode=mode, pairing=pairing)
  return apply_mix(params, images, labels, num_classes, label_smoothing)
