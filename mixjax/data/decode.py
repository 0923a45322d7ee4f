"""Host-side image decoding and the ImageNet crops, seeded per example (numpy + Pillow).

What a streamed image goes through on the host before it becomes a uint8 row of a batch
(normalisation, flips, CIFAR pad-crops and the mixing run on the device):

* training, the random-resized ("Inception") crop of Szegedy et al. (2015) as torchvision's
  ``RandomResizedCrop`` draws it: up to 10 tries of an area fraction ``s ~ U(0.08, 1)``
  and an aspect ratio ``r`` with ``log r ~ U(log 3/4, log 4/3)``, box ``w = round(√(s·A·r))``,
  ``h = round(√(s·A/r))`` (``A = H·W``) at a uniform position if it fits; otherwise the
  largest centred box whose aspect lies in ``[3/4, 4/3]``. The box is resized to
  ``size × size`` (bilinear; antialiased unless :class:`Options` says otherwise);
* evaluation: the short side resized to ``round(size / 0.875)`` (256 for 224), then the
  central ``size × size``.

A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8: Pillow's ``Image.draft``)
that still leaves the box at least ``size`` pixels on each side, so a 1,200-px photo
cropped to a small box decodes a quarter or an eighth of its pixels. Pixel values then
differ slightly from a full decode followed by the same resize.

Where libjpeg-turbo 3 is installed (:mod:`mixjax.data.turbojpeg`), only the rows and
columns the resize reads are decoded, as tf.data's ``decode_and_crop_jpeg`` does. The
decoded region has a margin beyond the filter's reach, so its pixels are those of
Pillow's full decode; the crops are Pillow's too without antialiasing, and within one
level with it (Pillow's resize rounds its float box arithmetic differently once the box
is offset into the region: about 2 % of the values). A file is decoded whole, with
Pillow, when it is not a JPEG, does not end with the JPEG end marker (a truncated file),
is CMYK, lossless or 12-bit, exceeds Pillow's ``MAX_IMAGE_PIXELS``, or fails to decode
this way; so a damaged file gives Pillow's error, naming it, whichever crop is drawn.

How pixels are made is an :class:`Options`: torchvision's choices by default (the
PyTorch recipes' pixels), or tf.data's (big_vision's, the Flax ImageNet example's),
which cost about half the host CPU per image.
"""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np

from mixjax.data import turbojpeg

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


@dataclasses.dataclass(frozen=True)
class Options:
  """How the host decodes and resizes an image (``config.antialias``, ``config.fast_dct``).

  Attributes:
    antialias: Pillow's antialiased bilinear resize, what torchvision's
      ``RandomResizedCrop`` applies to PIL images; ``False``: bilinear without
      antialiasing, ``tf.image.resize``'s default, through OpenCV's ``cv2.resize``
      (``pip install opencv-python-headless``), about 5× cheaper.
    fast_dct: libjpeg's fast integer inverse DCT (``JDCT_IFAST``, ``tf.io.decode_jpeg``'s
      default) instead of the accurate one (``JDCT_ISLOW``, Pillow's). It applies where
      libjpeg-turbo 3 decodes (:mod:`mixjax.data.turbojpeg`); Pillow always decodes
      accurately.
  """
  antialias: bool = True
  fast_dct: bool = False


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
  except Image.DecompressionBombError as e:  # Over 2 × PIL.Image.MAX_IMAGE_PIXELS.
    raise ImageError(f"{name}: {e}") from e
  except OSError as e:  # Missing, unreadable (permissions), a directory, ...
    raise ImageError(f"cannot read {name}: {e}") from e


# What Pillow calls a JPEG it can draft (decode at a DCT scale): MPO is a phone's JPEG
# with a second image appended, whose first image is decoded.
_JPEG_FORMATS = ("JPEG", "MPO")


def _turbojpeg_header(encoded: bytes) -> turbojpeg.Header | None:
  """The header, where libjpeg-turbo 3 decodes this file: a JPEG that ends with its end
  marker (a truncated one does not) and is within Pillow's ``MAX_IMAGE_PIXELS``."""
  if encoded[:2] != b"\xff\xd8" or encoded[-2:] != b"\xff\xd9":
    return None
  head = turbojpeg.header(encoded)  # None without libjpeg-turbo 3.
  if head is not None:
    from PIL import Image
    if Image.MAX_IMAGE_PIXELS and head.width * head.height > Image.MAX_IMAGE_PIXELS:
      return None  # Pillow's decompression-bomb check (a warning, or an ImageError).
  return head


def _read(data: bytes | str, name: str) -> bytes:
  if isinstance(data, bytes):
    return data
  try:
    with open(data, "rb") as f:
      return f.read()
  except OSError as e:  # Missing, unreadable (permissions), a directory, ...
    raise ImageError(f"cannot read {name}: {e}") from e


def _draft_request(width: int, height: int, scale: float) -> tuple[int, int] | None:
  """The size asked of ``Image.draft`` to keep ``1/scale`` of each side; None below 2×."""
  return (math.ceil(width / scale), math.ceil(height / scale)) if scale >= 2 else None


