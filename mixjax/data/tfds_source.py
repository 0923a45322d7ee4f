"""TFDS image-classification datasets, read whole into host memory.

Nothing is downloaded: splits are read with ``download=False`` from a
``data_dir`` where the dataset was prepared beforehand, and a dataset that is
not there raises :class:`FileNotFoundError` at once, saying how to prepare it.
``tensorflow_datasets`` is imported only when a TFDS dataset is loaded.
"""

from __future__ import annotations

import numpy as np

from mixjax.data.source import Dataset, channel_stats, check_images

# A few datasets known to work (uint8 [H, W, C] images of a fixed size).
EXAMPLE_DATASETS = ("digits", "cifar10", "cifar100", "svhn_cropped", "mnist",
                    "fashion_mnist", "kmnist", "emnist")
_READ_CHUNK = 8192  # Examples per tf.data batch while reading a split.


def _import_tfds():
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise ImportError(
        "Loading TFDS datasets needs tensorflow-datasets and tensorflow: "
        "pip install 'mixjax[data]'. The 'digits' dataset needs only "
        "scikit-learn.") from e
  return tfds


def _hide_gpus_from_tf() -> None:
  """Keeps TensorFlow, which only reads data here, off the GPUs JAX uses."""
  import tensorflow as tf
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:
    pass  # TF has already initialised its devices; nothing left to do.


def prepare_instructions(name: str, data_dir: str) -> str:
  """How to prepare ``name`` in ``data_dir`` on a machine with internet."""
  return (
      "On a machine with internet, prepare it with\n"
      f"  python -c \"import tensorflow_datasets as tfds; "
      f"tfds.builder('{name}', data_dir='{data_dir}').download_and_prepare()\"\n"
      f"or\n  tfds build {name} --data_dir {data_dir}\n"
      "then copy that directory to this machine (TFDS's default data_dir is "
      "~/tensorflow_datasets) and pass its path as data_dir (train.py: "
      "--config.data_dir=PATH).")


def _builder(tfds, name: str, data_dir: str | None):
  try:
    return tfds.builder(name, data_dir=data_dir)
  except ValueError as e:  # DatasetNotFoundError, or a malformed name.
    first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ValueError(
        f"Unknown dataset {name!r}: it is neither 'digits' nor a registered "
        f"TFDS dataset ({first_line}). Image-classification datasets that work "
        f"include {', '.join(EXAMPLE_DATASETS)}; tfds.list_builders() lists "
        "every TFDS name.") from e


def _check_info(name: str, info) -> tuple[int, ...]:
  """Checks the metadata: fixed-size uint8 images with class labels.

  Returns:
    The image shape ``(H, W, C)``.
  """
  keys = info.supervised_keys
  if not (isinstance(keys, tuple) and len(keys) == 2 and
          all(isinstance(k, str) for k in keys)):
    raise ValueError(
        f"Dataset {name!r} must have (image, label) supervised keys, got "
        f"{keys!r}.")
  image_feature, label_feature = info.features[keys[0]], info.features[keys[1]]
  shape = tuple(getattr(image_feature, "shape", ()))
  dtype = np.dtype(getattr(image_feature, "np_dtype", np.float32))
  if len(shape) != 3 or any(d is None for d in shape):
    raise ValueError(
        f"Dataset {name!r} must have images of a fixed size [H, W, C] (3-D per "
        f"example), got {keys[0]!r} of shape {shape}.")
  if dtype != np.uint8:
    raise ValueError(
        f"Dataset {name!r} must have uint8 images (0..255), got {keys[0]!r} of "
        f"dtype {dtype}.")
  num_classes = getattr(label_feature, "num_classes", None)
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(
        f"Dataset {name!r} must have class labels (a ClassLabel feature), got "
        f"{keys[1]!r} = {type(label_feature).__name__}.")
  return shape


def _read_split(tfds, builder, name: str, split: str, image_shape,
                num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """Reads one split, in its stored order, as uint8 images and int32 labels."""
  if builder.data_path.exists():
    _hide_gpus_from_tf()  # Real data: TF is about to start.
  try:
    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
  except AssertionError as e:  # TFDS: "could not find data in <data_dir>".
    root = str(builder.data_dir_root)
    raise FileNotFoundError(
        f"TFDS dataset {name!r} is not prepared in data_dir={root!r} (no "
        f"{builder.data_path}); mixjax reads TFDS data with download=False and "
        f"never downloads. {prepare_instructions(name, root)}") from e
  except ValueError as e:  # E.g. an unknown split.
    raise ValueError(f"Cannot read split {split!r} of {name!r}: {e}") from e
  images, labels = [], []
  # tf.data batches of a known size: batch_size=-1 would batch by the split's
  # recorded size, which is unknown (sys.maxsize) for mocked datasets.
  for x, y in tfds.as_numpy(ds.batch(_READ_CHUNK)):
    images.append(x)
    labels.append(y)
  if not images:
    raise ValueError(f"Split {split!r} of {name!r} holds no examples.")
  images = np.concatenate(images)
  labels = np.concatenate(labels)
  check_images(images, f"{name}[{split}] images")
  if images.shape[1:] != image_shape:
    raise ValueError(
        f"{name}[{split}] images must be {image_shape} as in the metadata, got "
        f"{images.shape[1:]}.")
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(
        f"{name}[{split}] labels must lie in [0, {num_classes}), got "
        f"[{labels.min()}, {labels.max()}].")
  return images, labels.astype(np.int32)


def load_tfds(name: str, data_dir: str | None = None, train_split: str = "train",
              test_split: str = "test") -> Dataset:
  """Loads a prepared TFDS image-classification dataset into host memory.

  Both splits are read in their stored order (``shuffle_files=False``) and
  held as numpy arrays; ``mean``/``std`` come from the train split. See
  :func:`mixjax.data.load_dataset`.

  Raises:
    ValueError: unknown name, unsupported features, or an unknown split.
    FileNotFoundError: the dataset is not prepared in ``data_dir``.
  """
  tfds = _import_tfds()
  builder = _builder(tfds, name, data_dir)
  image_shape = _check_info(name, builder.info)
  num_classes = builder.info.features[builder.info.supervised_keys[1]].num_classes
  train_images, train_labels = _read_split(
      tfds, builder, name, train_split, image_shape, num_classes)
  test_images, test_labels = _read_split(
      tfds, builder, name, test_split, image_shape, num_classes)
  mean, std = channel_stats(train_images)
  return Dataset(
      name=name, train_images=train_images, train_labels=train_labels,
      test_images=test_images, test_labels=test_labels,
      num_classes=num_classes, mean=mean, std=std)
