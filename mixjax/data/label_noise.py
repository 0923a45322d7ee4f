"""Symmetric label noise: a fraction of the training labels replaced by another class.

The corruption of Zhang et al. (2018), "mixup: Beyond Empirical Risk Minimization",
§3.4 / Table 2 (after Zhang et al., 2017, "Understanding deep learning requires
rethinking generalization"): ``round(p·N)`` examples, drawn uniformly without
replacement, each get a label drawn uniformly from the ``K − 1`` classes other than its
own, so exactly a fraction ``p`` of the labels is wrong. (Some papers' code draws the
new label from all ``K`` classes, so that about ``p·(K − 1)/K`` end up wrong; here
``p`` is the fraction that *is* wrong.) Test labels are never touched.

The draw is a function of ``(seed, N, K, p)`` only, so every process of a run and every
method of a comparison see the same corrupted labels.
"""

from __future__ import annotations

import numpy as np


def flip_labels(labels: np.ndarray, num_classes: int, fraction: float,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Replaces ``round(fraction · N)`` labels by a uniformly drawn other class.

  Args:
    labels: int ``[N]`` class ids in ``[0, num_classes)``.
    num_classes: ``K ≥ 2``.
    fraction: ``p ∈ [0, 1]``, the fraction of labels made wrong.
    seed: the draw's seed (``numpy.random.default_rng([seed, 0x1abe1])``).

  Returns:
    ``(noisy, flipped)``: int32 ``[N]`` labels, of which exactly the ``flipped``
    (bool ``[N]``, ``round(p·N)`` of them) differ from ``labels``.

  Raises:
    ValueError: ``fraction`` outside ``[0, 1]``, fewer than 2 classes, or labels that
      are not class ids of ``[0, num_classes)``.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be integer class ids [N], got {labels.dtype} "
                     f"{labels.shape}.")
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
      or num_classes < 2:
    raise ValueError(f"label noise needs num_classes >= 2, got {num_classes!r}.")
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}), got values in "
                     f"[{labels.min()}, {labels.max()}].")
  if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
      or not 0 <= fraction <= 1:
    raise ValueError(f"label_noise must be a fraction in [0, 1], got {fraction!r}.")
  rng = np.random.default_rng([seed, 0x1ABE1])
  n = labels.shape[0]
  flipped = np.zeros(n, bool)
  flipped[rng.choice(n, size=int(round(fraction * n)), replace=False)] = True
  noisy = labels.astype(np.int32)  # A copy.
  # y + U{1, ..., K − 1} mod K: uniform over the K − 1 other classes.
  shift = rng.integers(1, num_classes, size=int(flipped.sum()))
  noisy[flipped] = (noisy[flipped] + shift) % num_classes
  return noisy, flipped
