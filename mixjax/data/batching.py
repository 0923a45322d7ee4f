"""Deterministic, resumable host-side batching (numpy only).

Training order is a pure function of ``(seed, epoch)``: epoch ``e`` visits the
examples in the permutation ``π_e = default_rng([seed, e]).permutation(N)``, and
step ``s`` of it is ``π_e[s·B : (s + 1)·B]``. Whoever asks for ``(seed, e)`` gets
the same batches, and a run resumed at ``(e, s)`` sees exactly the batches an
uninterrupted run would have. The last ``N mod B`` examples of each permutation
are dropped (a different subset every epoch).

Evaluation visits every example exactly once in order; the last batch is padded
with zeros to the full batch size and a boolean ``"mask"`` marks the real
examples, so every batch has the same shape (one compilation).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator

import numpy as np


def _check_int(value, name: str, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}.")
  return int(value)


def _check_arrays(images: np.ndarray, labels: np.ndarray) -> int:
  images, labels = np.asarray(images), np.asarray(labels)
  if images.ndim < 1 or labels.ndim < 1 or images.shape[0] != labels.shape[0]:
    raise ValueError(
        "images and labels must share the leading (example) axis, got shapes "
        f"{images.shape} and {labels.shape}.")
  return images.shape[0]


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Training steps in one epoch, ``⌊N / B⌋`` (the remainder is dropped)."""
  num_examples = _check_int(num_examples, "num_examples", 0)
  batch_size = _check_int(batch_size, "batch_size", 1)
  return num_examples // batch_size


def num_eval_batches(num_examples: int, batch_size: int) -> int:
  """Evaluation batches covering every example, ``⌈N / B⌉``."""
  num_examples = _check_int(num_examples, "num_examples", 0)
  batch_size = _check_int(batch_size, "batch_size", 1)
  return -(-num_examples // batch_size)


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The order ``π_e`` of epoch ``epoch``: ``default_rng([seed, epoch])``."""
  seed = _check_int(seed, "seed", 0)
  epoch = _check_int(epoch, "epoch", 0)
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def train_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    start_step: int = 0,
    rows: slice = slice(None),
) -> Iterator[dict[str, np.ndarray]]:
  """The training batches of one epoch, from ``start_step`` on.

  Step ``s`` holds the examples ``π_e[s·B : (s + 1)·B]`` with
  ``π_e = np.random.default_rng([seed, epoch]).permutation(N)``; there are
  :func:`steps_per_epoch` steps, so each example appears at most once.

  Args:
    images: ``[N, ...]`` (uint8 ``[N, H, W, C]`` for a :class:`Dataset`).
    labels: ``[N]`` class ids.
    batch_size: ``B``, ``1 ≤ B ≤ N``.
    seed: non-negative run seed.
    epoch: non-negative epoch index ``e``.
    start_step: first step to yield, ``0 ≤ start_step ≤ steps_per_epoch``
      (resuming mid-epoch; equal to it yields nothing).
    rows: which rows of every batch to load (default all): one process's part
      of a global batch (:func:`mixjax.training.distributed.process_slice`).
      Only those examples are read.

  Returns:
    An iterator of ``{"image": [B, ...] (images' dtype), "label": int32 [B]}``.

  Raises:
    ValueError: immediately (not at the first ``next``) for mismatched arrays,
      ``B`` outside ``[1, N]``, a negative seed/epoch or a bad ``start_step``.
  """
  num = _check_arrays(images, labels)
  batch_size = _check_int(batch_size, "batch_size", 1)
  if batch_size > num:
    raise ValueError(
        f"batch_size must be <= the number of training examples ({num}), got "
        f"{batch_size}.")
  steps = num // batch_size
  start_step = _check_int(start_step, "start_step", 0)
  if start_step > steps:
    raise ValueError(
        f"start_step must be in [0, {steps}] (steps per epoch for {num} "
        f"examples at batch_size {batch_size}), got {start_step}.")
  perm = epoch_permutation(num, seed, epoch)

  def batches():
    for step in range(start_step, steps):
      # In permutation order, not sorted: partner pairings such as "flip"
      # (i with B − 1 − i) must not see the stored (possibly class-sorted) order.
      index = perm[step * batch_size:(step + 1) * batch_size][rows]
      yield {"image": np.asarray(images[index]),
             "label": np.asarray(labels[index]).astype(np.int32)}
  return batches()


def eval_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    rows: slice = slice(None),
) -> Iterator[dict[str, np.ndarray]]:
  """Every example exactly once, in order, in batches of exactly ``B``.

  Batch ``k`` holds examples ``k·B … min((k + 1)·B, N) − 1``; the last one is
  padded with zeros (images and labels) up to ``B``. There are
  :func:`num_eval_batches` batches.

  Args:
    images: ``[N, ...]``.
    labels: ``[N]`` class ids.
    batch_size: ``B ≥ 1`` (may exceed ``N``).
    rows: which rows of every (padded) batch to yield, as in
      :func:`train_batches`; across the processes' slices every example is seen
      once.

  Returns:
    An iterator of ``{"image": [B, ...], "label": int32 [B], "mask": bool [B]}``
    where ``mask`` is True for real examples and False for padding.
  """
  num = _check_arrays(images, labels)
  batch_size = _check_int(batch_size, "batch_size", 1)

  mine = np.arange(batch_size)[rows]

  def batches():
    for start in range(0, num, batch_size):
      index = start + mine
      real = index < num
      index = np.where(real, index, 0)  # Padding: any example, masked out.
      image = np.asarray(images[index])
      image[~real] = 0
      label = np.where(real, np.asarray(labels[index]), 0).astype(np.int32)
      yield {"image": image, "label": label, "mask": real}
  return batches()