def _draft_denom(width: int, height: int, request: tuple[int, int] | None) -> int:
  """The DCT scale ``1/s`` Pillow's ``JpegImageFile.draft`` picks for ``request``."""
  if request is None:
    return 1
  fit = min(width // request[0], height // request[1])
  return next(s for s in (8, 4, 2, 1) if fit >= s)


def _target(width: int, height: int, size: int, rng: np.random.Generator | None):
  """``(box, scale, resized)``: the crop box in the image's pixels, how many pixels per
  output pixel it spans (its shorter side's), and the evaluation's whole-image size
  ``(new_h, new_w)`` (``None`` in training)."""
  if rng is None:
    resized, box = central_box(height, width, size)
    return box, min(width / resized[1], height / resized[0]), resized
  top, left, h, w = inception_box(rng, height, width)
  return (left, top, left + w, top + h), min(w / size, h / size), None


def _round_box(box) -> tuple[int, int, int, int]:
  """The box's corners rounded half up to whole pixels, at least one pixel wide."""
  left, top, right, bottom = (math.floor(v + 0.5) for v in box)
  return left, top, max(right, left + 1), max(bottom, top + 1)


def _region(box, size: int, width: int, height: int, antialias: bool, resized):
  """The pixels to decode: what the resize reads, plus 2 on each side (see turbojpeg)."""
  if resized is not None and not antialias:
    return None  # The evaluation's plain bilinear resizes the whole image.
  if antialias:  # Pillow's bilinear filter reaches max(1, scale) pixels from a centre.
    reach_x = max((box[2] - box[0]) / size, 1.0)
    reach_y = max((box[3] - box[1]) / size, 1.0)
    lo_x, lo_y = math.floor(box[0] - reach_x), math.floor(box[1] - reach_y)
    hi_x, hi_y = math.ceil(box[2] + reach_x), math.ceil(box[3] + reach_y)
  else:  # Plain bilinear reads only the box, rounded to whole pixels by decode_crop.
    lo_x, lo_y, hi_x, hi_y = box
  return (max(lo_x - 2, 0), max(lo_y - 2, 0), min(hi_x + 2, width), min(hi_y + 2, height))


def opencv():
  """OpenCV's ``cv2`` (the ``antialias=False`` resize), or an ImportError saying how to get it."""
  try:
    import cv2
  except ImportError as e:
    raise ImportError("antialias=False resizes with OpenCV: pip install "
                      "opencv-python-headless (or any OpenCV wheel that provides cv2; or keep "
                      "antialias=True, Pillow's).") from e
  return cv2


def _resize(pixels: np.ndarray, box, size: int, antialias: bool, resized) -> np.ndarray:
  """Resizes ``box`` of ``pixels`` (or, evaluating without antialiasing, all of them to
  ``resized`` then the centre) to ``size × size``."""
  if antialias:
    from PIL import Image
    out = Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR, box=box)
    return np.asarray(out, dtype=np.uint8)
  cv2 = opencv()
  if resized is None:  # The box is in whole pixels (decode_crop rounds it).
    left, top, right, bottom = box
    return cv2.resize(pixels[top:bottom, left:right], (size, size),
                      interpolation=cv2.INTER_LINEAR)
  new_h, new_w = resized
  whole = cv2.resize(pixels, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
  top, left = int(round((new_h - size) / 2)), int(round((new_w - size) / 2))
  return np.ascontiguousarray(whole[top:top + size, left:left + size])


def _pillow_pixels(image, request, name: str) -> np.ndarray:
  """Decodes a Pillow image whole (at ``request``'s DCT scale for a JPEG) to RGB."""
  try:
    if image.format in _JPEG_FORMATS and request is not None:
      image.draft("RGB", request)
    return np.asarray(image.convert("RGB"))  # Greyscale, CMYK, palette, alpha → RGB.
  except OSError as e:  # Truncated or corrupt data (Pillow raises at decode time).
    raise ImageError(f"cannot decode {name}: {e}") from e
  finally:
    image.close()


def decode_crop(data: bytes | str, name: str, size: int,
                rng: np.random.Generator | None, options: Options = Options()) -> np.ndarray:
  """Decodes one image and crops it: uint8 ``[size, size, 3]``.

  Args:
    data: the encoded file (bytes) or its path.
    name: what an error calls it (the path, or the record's index).
    size: the output side.
    rng: the example's generator (:func:`example_rng`): a training crop
      (:func:`inception_box`); ``None``: the evaluation crop (:func:`central_box`).
    options: the resize's filter and the DCT (:class:`Options`).

  Raises:
    ImageError: naming ``name``, for a file that is not an image, truncated or
      corrupt, or unreadable.
  """
  encoded = _read(data, name)
  head = _turbojpeg_header(encoded)
  image = None
  if head is None:
    image = open_image(encoded, name)
    width, height = image.size
  else:
    width, height = head.width, head.height
  box, scale, resized = _target(width, height, size, rng)
  request = _draft_request(width, height, scale)
  if image is not None and image.format not in _JPEG_FORMATS:
    request = None
  denom = _draft_denom(width, height, request)
  dw, dh = turbojpeg.scaled(width, denom), turbojpeg.scaled(height, denom)
  fx, fy = dw / width, dh / height
  box = (box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy)
  if not options.antialias and resized is None:
    box = _round_box(box)  # Whole pixels of the decoded image, whichever decoder made it.
  decoded = None
  if head is not None:
    region = _region(box, size, dw, dh, options.antialias, resized)
    decoded = turbojpeg.decode(encoded, head, denom, region, options.fast_dct)
  if decoded is None:
    pixels = _pillow_pixels(image or open_image(encoded, name), request, name)
    if pixels.shape[:2] != (dh, dw):
      raise ImageError(f"{name} decoded to {pixels.shape[1]}×{pixels.shape[0]} pixels, "
                       f"its header says {dw}×{dh} at 1/{denom}.")
    decoded = pixels, 0, 0
  pixels, left, top = decoded
  box = (box[0] - left, box[1] - top, box[2] - left, box[3] - top)
  return _resize(pixels, box, size, options.antialias, resized)


def check_image(data: bytes | str, name: str) -> None:
  """Decodes a whole image with Pillow, raising :class:`ImageError` naming ``name`` if it
  is unreadable, not an image, truncated or corrupt anywhere (a training crop reads only
  the rows it needs)."""
  _pillow_pixels(open_image(_read(data, name), name), None, name)
