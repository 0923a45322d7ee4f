"""A small image folder in torchvision's ImageFolder layout, made on the fly for tests."""

import os

from PIL import Image

COLOURS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "emu": (30, 30, 200)}
TRAIN_PER_CLASS, VAL_PER_CLASS = 5, 2


def make_folder(root, train_per_class: int = TRAIN_PER_CLASS,
                val_per_class: int = VAL_PER_CLASS) -> str:
  """``root/{train,val}/<class>/``: 5 and 2 images per class (by default), JPEG and PNG
  in turn, of varied sizes (40-106 × 40-60), one colour per class. Returns ``root``."""
  for split, count in (("train", train_per_class), ("val", val_per_class)):
    for c, (name, colour) in enumerate(COLOURS.items()):
      for i in range(count):
        size = (40 + 13 * (i % 5) + 7 * c, 60 - 5 * (i % 5))
        ext, fmt = ("png", "PNG") if i % 2 else ("jpg", "JPEG")
        path = os.path.join(str(root), split, name, f"{i}.{ext}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.new("RGB", size, colour).save(path, format=fmt)
  return str(root)
