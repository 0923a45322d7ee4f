"""Labels in, soft labels out; and the loss that trains on them.

Mixing ops accept either integer class ids ``[B]`` (with ``num_classes``) or
one-hot / soft label rows ``[B, K]``, and always return float32 soft labels
whose rows sum to one.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mixjax import _validation


def soft_labels(
    labels: chex.Array,
    num_classes: int | None = None,
    label_smoothing: float = 0.0,
    batch_size: int | None = None,
) -> chex.Array:
  """Converts class ids or one-hot/soft rows to float32 soft labels.

  With smoothing ``ε`` the rows become ``(1 − ε)·y + ε / K`` (``optax.smooth_labels``).

  Args:
    labels: integer ids ``[B]`` or label rows ``[B, K]`` (any numeric dtype).
      Ids must lie in ``[0, K)``: concrete ids outside are a ``ValueError`` naming
      them; traced ids (inside ``jit``) are checked only under
      ``jax.experimental.checkify.checkify`` (see
      :func:`mixjax._validation.check_label_ids`), and otherwise give an all-zero row.
      Rows are taken as they are (not renormalised): multi-hot rows of a multi-label
      task stay multi-hot.
    num_classes: ``K``. Required for integer ids; checked against ``K`` for rows.
    label_smoothing: ``ε`` in ``[0, 1)``.
    batch_size: if given, the expected ``B``.

  Returns:
    float32 ``[B, K]``.

  Raises:
    ValueError: for ids without ``num_classes``, a width that differs from
      ``num_classes``, a batch that differs from ``batch_size`` or a bad ``ε``.
  """
  if not hasattr(labels, "shape"):
    labels = jnp.asarray(labels)
  if labels.ndim not in (1, 2):
    raise ValueError(
        "labels must be integer class ids [B] or label rows [B, K], got shape "
        f"{tuple(labels.shape)}.")
  if batch_size is not None and labels.shape[0] != batch_size:
    raise ValueError(
        f"labels must have the batch size of images ({batch_size}), got "
        f"{labels.shape[0]} (labels shape {tuple(labels.shape)}).")
  if isinstance(num_classes, np.integer):  # A numpy int works as a Python one.
    num_classes = int(num_classes)
  if num_classes is not None and (
      not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1):
    raise ValueError(f"num_classes must be a positive int, got {num_classes!r}.")
  if not 0.0 <= float(label_smoothing) < 1.0:
    raise ValueError(
        f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")
  if labels.ndim == 1:
    if not jnp.issubdtype(labels.dtype, jnp.integer):
      raise ValueError(
          "1-D labels must be integer class ids, got dtype "
          f"{labels.dtype}; pass label rows [B, K] for soft labels.")
    if num_classes is None:
      raise ValueError(
          "integer class ids need num_classes to build one-hot labels; got "
          "num_classes=None.")
    _validation.check_label_ids(labels, num_classes)
    rows = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  else:
    if num_classes is not None and labels.shape[1] != num_classes:
      raise ValueError(
          f"label rows must have width num_classes={num_classes}, got shape "
          f"{tuple(labels.shape)}.")
    rows = labels.astype(jnp.float32)
  if label_smoothing:
    rows = optax.smooth_labels(rows, label_smoothing)
  return rows


def soft_target_cross_entropy(
    logits: chex.Array, targets: chex.Array) -> chex.Array:
  """Per-example cross-entropy against soft targets.

  ``CE(z, y) = −Σ_k y_k · log softmax(z)_k``, computed in float32 by
  ``optax.softmax_cross_entropy``. Because it is linear in ``y``, for mixed
  targets ``y = λ·y_a + (1 − λ)·y_b`` it equals ``λ·CE(z, y_a) + (1 − λ)·CE(z, y_b)``,
  the Mixup loss.

  Args:
    logits: ``[..., K]``.
    targets: ``[..., K]`` soft labels (rows summing to one).

  Returns:
    float32 ``[...]``.
  """
  if logits.shape != targets.shape:
    raise ValueError(
        f"logits and targets must have the same shape, got {tuple(logits.shape)} "
        f"and {tuple(targets.shape)}.")
  return optax.softmax_cross_entropy(
      logits.astype(jnp.float32), targets.astype(jnp.float32))
