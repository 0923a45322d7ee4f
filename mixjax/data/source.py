"""Image-classification datasets held in host memory, loaded by name.

A :class:`Dataset` is two whole splits as numpy arrays: ``uint8`` images
``[N, H, W, C]`` and ``int32`` labels ``[N]``. Keeping them in host memory (CIFAR
is 150 MB) makes shuffling ours: :mod:`mixjax.data.batching` draws the order of
epoch ``e`` from ``(seed, e)`` alone, so runs are deterministic and resumable.

The loaders (:mod:`mixjax.data.digits`, :mod:`mixjax.data.tfds_source`) build
one; :func:`mixjax.data.load_dataset` picks the loader by name.
"""

from __future__ import annotations

import dataclasses

import numpy as np

_STATS_CHUNK = 4096  # Examples per chunk when counting pixel values.


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """Train and test splits of an image-classification dataset.

  Attributes:
    name: the name it was loaded by (e.g. ``"cifar10"``, ``"digits"``).
    train_images: uint8 ``[N, H, W, C]``.
    train_labels: int32 ``[N]`` class ids in ``[0, num_classes)``.
    test_images: uint8 ``[M, H, W, C]``.
    test_labels: int32 ``[M]``.
    num_classes: ``K``.
    mean: per-channel mean ``μ_c`` of the train images, 0..255 scale.
    std: per-channel standard deviation ``σ_c`` of the train images, 0..255
      scale (population, ``ddof=0``); see :func:`channel_stats`.
    train_flipped: bool ``[N]``, the training examples whose label was replaced by
      label noise (:func:`mixjax.data.label_noise.flip_labels`); ``None`` without.
  """
  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  train_flipped: np.ndarray | None = None

  def __post_init__(self):
    for split in ("train", "test"):
      images = getattr(self, f"{split}_images")
      labels = getattr(self, f"{split}_labels")
      check_images(images, f"{split}_images")
      if labels.dtype != np.int32 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"{split}_labels must be int32 [{images.shape[0]}] to match "
            f"{split}_images, got {labels.dtype} {labels.shape}.")
      if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
        raise ValueError(
            f"{split}_labels must lie in [0, {self.num_classes}), got values in "
            f"[{labels.min()}, {labels.max()}].")
    if self.train_images.shape[1:] != self.test_images.shape[1:]:
      raise ValueError(
          "train and test images must share (H, W, C), got "
          f"{self.train_images.shape[1:]} and {self.test_images.shape[1:]}.")
    channels = self.train_images.shape[-1]
    if len(self.mean) != channels or len(self.std) != channels:
      raise ValueError(
          f"mean and std must have one value per channel ({channels}), got "
          f"{len(self.mean)} and {len(self.std)}.")

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """``(H, W, C)``."""
    return tuple(self.train_images.shape[1:])

  @property
  def num_train(self) -> int:
    return self.train_images.shape[0]

  @property
  def num_test(self) -> int:
    return self.test_images.shape[0]


def check_images(images, name: str = "images") -> None:
  """Raises unless ``images`` is a uint8 numpy array ``[N, H, W, C]``."""
  if not isinstance(images, np.ndarray):
    raise ValueError(
        f"{name} must be a numpy array, got {type(images).__name__}.")
  if images.dtype != np.uint8:
    raise ValueError(f"{name} must be uint8 (0..255), got {images.dtype}.")
  if images.ndim != 4:
    raise ValueError(
        f"{name} must be [N, H, W, C] (3-D per example), got shape "
        f"{images.shape}.")


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Exact per-channel mean and standard deviation of uint8 images.

  Pixel values are counted per channel (a 256-bin histogram ``n_c(v)``, built
  in chunks, so no float copy of the data is made), then

    ``μ_c = Σ_v v·n_c(v) / N_c``,  ``σ_c = sqrt(Σ_v (v − μ_c)²·n_c(v) / N_c)``

  in float64, where ``N_c`` counts every pixel of channel ``c``.

  Args:
    images: uint8 ``[N, H, W, C]`` with ``N ≥ 1``.

  Returns:
    ``(mean, std)``, tuples of ``C`` Python floats in the 0..255 scale.
  """
  check_images(images)
  if images.shape[0] == 0:
    raise ValueError("channel_stats needs at least one image, got 0.")
  channels = images.shape[-1]
  counts = np.zeros((channels, 256), np.int64)
  for start in range(0, images.shape[0], _STATS_CHUNK):
    chunk = images[start:start + _STATS_CHUNK]
    for c in range(channels):
      counts[c] += np.bincount(chunk[..., c].ravel(), minlength=256)
  values = np.arange(256, dtype=np.float64)
  total = counts.sum(axis=1).astype(np.float64)
  mean = counts @ values / total
  var = (counts * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
  return tuple(float(m) for m in mean), tuple(float(s) for s in np.sqrt(var))


def stratified_dataset(name: str, images: np.ndarray, labels: np.ndarray, num_classes: int,
                       num_test: int, split_seed: int, train_split: str = "train",
                       test_split: str = "test") -> Dataset:
  """A :class:`Dataset` of a packaged dataset's fixed, stratified train/test split.

  The split is ``sklearn.model_selection.train_test_split(test_size=num_test,
  random_state=split_seed, stratify=labels)``, the original order kept within each
  split, so it is the same on every machine; ``mean``/``std`` come from the split
  used for training.

  Args:
    name: the dataset's name (``"digits"``, ``"mnist5k"``).
    images: uint8 ``[N, H, W, C]``, all examples.
    labels: int32 ``[N]``.
    num_classes: ``K``.
    num_test: examples in the test split.
    split_seed: the split's ``random_state``.
    train_split: ``"train"`` or ``"test"``: the split returned for training.
    test_split: likewise, for evaluation.
  """
  splits = ("train", "test")
  for arg, split in (("train_split", train_split), ("test_split", test_split)):
    if split not in splits:
      raise ValueError(f"{name} has splits {splits}; {arg} must be one of them, got "
                       f"{split!r}.")
  from sklearn.model_selection import train_test_split
  train_index, test_index = train_test_split(
      np.arange(labels.shape[0]), test_size=num_test, random_state=split_seed,
      stratify=labels)
  chosen = {"train": np.sort(train_index), "test": np.sort(test_index)}
  train, test = chosen[train_split], chosen[test_split]
  mean, std = channel_stats(images[train])
  return Dataset(name=name, train_images=images[train], train_labels=labels[train],
                 test_images=images[test], test_labels=labels[test],
                 num_classes=num_classes, mean=mean, std=std)
