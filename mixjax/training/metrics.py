"""Evaluation metrics: accuracy, NLL and expected calibration error (ECE).

Everything is accumulated as sums, so batches (and devices) add up exactly and
masked padding examples count for nothing.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax


def eval_sums(
    logits: chex.Array, labels: chex.Array, mask: chex.Array, num_bins: int = 15
) -> dict[str, chex.Array]:
  """Per-batch sums for accuracy, NLL and the reliability diagram.

  Confidence ``c = max_k softmax(z)_k`` falls in bin ``b`` when
  ``b/M < c ≤ (b+1)/M``.

  Returns:
    ``count``, ``correct``, ``nll`` (scalars) and ``bin_count``,
    ``bin_confidence``, ``bin_correct`` (``[M]``), all float32 sums over the
    unmasked examples.
  """
  chex.assert_rank(logits, 2)
  chex.assert_shape(labels, (logits.shape[0],))
  chex.assert_shape(mask, (logits.shape[0],))
  logits = logits.astype(jnp.float32)
  weight = mask.astype(jnp.float32)
  probs = jax.nn.softmax(logits)
  confidence = probs.max(axis=-1)
  correct = (logits.argmax(axis=-1) == labels).astype(jnp.float32)
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  bins = jnp.clip(jnp.ceil(confidence * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
  in_bin = jax.nn.one_hot(bins, num_bins, dtype=jnp.float32) * weight[:, None]
  return {
      "count": weight.sum(),
      "correct": (correct * weight).sum(),
      "nll": (nll * weight).sum(),
      "bin_count": in_bin.sum(axis=0),
      "bin_confidence": (in_bin * confidence[:, None]).sum(axis=0),
      "bin_correct": (in_bin * correct[:, None]).sum(axis=0),
  }


def expected_calibration_error(
    bin_count: np.ndarray, bin_confidence: np.ndarray, bin_correct: np.ndarray
) -> float:
  """``ECE = Σ_b (n_b / N)·|acc_b − conf_b|`` (Guo et al., 2017) from bin sums."""
  bin_count = np.asarray(bin_count, np.float64)
  total = bin_count.sum()
  if total == 0:
    return float("nan")
  gap = np.abs(np.asarray(bin_correct, np.float64) - np.asarray(bin_confidence, np.float64))
  return float(gap.sum() / total)


def summarize(sums: dict[str, np.ndarray]) -> dict[str, float]:
  """Example count, accuracy, mean NLL and ECE from summed :func:`eval_sums`."""
  count = float(sums["count"])
  return {
      "count": int(round(count)),
      "accuracy": float(sums["correct"]) / count,
      "nll": float(sums["nll"]) / count,
      "ece": expected_calibration_error(
          sums["bin_count"], sums["bin_confidence"], sums["bin_correct"]),
  }
