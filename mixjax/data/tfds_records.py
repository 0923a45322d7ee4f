"""TFDS datasets prepared as ArrayRecord, read by index with ``tfds.data_source`` (no TensorFlow).

Prepare once, on a machine that has the data (ImageNet's archives must be downloaded
by hand into TFDS's ``manual_dir``)::

  tfds build imagenet2012 --data_dir DATA --file_format=array_record

Then ``--config.dataset=imagenet2012 --config.data_dir=DATA`` reads it here, through
``tfds.data_source``: random access, no TensorFlow at train time.

* Images of one fixed size (``cifar10``, ``cifar100``, ...) are read whole into host
  memory (a :class:`~mixjax.data.source.Dataset`, the same arrays as the TFRecord path
  of :mod:`mixjax.data.tfds_source`, with their own statistics and on-device
  augmentation).
* Images of varied sizes (``imagenet2012``, ``imagenette``, ...) stay on disk: each
  batch's JPEG bytes are read (``SkipDecoding``) and decoded and cropped as an image
  folder's (:mod:`mixjax.data.decode`). Evaluation uses the ``validation`` split when
  there is one, else ``test``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mixjax.data import decode
from mixjax.data.source import Dataset, channel_stats, check_images
from mixjax.data.tfds_source import _builder, _import_tfds, prepare_instructions


def _prepared_builder(name: str, data_dir: str | None):
  tfds = _import_tfds()
  builder = _builder(tfds, name, data_dir)
  return tfds, builder


def is_array_record(name: str, data_dir: str | None) -> bool:
  """Whether ``name`` is prepared in ``data_dir`` with ArrayRecord files (nothing is read)."""
  tfds, builder = _prepared_builder(name, data_dir)
  if not builder.data_path.exists():
    return False
  array_record = tfds.core.file_adapters.FileFormat.ARRAY_RECORD
  return array_record in builder.info.available_file_formats()


def _features(name: str, info) -> tuple[str, str, Any, int]:
  keys = info.supervised_keys
  if not (isinstance(keys, tuple) and len(keys) == 2):
    raise ValueError(f"Dataset {name!r} must have (image, label) supervised keys, got {keys!r}.")
  image, label = info.features[keys[0]], info.features[keys[1]]
  if type(image).__name__ != "Image":
    raise ValueError(f"Dataset {name!r}'s {keys[0]!r} must be an Image feature, got "
                     f"{type(image).__name__}.")
  num_classes = getattr(label, "num_classes", None)
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"Dataset {name!r} must have class labels (a ClassLabel feature), got "
                     f"{keys[1]!r} = {type(label).__name__}.")
  return keys[0], keys[1], image, num_classes


@dataclasses.dataclass(frozen=True, eq=False)
class RecordSplit:
  """One split of an ArrayRecord dataset, read by index (a :class:`~mixjax.data.pipeline.Split`).

  Attributes:
    name: ``dataset[split]``, for error messages.
    records: ``tfds.data_source``'s sequence, the image left encoded.
    image_key: the image feature's name.
    label_key: the label feature's name.
    image_size: side of the square crops.
    seed: the run's seed, from which each example's crop is drawn.
    decoding: how images are decoded and resized (:class:`~mixjax.data.decode.Options`).
  """
  name: str
  records: Any
  image_key: str
  label_key: str
  image_size: int
  seed: int = 0
  decoding: decode.Options = decode.Options()

  def __len__(self) -> int:
    return len(self.records)

  def load(self, indices: np.ndarray, epoch: int | None) -> tuple[np.ndarray, np.ndarray]:
    records = self.records.__getitems__([int(i) for i in indices])
    images = np.empty((len(indices), self.image_size, self.image_size, 3), np.uint8)
    labels = np.empty((len(indices),), np.int32)
    for row, (index, record) in enumerate(zip(indices, records, strict=True)):
      rng = None if epoch is None else decode.example_rng(self.seed, epoch, int(index))
      images[row] = decode.decode_crop(record[self.image_key],
                                       f"{self.name} record {int(index)}", self.image_size, rng,
                                       self.decoding)
      labels[row] = record[self.label_key]
    return images, labels


def _split_names(name: str, info) -> tuple[str, str]:
  splits = set(info.splits)
  if "train" not in splits:
    raise ValueError(f"Dataset {name!r} has no 'train' split (it has {sorted(splits)}).")
  for test in ("validation", "test"):
    if test in splits:
      return "train", test
  raise ValueError(f"Dataset {name!r} has neither a 'validation' nor a 'test' split "
                   f"(it has {sorted(splits)}).")


def _read_whole(name: str, records, image_key: str, label_key: str, shape) -> tuple:
  images = np.empty((len(records),) + tuple(shape), np.uint8)
  labels = np.empty((len(records),), np.int32)
  for start in range(0, len(records), 1024):
    chunk = records.__getitems__(list(range(start, min(start + 1024, len(records)))))
    for row, record in enumerate(chunk, start):
      image = np.asarray(record[image_key])
      images[row] = image.reshape(shape)
      labels[row] = record[label_key]
  check_images(images, f"{name} images")
  return images, labels


def open_tfds_records(name: str, data_dir: str | None, image_size: int, seed: int = 0,
                      decoding: decode.Options | None = None):
  """Opens ``name``, prepared as ArrayRecord: a :class:`~mixjax.data.datasets.Source`."""
  from mixjax.data.datasets import IMAGENET_MEAN, IMAGENET_STD, Source, from_dataset
  tfds, builder = _prepared_builder(name, data_dir)
  if not builder.data_path.exists():
    raise FileNotFoundError(
        f"TFDS dataset {name!r} is not prepared in data_dir={builder.data_dir_root!r}. "
        + prepare_instructions(name, str(builder.data_dir_root)))
  info = builder.info
  image_key, label_key, image_feature, num_classes = _features(name, info)
  train_split, test_split = _split_names(name, info)
  shape = tuple(image_feature.shape)
  if all(d is not None for d in shape):  # One fixed size: whole, in host memory.
    sources = builder.as_data_source(split=[train_split, test_split])
    train = _read_whole(f"{name}[{train_split}]", sources[0], image_key, label_key, shape)
    test = _read_whole(f"{name}[{test_split}]", sources[1], image_key, label_key, shape)
    mean, std = channel_stats(train[0])
    return from_dataset(Dataset(name, *train, *test, num_classes, mean, std))
  if shape[-1] not in (None, 1, 3):
    raise ValueError(f"Dataset {name!r} must have 1 or 3 channels, got {shape}.")
  sources = builder.as_data_source(
      split=[train_split, test_split],
      decoders={image_key: tfds.decode.SkipDecoding()})
  decoding = decoding or decode.Options()
  splits = [RecordSplit(f"{name}[{s}]", records, image_key, label_key, image_size, seed,
                        decoding)
            for s, records in zip((train_split, test_split), sources, strict=True)]
  return Source(name, splits[0], splits[1], num_classes, (image_size, image_size, 3),
                IMAGENET_MEAN, IMAGENET_STD)
