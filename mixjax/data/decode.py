"""Host-side image decoding and the ImageNet crops, seeded per example (numpy + Pillow).

What a streamed image goes through on the host before it becomes a uint8 row of a batch
(normalisation, flips, CIFAR pad-crops and the mixing run on the device):

* training, the random-resized ("Inception") crop of Szegedy et al. (2015) as torchvision's
  ``RandomResizedCrop`` draws it: up to 10 tries of an area fraction ``s ~ U(0.08, 1)``
  and an aspect ratio ``r`` with ``log r ~ U(log 3/4, log 4/3)``, box ``w = round(√(s·A·r))``,
  ``h = round(√(s·A/r))`` (``A = H·W``) at a uniform position if it fits; otherwise the
  largest centred box whose aspect lies in ``[3/4, 4/3]``. The box is resized to
  ``size × size`` (bilinear, antialiased);
* evaluation: the short side resized to ``round(size / 0.875)`` (256 for 224), then the
  central ``size × size``.

A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8: Pillow's ``Image.draft``)
that still leaves the box at least ``size`` pixels on each side, so a 500 × 375 ImageNet
photo cropped to a small box decodes a quarter or an eighth of its pixels. Pixel values
then differ slightly from a full decode followed by the same resize.
"""

from __future__ import annotations

import io
import math

import numpy as np

# torchvision.transforms.RandomResizedCrop's defaults (also big_vision's inception_crop).
AREA_RANGE = (0.08, 1.0)
ASPECT_RANGE = (3 / 4, 4 / 3)
CROP_TRIES = 10
EVAL_CROP_FRACTION = 0.875  # 224 of 256: the ResNet/DeiT evaluation crop.


def example_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
  """Example ``index``'s host randomness in epoch ``epoch``: ``default_rng([seed, epoch, index])``.

  A function of these three numbers only, so it does not change with the number of
  worker processes, threads or hosts that read the data.
  """
  return np.random.default_rng([seed, epoch, index])


def inception_box(rng: np.random.Generator, height: int, width: int,
                  area_range=AREA_RANGE, aspect_range=ASPECT_RANGE,
                  tries: int = CROP_TRIES) -> tuple[int, int, int, int]:
  """A random-resized crop box ``(top, left, h, w)`` in a ``height × width`` image.

  The algorithm of torchvision's ``RandomResizedCrop.get_params`` (see the module
  docstring); all draws come from ``rng``.
  """
  area = height * width
  log_lo, log_hi = math.log(aspect_range[0]), math.log(aspect_range[1])
  for _ in range(tries):
    target = area * rng.uniform(*area_range)
    aspect = math.exp(rng.uniform(log_lo, log_hi))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      top = int(rng.integers(0, height - h + 1))
      left = int(rng.integers(0, width - w + 1))
      return top, left, h, w
  ratio = width / height  # Fallback: the centred box of the nearest allowed aspect.
  if ratio < aspect_range[0]:
    w, h = width, int(round(width / aspect_range[0]))
  elif ratio > aspect_range[1]:
    h, w = height, int(round(height * aspect_range[1]))
  else:
    h, w = height, width
  return (height - h) // 2, (width - w) // 2, h, w


def central_box(height: int, width: int, size: int) -> tuple[tuple[int, int], tuple[float, ...]]:
  """The evaluation resize and crop: ``((new_h, new_w), box)`` in original pixels.

  The short side goes to ``round(size / 0.875)`` (the long side keeps the aspect,
  rounded down as torchvision's ``Resize`` does), then the central ``size × size`` is
  kept; ``box`` is that square as ``(left, top, right, bottom)`` in the original
  image's coordinates.
  """
  short = int(round(size / EVAL_CROP_FRACTION))
  if height <= width:
    new_h, new_w = short, int(short * width / height)
  else:
    new_w, new_h = short, int(short * height / width)
  top, left = int(round((new_h - size) / 2)), int(round((new_w - size) / 2))
  sy, sx = height / new_h, width / new_w
  return (new_h, new_w), (left * sx, top * sy, (left + size) * sx, (top + size) * sy)


class ImageError(ValueError):
  """An image file that cannot be read or decoded; the message names the file."""


def open_image(data: bytes | str, name: str):
  """Opens an encoded image (bytes, or a path) lazily, naming ``name`` on failure."""
  from PIL import Image, UnidentifiedImageError
  try:
    if isinstance(data, bytes):
      return Image.open(io.BytesIO(data))
    return Image.open(data)
  except UnidentifiedImageError as e:
    raise ImageError(f"{name} is not an image Pillow can read (JPEG, PNG, ...): {e}") from e
  except OSError as e:  # Missing, unreadable (permissions), a directory, ...
    raise ImageError(f"cannot read {name}: {e}") from e


def decode_crop(data: bytes | str, name: str, size: int,
                rng: np.random.Generator | None) -> np.ndarray:
  """Decodes one image and crops it: uint8 ``[size, size, 3]``.

  Args:
    data: the encoded file (bytes) or its path.
    name: what an error calls it (the path, or the record's index).
    size: the output side.
    rng: the example's generator (:func:`example_rng`): a training crop
      (:func:`inception_box`); ``None``: the evaluation crop (:func:`central_box`).

  Raises:
    ImageError: naming ``name``, for a file that is not an image, truncated or
      corrupt, or unreadable.
  """
  from PIL import Image
  image = open_image(data, name)
  try:
    width, height = image.size
    if rng is None:
      (new_h, new_w), box = central_box(height, width, size)
      scale = min(width / new_w, height / new_h)
    else:
      top, left, h, w = inception_box(rng, height, width)
      box = (left, top, left + w, top + h)
      scale = min(w / size, h / size)
    if image.format == "JPEG" and scale >= 2:  # Decode at a DCT scale ≥ what is kept.
      image.draft("RGB", (math.ceil(width / scale), math.ceil(height / scale)))
      fx, fy = image.size[0] / width, image.size[1] / height
      box = (box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy)
    image = image.convert("RGB")  # Decodes; greyscale, CMYK, palette and alpha → RGB.
    out = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
  except OSError as e:  # Truncated or corrupt data (Pillow raises at decode time).
    raise ImageError(f"cannot decode {name}: {e}") from e
  finally:
    image.close()
  return np.asarray(out, dtype=np.uint8)
