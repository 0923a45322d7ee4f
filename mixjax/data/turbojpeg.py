"""Partial JPEG decoding through libjpeg-turbo 3's TurboJPEG API (ctypes), where installed.

tf.data's ``decode_and_crop_jpeg`` decodes only the rows and columns of a crop: libjpeg-turbo
skips the inverse DCT, upsampling and colour conversion of every other block. A
random-resized crop keeps about half of an image on average, so this roughly halves the
host's cost per image. Pillow does not expose it; TurboJPEG 3 does
(``tj3SetCroppingRegion``, with ``tj3SetScalingFactor`` for the DCT scales 1/2, 1/4, 1/8).

The library comes from, in this order: the ``turbojpeg`` wheel on PyPI (it bundles
libturbojpeg from libjpeg-turbo's 3.0 beta, 2.1.92; ``mixjax[train]`` installs it on Linux
x86-64 and macOS), or a system ``libturbojpeg`` of version 3 or later
(``ctypes.util.find_library``). Where neither is found, :func:`available` is ``False`` and
:mod:`mixjax.data.decode` decodes with Pillow. (That wheel's Python module is also named
``turbojpeg``, as PyTurboJPEG's is: with both installed, ``import turbojpeg`` finds the
wheel's. mixjax never imports it; it loads the library file.)

Only 8-bit lossy JPEGs are decoded here. Lossless (SOF3) and 12-bit files go to Pillow:
this library build ignores the scaling factor for lossless files and would write past
the buffer sized for the scaled image.

A decoded region's pixels equal a full decode's except at its own left and right edges,
where libjpeg-turbo's fancy chroma upsampling sees the region's edge as the image's (one
column each side); the caller decodes a margin beyond what it reads.

Any failure, a libjpeg warning included (a truncated or corrupt stream), returns
``None``: the caller then decodes with Pillow, whose verdict (an image or an error naming
the file) stands. ctypes releases the GIL during each call, so decode threads run in
parallel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.metadata
import threading
from typing import NamedTuple

import numpy as np

_INIT_DECOMPRESS = 1  # TJINIT_DECOMPRESS
_PARAM_SUBSAMP, _PARAM_WIDTH, _PARAM_HEIGHT, _PARAM_PRECISION, _PARAM_COLORSPACE = 4, 5, 6, 7, 8
_PARAM_FASTDCT, _PARAM_LOSSLESS = 10, 15
_PIXEL_RGB = 0  # TJPF_RGB
# TJCS_RGB, TJCS_YCbCr, TJCS_GRAY decode to RGB; CMYK and YCCK do not (Pillow does).
_RGB_COLORSPACES = (0, 1, 2)
# The iMCU width in pixels of each TJSAMP_* (444, 422, 420, GRAY, 440, 411, 441).
_MCU_WIDTH = (8, 16, 16, 8, 8, 32, 8)


class _Region(ctypes.Structure):
  _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int),
              ("h", ctypes.c_int)]


class _Scale(ctypes.Structure):
  _fields_ = [("num", ctypes.c_int), ("denom", ctypes.c_int)]


class Header(NamedTuple):
  """A JPEG's size and what its decoder needs to know."""
  width: int
  height: int
  subsampling: int  # TJSAMP_*; -1 for an unusual one (no partial decoding then).
  colorspace: int  # TJCS_*.
  precision: int  # Bits per sample: 8 (decoded here), 12 or 16 (Pillow's).
  lossless: int  # 1 for a lossless (SOF3) JPEG (Pillow's).


def _candidates():
  try:
    for file in importlib.metadata.distribution("turbojpeg").files or ():
      name = file.name
      if name.startswith("libturbojpeg") and (".so" in name or name.endswith(".dylib")):
        yield str(file.locate())
  except importlib.metadata.PackageNotFoundError:
    pass
  system = ctypes.util.find_library("turbojpeg")
  if system:
    yield system


@functools.cache
def _library():
  """The first libturbojpeg with the TurboJPEG 3 API, its signatures declared; or None."""
  for path in _candidates():
    try:
      lib = ctypes.CDLL(path)
    except OSError:
      continue
    if not hasattr(lib, "tj3Init") or not hasattr(lib, "tj3SetCroppingRegion"):
      continue  # TurboJPEG 2 (Debian 12, Ubuntu 24.04's libturbojpeg0) has no tj3 API.
    handle, buf, size = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
    lib.tj3Init.restype, lib.tj3Init.argtypes = handle, [ctypes.c_int]
    lib.tj3Destroy.restype, lib.tj3Destroy.argtypes = None, [handle]
    lib.tj3DecompressHeader.argtypes = [handle, buf, size]
    lib.tj3Get.argtypes = [handle, ctypes.c_int]
    lib.tj3Set.argtypes = [handle, ctypes.c_int, ctypes.c_int]
    lib.tj3SetScalingFactor.argtypes = [handle, _Scale]
    lib.tj3SetCroppingRegion.argtypes = [handle, _Region]
    lib.tj3Decompress8.argtypes = [handle, buf, size, ctypes.c_void_p, ctypes.c_int,
                                   ctypes.c_int]
    return lib
  return None


