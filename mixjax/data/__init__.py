"""Data for mixjax training: sources, the Grain input pipeline, augmentation.

* :func:`load_dataset` — ``"digits"`` (offline, scikit-learn) or any prepared
  TFDS image-classification dataset, as a :class:`Dataset` of numpy arrays.
* :func:`open_source` — any dataset the trainer reads, as a :class:`Source` of
  splits read by index: in-memory datasets, image folders, TFDS ArrayRecord.
* :class:`DecodeOptions` — how streamed images are decoded and resized (torchvision's
  choices or tf.data's).
* :func:`flip_labels` — symmetric label noise (``load_dataset(..., label_noise=p)``).
* :func:`train_dataset` / :func:`eval_dataset` — the Grain pipeline over a split.
* :func:`train_batches` / :func:`eval_batches` — the same batches from numpy
  arrays, without Grain.
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
from mixjax.data.datasets import Source, load_dataset, open_source, register_source
from mixjax.data.decode import Options as DecodeOptions
from mixjax.data.label_noise import flip_labels
from mixjax.data.pipeline import ArraySplit, Split, TrainInput, eval_dataset, train_dataset
from mixjax.data.source import Dataset

__all__ = [
    "ArraySplit",
    "Dataset",
    "DecodeOptions",
    "Source",
    "Split",
    "TrainInput",
    "eval_batches",
    "eval_dataset",
    "flip_labels",
    "load_dataset",
    "normalize",
    "num_eval_batches",
    "open_source",
    "random_crop_flip",
    "register_source",
    "steps_per_epoch",
    "train_batches",
    "train_dataset",
]
