"""Image folders in torchvision's ``ImageFolder`` layout, the layout of most ImageNet copies.

::

  DATA/train/<class>/*.jpg|jpeg|png   (any depth below the class folder)
  DATA/val/<class>/*

Classes are the sorted names of ``DATA/train``'s sub-folders; ``val`` must have the same
ones. Only the file names are read when the folder is opened (1.28 M ImageNet files:
seconds); each image is decoded when a batch needs it (:mod:`mixjax.data.decode`).

Everything that would give a wrong label or a hung run is an error naming the file or
folder: a missing split, a split with no class folders, an empty class folder, classes
that differ between the splits, a file whose extension is not an image's (hidden files,
whose names start with ``.``, are skipped), and, when its batch is read, a file that is
unreadable, truncated or not an image at all. Corrupt files are not skipped: the run stops
at the first one with its path, since skipping would change which examples an epoch
holds (``python -m mixjax.data.imagefolder DATA`` decodes every file and lists the bad
ones before a long run).
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

from mixjax.data import decode

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "val")


def _scan_class(folder: str) -> list[str]:
  files = []
  for root, dirs, names in os.walk(folder):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    for name in sorted(names):
      if name.startswith("."):
        continue
      path = os.path.join(root, name)
      if not name.lower().endswith(IMAGE_EXTENSIONS):
        raise ValueError(
            f"{path} is not an image file (expected one of {IMAGE_EXTENSIONS}); move it "
            "out of the class folder, or it would be read as an example of that class.")
      files.append(path)
  if not files:
    raise ValueError(f"class folder {folder} holds no images ({'/'.join(IMAGE_EXTENSIONS)}).")
  return files


def scan(directory: str, classes: tuple[str, ...] | None = None
         ) -> tuple[tuple[str, ...], list[str], np.ndarray]:
  """Lists one split: ``(classes, files, labels)``.

  Args:
    directory: the split's folder, holding one sub-folder per class.
    classes: the class names the split must have (the train split's); ``None``: this
      split's sorted sub-folder names.

  Returns:
    the class names, every image's path (class by class, sorted) and its int32 label.

  Raises:
    FileNotFoundError: ``directory`` does not exist.
    ValueError: no class folders, an empty class folder, another set of classes than
      ``classes``, or a file that is not an image.
  """
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"no split folder {directory} (the layout is DATA/train/<class>/"
                            "*.jpg and DATA/val/<class>/*.jpg).")
  found = tuple(sorted(e.name for e in os.scandir(directory)
                       if e.is_dir() and not e.name.startswith(".")))
  if not found:
    raise ValueError(f"{directory} holds no class folders (expected {directory}/<class>/*.jpg).")
  if classes is not None and found != tuple(classes):
    missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
    raise ValueError(
        f"{directory} must have the train split's {len(classes)} class folders, got "
        f"{len(found)}: missing {missing[:10]}, not in train {extra[:10]}.")
  files, labels = [], []
  for label, name in enumerate(found):
    names = _scan_class(os.path.join(directory, name))
    files += names
    labels += [label] * len(names)
  return found, files, np.asarray(labels, np.int32)


@dataclasses.dataclass(frozen=True, eq=False)
class FolderSplit:
  """One split of an image folder, read by index (a :class:`~mixjax.data.pipeline.Split`).

  Attributes:
    files: every image's path.
    labels: int32 class ids, one per file.
    image_size: the side of the square crops.
    seed: the run's seed, from which each example's crop is drawn.
    decoding: how images are decoded and resized (:class:`~mixjax.data.decode.Options`).
  """
  files: list[str]
  labels: np.ndarray
  image_size: int
  seed: int = 0
  decoding: decode.Options = decode.Options()

  def __len__(self) -> int:
    return len(self.files)

  def load(self, indices: np.ndarray, epoch: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Decodes and crops ``files[indices]``: a training crop of ``epoch``, or ``None``: eval."""
    images = np.empty((len(indices), self.image_size, self.image_size, 3), np.uint8)
    for row, index in enumerate(indices):
      rng = None if epoch is None else decode.example_rng(self.seed, epoch, int(index))
      images[row] = decode.decode_crop(self.files[index], self.files[index],
                                       self.image_size, rng, self.decoding)
    return images, self.labels[indices]


def open_folder(data_dir: str | None, image_size: int, seed: int = 0,
                decoding: decode.Options | None = None
                ) -> tuple[tuple[str, ...], FolderSplit, FolderSplit]:
  """Opens ``data_dir/train`` and ``data_dir/val``: ``(classes, train, val)``."""
  if not data_dir:
    raise ValueError("dataset 'imagefolder' needs data_dir (--config.data_dir=DATA, with "
                     "DATA/train/<class>/*.jpg and DATA/val/<class>/*.jpg).")
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"data_dir {data_dir} does not exist.")
  decoding = decoding or decode.Options()
  classes, train_files, train_labels = scan(os.path.join(data_dir, "train"))
  _, val_files, val_labels = scan(os.path.join(data_dir, "val"), classes)
  return (classes, FolderSplit(train_files, train_labels, image_size, seed, decoding),
          FolderSplit(val_files, val_labels, image_size, seed, decoding))


def find_bad_files(data_dir: str) -> list[tuple[str, str]]:
  """Decodes every image of both splits whole: ``(path, error)`` for each one that fails."""
  bad = []
  for split in SPLITS:
    _, files, _ = scan(os.path.join(data_dir, split))
    for path in files:
      try:
        decode.check_image(path, path)
      except decode.ImageError as e:
        bad.append((path, str(e)))
  return bad


if __name__ == "__main__":
  if len(sys.argv) != 2:
    sys.exit("usage: python -m mixjax.data.imagefolder DATA")
  found = find_bad_files(sys.argv[1])
  for path, error in found:
    print(f"{path}: {error}")
  print(f"{len(found)} unreadable image(s).")
  sys.exit(1 if found else 0)