def available() -> bool:
  """Whether a TurboJPEG 3 library was found (see the module docstring)."""
  return _library() is not None


class _Handle:
  """One decompressor per thread (a TurboJPEG handle is not thread-safe), freed with it."""

  def __init__(self, lib):
    self.lib, self.handle = lib, lib.tj3Init(_INIT_DECOMPRESS)

  def __del__(self):
    if self.handle:
      self.lib.tj3Destroy(self.handle)


_local = threading.local()


def _handle():
  lib = _library()
  if lib is None:
    return None, None
  state = getattr(_local, "state", None)
  if state is None:
    state = _local.state = _Handle(lib)
  return lib, state.handle


def header(data: bytes) -> Header | None:
  """Reads a JPEG's header: its size, subsampling and colour space; ``None`` on failure."""
  lib, handle = _handle()
  if handle is None or lib.tj3DecompressHeader(handle, data, len(data)):
    return None
  return Header(*(lib.tj3Get(handle, p) for p in (
      _PARAM_WIDTH, _PARAM_HEIGHT, _PARAM_SUBSAMP, _PARAM_COLORSPACE, _PARAM_PRECISION,
      _PARAM_LOSSLESS)))


def scaled(size: int, denom: int) -> int:
  """A side decoded at scale ``1/denom``: ``ceil(size / denom)`` (TurboJPEG's and Pillow's)."""
  return -(-size // denom)


def decode(data: bytes, head: Header, denom: int = 1,
           region: tuple[int, int, int, int] | None = None, fast_dct: bool = False
           ) -> tuple[np.ndarray, int, int] | None:
  """Decodes a JPEG's region at scale ``1/denom`` to RGB: ``(pixels, left, top)``.

  Args:
    data: the encoded JPEG.
    head: its :func:`header`.
    denom: 1, 2, 4 or 8.
    region: ``(left, top, right, bottom)`` in the scaled image's pixels, within it;
      ``None``: the whole image. ``left`` is moved down to a multiple of the scaled iMCU
      width (TurboJPEG decodes whole iMCU columns), so the pixels may start left of it.
    fast_dct: libjpeg's fast integer inverse DCT (``JDCT_IFAST``: tf.data's
      ``decode_jpeg`` default) instead of the accurate one (``JDCT_ISLOW``: Pillow's).

  Returns:
    uint8 ``[bottom - top, right - left', 3]`` and the scaled image's coordinates
    ``(left', top)`` of its first pixel; ``None`` when the data cannot be decoded this way
    (see the module docstring).
  """
  lib, handle = _handle()
  if (handle is None or head.colorspace not in _RGB_COLORSPACES or head.precision != 8
      or head.lossless or not 0 <= head.subsampling < len(_MCU_WIDTH)):
    return None
  width, height = scaled(head.width, denom), scaled(head.height, denom)
  left, top, right, bottom = region if region is not None else (0, 0, width, height)
  if not (0 <= left < right <= width and 0 <= top < bottom <= height):
    raise ValueError(f"region {region} is not inside the {width}×{height} image "
                     f"decoded at 1/{denom}.")
  mcu = max(_MCU_WIDTH[head.subsampling] // denom, 1)
  left -= left % mcu
  # The scale and region are checked against the header last read on this handle; the
  # buffer below is sized from ``head``, so it must be this data's.
  if header(data) != head:
    raise ValueError(f"head {head} is not this JPEG's header.")
  if (lib.tj3SetScalingFactor(handle, _Scale(1, denom))
      or lib.tj3Set(handle, _PARAM_FASTDCT, int(fast_dct))):
    return None
  full = (left, top, right, bottom) == (0, 0, width, height)
  if lib.tj3SetCroppingRegion(handle, _Region(0, 0, 0, 0) if full else
                              _Region(left, top, right - left, bottom - top)):
    return None
  pixels = np.empty((bottom - top, right - left, 3), np.uint8)
  if lib.tj3Decompress8(handle, data, len(data), pixels.ctypes.data, pixels.strides[0],
                        _PIXEL_RGB):
    return None  # An error, or a warning (a truncated or corrupt stream).
  return pixels, left, top
