"""scikit-learn's handwritten digits as a tiny, offline :class:`Dataset`.

``sklearn.datasets.load_digits`` ships the 1797 real 8×8 images (UCI optdigits
test set, values 0..16, 10 classes) inside scikit-learn, so it loads with no
network. Values are rescaled to uint8 by ``round(v·255/16)`` (0 ↦ 0, 16 ↦ 255).

The split is ``sklearn.model_selection.train_test_split(test_size=360,
random_state=0, stratify=labels)``: 1437 train / 360 test, every class in both
in its overall proportion, and the same on every machine.
"""

from __future__ import annotations

import numpy as np

from mixjax.data.source import Dataset, stratified_dataset

NUM_TEST = 360
SPLIT_SEED = 0


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
  """All 1797 digits: uint8 images ``[1797, 8, 8, 1]`` and int32 labels."""
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:
    raise ImportError(
        "The 'digits' dataset needs scikit-learn: pip install 'mixjax[train]' "
        "(or pip install scikit-learn).") from e
  bunch = load_digits()
  values = np.asarray(bunch.images, np.float64)  # [1797, 8, 8], 0..16.
  images = np.round(values * 255.0 / 16.0).astype(np.uint8)[..., None]
  return images, np.asarray(bunch.target, np.int32)


def load_digits(train_split: str = "train", test_split: str = "test") -> Dataset:
  """The digits :class:`Dataset` (1437 train / 360 test, 8×8×1, 10 classes).

  Args:
    train_split: ``"train"`` or ``"test"``.
    test_split: ``"train"`` or ``"test"``.

  Returns:
    The dataset, ``mean``/``std`` from the train split.
  """
  images, labels = digits_arrays()
  return stratified_dataset("digits", images, labels, 10, NUM_TEST, SPLIT_SEED,
                            train_split, test_split)
