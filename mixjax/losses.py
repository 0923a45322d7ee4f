r"""The losses a train step can use, by name: soft-target CE, softmax-BCE, sigmoid-BCE.

``"ce"`` is :func:`~mixjax.soft_target_cross_entropy`, the loss of the Mixup and
CutMix code. ``"softmax_bce"`` is :func:`softmax_bce`, the loss the Manifold
Mixup code trains ERM, Mixup and Manifold Mixup with. ``"sigmoid_bce"`` is
:func:`sigmoid_bce`, one independent sigmoid per class: the loss of multi-label
tasks (mixed multi-hot targets) and of timm's ``--bce-loss``. At a uniform softmax its
gradient w.r.t. the logits is exactly ``1/(K − 1)`` of the CE gradient for any
soft target (0.111× for 10 classes, 0.0101× for 100; init-scale logits measure
the same to 1%), so the same learning rate and weight decay train in another
regime with each loss.
"""

from __future__ import annotations

from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
import optax

from mixjax.labels import soft_target_cross_entropy

# PyTorch's BCELoss clamps each log term at this value.
LOG_CLAMP = -100.0


def _log_one_minus_softmax(log_p: chex.Array) -> chex.Array:
  """``log(1 − p_k)`` for ``p = softmax``, accurate for every ``p_k`` in ``[0, 1]``.

  For a class other than the largest, ``p_k ≤ 1/2``, where ``log1p(−p_k)`` is
  accurate. For the largest, ``1 − p_k = Σ_{j≠k} p_j`` is summed in log space
  (``logsumexp`` over the other log-probabilities), which keeps its precision
  when ``p_k`` rounds to 1 (``log1p(−p_k)`` would then give ``−inf``).
  """
  top = jax.nn.one_hot(jnp.argmax(log_p, axis=-1), log_p.shape[-1], dtype=bool)
  rest = jax.nn.logsumexp(jnp.where(top, -jnp.inf, log_p), axis=-1, keepdims=True)
  # The top class's entry must not reach log1p: log1p(−1) = −inf has a NaN gradient.
  others = jnp.log1p(-jnp.exp(jnp.where(top, -1.0, log_p)))
  return jnp.where(top, rest, others)


def softmax_bce(logits: chex.Array, targets: chex.Array) -> chex.Array:
  r"""Per-example binary cross-entropy of the softmax probabilities.

  The loss of the Manifold Mixup code, ``bce_loss(softmax(output),
  reweighted_target)`` with ``bce_loss = nn.BCELoss()``
  (github.com/vikasverma1077/manifold_mixup ``supervised/main.py:184-185``, used
  at lines 221, 237 and 254 for Mixup, Manifold Mixup and ERM). With
  ``p = softmax(z)`` over ``K`` classes,

  .. math::

     \ell(z, y) = -\frac{1}{K} \sum_{k=1}^{K}
       \big[y_k \max(\log p_k, -100) + (1 - y_k) \max(\log(1 - p_k), -100)\big],

  the mean over classes of PyTorch's ``BCELoss``, which clamps each log term at
  −100 (``torch.nn.BCELoss`` docs); ``mean()`` over the batch gives the
  reference's mean over ``B·K``. Unlike soft-target CE it also pushes down
  every probability whose target is 0.

  Built on optax: ``p_k = σ(u_k)`` with the log-odds ``u_k = log p_k − log(1 −
  p_k)``, so the loss is ``mean_k optax.sigmoid_binary_cross_entropy(u_k, y_k)``.
  ``optax.sigmoid_binary_cross_entropy`` cannot take the logits themselves
  (``σ(z_k) ≠ softmax(z)_k``); ``log p`` comes from ``jax.nn.log_softmax`` and
  ``log(1 − p)`` from ``log1p(−p)`` for every class but the largest and from
  ``logsumexp`` over the others for the largest, both stable. Clipping
  ``u`` to ``[−100, 100]`` is PyTorch's clamp: ``log σ(u) ≥ −100`` and
  ``log σ(−u) ≥ −100`` hold exactly there (to float32 rounding), and outside
  it the clamped term is −100 and the other term is ``−log1p(e^{−100}) = 0``.
  The gradient is that of this clamped function (zero through a clamped term).

  Two differences from PyTorch's float32 arithmetic, both where ``p`` saturates:
  PyTorch computes ``log(1 − p)`` from the rounded ``p``, so once the other
  classes' mass falls below float32's ``2^{−24}`` it reads ``log 0`` and
  reports −100 where this returns the exact ``log(1 − p)`` (e.g. −30 for a
  logit gap of 30); and its backward divides by ``max(p(1 − p), 10^{−12})``
  (torch 1.0, the version the reference was tested with, used ``log(1e-12)``
  instead of −100 for ``p = 0``: pytorch/pytorch#8147, #31453). Elsewhere the two agree to rounding.

  Args:
    logits: ``[..., K]`` with ``K ≥ 2``.
    targets: ``[..., K]`` soft labels in ``[0, 1]``.

  Returns:
    float32 ``[...]``.

  Raises:
    ValueError: shapes differ or ``K < 2``.
  """
  if logits.shape != targets.shape:
    raise ValueError(
        f"logits and targets must have the same shape, got {tuple(logits.shape)} "
        f"and {tuple(targets.shape)}.")
  if logits.ndim == 0 or logits.shape[-1] < 2:
    raise ValueError(
        f"softmax_bce needs at least 2 classes, got logits of shape {tuple(logits.shape)}.")
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  log_odds = jnp.clip(log_p - _log_one_minus_softmax(log_p), LOG_CLAMP, -LOG_CLAMP)
  return optax.sigmoid_binary_cross_entropy(
      log_odds, targets.astype(jnp.float32)).mean(axis=-1)


