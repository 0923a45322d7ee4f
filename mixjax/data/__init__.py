"""Data for mixjax training: datasets in host memory, batching, augmentation.

* :func:`load_dataset` — ``"digits"`` (offline, scikit-learn) or any prepared
  TFDS image-classification dataset, as a :class:`Dataset` of numpy arrays.
* :func:`train_batches` / :func:`eval_batches` — deterministic, resumable
  host-side batching.
* :func:`random_crop_flip` / :func:`normalize` — on-device augmentation.

TensorFlow Datasets is imported only when a TFDS dataset is loaded.
"""

from mixjax.data.augment import normalize, random_crop_flip
from mixjax.data.batching import (
    eval_batches,
    num_eval_batches,
    steps_per_epoch,
    train_batches,
)
from mixjax.data.source import Dataset, load_dataset

__all__ = [
    "Dataset",
    "eval_batches",
    "load_dataset",
    "normalize",
    "num_eval_batches",
    "random_crop_flip",
    "steps_per_epoch",
    "train_batches",
]
