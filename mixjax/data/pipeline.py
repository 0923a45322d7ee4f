"""The input pipeline: one Grain dataset of this process's batches, for every source.

A source's split is read by index (:class:`Split`: an in-memory array, an image folder, a
TFDS ArrayRecord dataset). Over it:

* **global shuffle, then this process's slice**: epoch ``e`` visits the examples in
  ``π_e = default_rng([seed, e]).permutation(N)`` (:func:`~mixjax.data.batching.
  epoch_permutation`, the same on every process); global batch ``s`` of epoch ``e``
  holds ``π_e[s·B : (s + 1)·B]`` and process ``p`` of ``P`` reads rows
  ``p·B/P … (p + 1)·B/P − 1`` of it. Each example is read once per epoch across the
  processes; the last ``N mod B`` of ``π_e`` are dropped. These are exactly
  :func:`~mixjax.data.batching.train_batches`' batches.
* **one element per step**: element ``k`` of :func:`train_dataset` is step ``k``'s
  batch of the whole run (epoch ``k // S``, ``S`` steps per epoch), loaded by
  ``split.load(indices, epoch)``, which draws each example's host randomness from
  ``(seed, epoch, example index)`` (:func:`~mixjax.data.decode.example_rng`). So a batch
  is a function of its step alone: the same with any number of Grain workers, threads
  or processes, and a run can restart at any step.
* **Grain reads ahead** (:func:`iterate`): batches are loaded by ``threads`` threads in
  each of ``workers`` worker processes (0: in this process) and buffered; the iterator's
  state after each batch is what a checkpoint saves (:class:`TrainInput`).
* **evaluation** (:func:`eval_dataset`) visits every example once, in order, across the
  processes; the last global batch is padded and ``"mask"`` marks the real rows.

Batches are ``{"image": uint8 [b, H, W, C], "label": int32 [b]}`` (``"mask"``: bool
``[b]`` in evaluation), ``b = B / P``: uint8 goes to the device, where normalisation,
flips, CIFAR's pad-crop and the mixing happen.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Iterator
from typing import Protocol

import grain
import numpy as np

from mixjax.data.batching import _check_int, epoch_permutation


class Split(Protocol):
  """A split of a source, read by example index."""

  def __len__(self) -> int:
    ...

  def load(self, indices: np.ndarray, epoch: int | None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``[b, H, W, C]`` and int32 labels ``[b]`` of ``indices``.

    ``epoch``: the training epoch whose host randomness (crops) to use, or ``None``
    for the evaluation transform.
    """
    ...


@dataclasses.dataclass(frozen=True, eq=False)
class ArraySplit:
  """A split held in host memory (digits, CIFAR read whole): rows gathered, no transform."""
  images: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return self.images.shape[0]

  def load(self, indices, epoch):
    del epoch  # Fixed-size images; their augmentation runs on the device.
    return np.asarray(self.images[indices]), np.asarray(self.labels[indices], np.int32)


class _TrainBatch:
  """Element ``k`` of the run: step ``k``'s rows ``rows`` (picklable for Grain's workers).

  With ``micro_batches = m``, element ``k`` is micro-batch ``k mod m`` of global batch
  ``k // m``: its ``B/m`` consecutive examples, of which this process reads ``rows``.
  """

  def __init__(self, split: Split, batch_size: int, seed: int, rows: slice,
               micro_batches: int = 1):
    self.split, self.seed = split, seed
    self.micro = batch_size // micro_batches
    self.rows = np.arange(self.micro)[rows]
    self.steps = len(split) // batch_size * micro_batches

  @functools.lru_cache(maxsize=2)  # noqa: B019  (one epoch's order, reused by its steps)
  def order(self, epoch: int) -> np.ndarray:
    return epoch_permutation(len(self.split), self.seed, epoch)

  def __call__(self, k: int) -> dict[str, np.ndarray]:
    epoch, step = divmod(int(k), self.steps)
    indices = self.order(epoch)[step * self.micro + self.rows]
    start = time.perf_counter()
    image, label = self.split.load(indices, epoch)
    return {"image": image, "label": label.astype(np.int32),
            "load_seconds": np.float64(time.perf_counter() - start)}