def sigmoid_bce(logits: chex.Array, targets: chex.Array) -> chex.Array:
  r"""Per-example binary cross-entropy of independent sigmoids, for soft multi-label targets.

  With ``σ`` the logistic function and ``K`` classes,

  .. math::

     \ell(z, y) = -\frac{1}{K} \sum_{k=1}^{K}
       \big[y_k \log \sigma(z_k) + (1 - y_k) \log(1 - \sigma(z_k))\big],

  ``optax.sigmoid_binary_cross_entropy`` averaged over the classes in float32;
  ``mean()`` over the batch gives PyTorch's ``BCEWithLogitsLoss()`` (mean over
  ``B·K``), which timm's ``BinaryCrossEntropy`` uses. Each class is a yes/no
  question, so a target row need not sum to one: a multi-label example is a
  multi-hot row, and a mix of two (:func:`~mixjax.mix_labels`) gives each class
  its weight in ``[0, 1]`` (``w·y_i + (1 − w)·y_p``: a class both examples have
  stays 1) without renormalising. The loss is linear in ``y``, so the loss of a
  mixed target is the mix of the two losses, as for soft-target CE.

  Args:
    logits: ``[..., K]``.
    targets: ``[..., K]`` in ``[0, 1]`` (multi-hot, or mixed/soft).

  Returns:
    float32 ``[...]``.

  Raises:
    ValueError: shapes differ.
  """
  if logits.shape != targets.shape:
    raise ValueError(
        f"logits and targets must have the same shape, got {tuple(logits.shape)} "
        f"and {tuple(targets.shape)}.")
  return optax.sigmoid_binary_cross_entropy(
      logits.astype(jnp.float32), targets.astype(jnp.float32)).mean(axis=-1)


LOSSES: dict[str, Callable[[chex.Array, chex.Array], chex.Array]] = {
    "ce": soft_target_cross_entropy,
    "softmax_bce": softmax_bce,
    "sigmoid_bce": sigmoid_bce,
}


def get_loss(name: str) -> Callable[[chex.Array, chex.Array], chex.Array]:
  """The per-example loss ``(logits, targets) -> [B]`` called ``name`` in :data:`LOSSES`.

  Raises:
    ValueError: ``name`` is not a known loss (the message lists them).
  """
  if name not in LOSSES:
    raise ValueError(f"unknown loss {name!r}; known losses: {sorted(LOSSES)}.")
  return LOSSES[name]