class _EvalBatch:
  """Evaluation batch ``k``: rows ``rows`` of examples ``k·B …``, padded past ``N``."""

  def __init__(self, split: Split, batch_size: int, rows: slice):
    self.split, self.batch_size = split, batch_size
    self.rows = np.arange(batch_size)[rows]

  def __call__(self, k: int) -> dict[str, np.ndarray]:
    index = int(k) * self.batch_size + self.rows
    real = index < len(self.split)
    image, label = self.split.load(np.where(real, index, 0), None)
    image[~real] = 0
    return {"image": image, "label": np.where(real, label, 0).astype(np.int32), "mask": real}


def train_dataset(split: Split, batch_size: int, seed: int, num_epochs: int,
                  rows: slice = slice(None), micro_batches: int = 1) -> grain.MapDataset:
  """The run's training batches, one element per step (see the module docstring).

  Args:
    split: the training split.
    batch_size: the global batch ``B``, ``1 ≤ B ≤ N``.
    seed: the run's seed (order and host randomness).
    num_epochs: epochs in the run; the dataset has ``num_epochs · ⌊N / B⌋ · m``
      elements.
    rows: this process's rows of every global batch (of every micro-batch with
      ``micro_batches``; :func:`mixjax.training.distributed.process_slice`).
    micro_batches: ``m`` dividing ``B``: each global batch comes as ``m`` consecutive
      elements of ``B/m`` examples (gradient accumulation), together exactly the
      examples of the global batch of ``B``.
  """
  batch_size = _check_int(batch_size, "batch_size", 1)
  if batch_size > len(split):
    raise ValueError(f"batch_size must be <= the number of training examples "
                     f"({len(split)}), got {batch_size}.")
  _check_int(seed, "seed", 0)
  num_epochs = _check_int(num_epochs, "num_epochs", 0)
  micro_batches = _check_int(micro_batches, "grad_accum_steps", 1)
  if batch_size % micro_batches:
    raise ValueError(f"batch_size ({batch_size}) must be divisible by grad_accum_steps "
                     f"({micro_batches}), the micro-batches it is accumulated over.")
  load = _TrainBatch(split, batch_size, seed, rows, micro_batches)
  return grain.MapDataset.range(num_epochs * load.steps).map(load)


def eval_dataset(split: Split, batch_size: int, rows: slice = slice(None)) -> grain.MapDataset:
  """Every example once, in batches of ``B`` (the last padded, ``"mask"`` False there)."""
  batch_size = _check_int(batch_size, "batch_size", 1)
  return grain.MapDataset.range(-(-len(split) // batch_size)).map(
      _EvalBatch(split, batch_size, rows))


def iterate(dataset: grain.MapDataset, workers: int = 0, threads: int = 1,
            buffer: int = 2) -> grain.DatasetIterator:
  """A Grain iterator over ``dataset`` that loads ahead.

  Args:
    dataset: a :func:`train_dataset` or :func:`eval_dataset`.
    workers: worker processes (``grain``'s ``mp_prefetch``); 0 reads in this process.
    threads: threads loading batches in each process (the decoders release the GIL).
    buffer: batches loaded ahead per process (per worker with workers).
  """
  _check_int(workers, "data_workers", 0)
  _check_int(threads, "data_threads", 0)
  _check_int(buffer, "buffer", 0)
  ds = dataset.to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                                 prefetch_buffer_size=buffer))
  if workers:
    from absl import flags
    if not flags.FLAGS.is_parsed():  # Grain's worker options are absl flags (defaults).
      flags.FLAGS.mark_as_parsed()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                     per_worker_buffer_size=buffer))
  return iter(ds)


class TrainInput(Iterator):
  """The run's training batches from a step on, with the Grain state after each.

  ``start``: the step the run's dataset (:func:`train_dataset`) begins at; ``state``:
  a Grain iterator state saved after some batch (a checkpoint's) to resume exactly
  there. ``next`` returns ``(batch, state)``: the state to save once that batch's step
  has run, so a pipeline that reads ahead never saves a position it has not trained.
  """

  def __init__(self, dataset: grain.MapDataset, start: int = 0, state: dict | None = None,
               workers: int = 0, threads: int = 1, buffer: int = 2):
    self.start = _check_int(start, "start", 0)
    self._it = iterate(dataset[self.start:], workers, threads, buffer)
    if state is not None:
      self._it.set_state(state)

  def __next__(self) -> tuple[dict[str, np.ndarray], dict]:
    batch = next(self._it)
    return batch, self._it.get_state()

  def close(self) -> None:
    close = getattr(self._it, "close", None)
    if close is not None:
      close()
