"""Tests for host decoding: partial JPEG decoding (libjpeg-turbo 3) and the two resize filters.

Pillow's full decode is the reference: the partial decoder must give its pixels, and a
crop through it the crop Pillow gives. Small photos (scikit-learn's samples, cut and
re-encoded in several JPEG flavours): milliseconds each, no jit.
"""

import io
import platform
import sys

import numpy as np
import pytest
from PIL import Image

from mixjax import data
from mixjax.data import decode, turbojpeg
from tests.image_folders import make_folder

needs_turbojpeg = pytest.mark.skipif(not turbojpeg.available(),
                                     reason="no libjpeg-turbo 3 here (the turbojpeg wheel)")


@pytest.fixture(scope="module")
def photo():
  from sklearn.datasets import load_sample_images
  return load_sample_images().images[0]  # 427 × 640 RGB.


def _jpeg(pixels, **options) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format="JPEG", quality=90, **options)
  return buf.getvalue()


def _flavours(photo):
  """JPEGs in every chroma subsampling, greyscale, progressive, odd sizes, and 1,280 px."""
  big = np.asarray(Image.fromarray(photo).resize((1280, 853)))
  return {
      "420": _jpeg(photo[:333, :500], subsampling="4:2:0"),
      "422": _jpeg(photo[:375, :499], subsampling="4:2:2"),
      "444": _jpeg(photo[:301, :457], subsampling="4:4:4"),
      "grey": _jpeg(photo[:300, :400].mean(-1).astype(np.uint8)),
      "progressive": _jpeg(photo[:375, :500], progressive=True),
      "big": _jpeg(big),
  }


def _pillow(encoded, request=None):
  image = Image.open(io.BytesIO(encoded))
  if request:
    image.draft("RGB", request)
  return np.asarray(image.convert("RGB"))


@pytest.fixture
def without_turbojpeg(monkeypatch):
  """decode_crop as without libjpeg-turbo 3: Pillow decodes every image whole."""
  monkeypatch.setattr(turbojpeg, "header", lambda encoded: None)


def test_turbojpeg_is_found_where_its_wheel_installs():
  if sys.version_info < (3, 14) and (platform.system() == "Darwin" or (
      platform.system() == "Linux" and platform.machine() == "x86_64")):
    assert turbojpeg.available(), "mixjax[train] installs turbojpeg here; its library is lost"


@needs_turbojpeg
def test_partial_decode_is_the_full_decode_inside_its_edges(photo):
  """A region's pixels are Pillow's full decode's, at every DCT scale, but for its own
  first and last column where those are not the image's (fancy upsampling's edge)."""
  rng = np.random.default_rng(0)
  for name, encoded in _flavours(photo).items():
    head = turbojpeg.header(encoded)
    assert (head.width, head.height) == Image.open(io.BytesIO(encoded)).size
    for denom in (1, 2, 4, 8):
      width, height = turbojpeg.scaled(head.width, denom), turbojpeg.scaled(head.height, denom)
      # Pillow's draft at this scale (its rule: the largest scale that keeps the request).
      full = _pillow(encoded, (head.width // denom, head.height // denom) if denom > 1 else None)
      assert full.shape[:2] == (height, width), (name, denom)
      whole, left, top = turbojpeg.decode(encoded, head, denom)
      np.testing.assert_array_equal(whole, full, err_msg=f"{name} 1/{denom}")
      for _ in range(4):
        x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
        x1, y1 = rng.integers(x0 + 4, width + 1), rng.integers(y0 + 1, height + 1)
        pixels, left, top = turbojpeg.decode(encoded, head, denom, (x0, y0, x1, y1))
        assert left <= x0 and x0 - left < 32 and top == y0, (name, denom)
        assert pixels.shape == (y1 - y0, x1 - left, 3)
        want = full[y0:y1, left:x1]
        first = 0 if left == 0 else 1
        last = pixels.shape[1] if x1 == width else -1
        np.testing.assert_array_equal(pixels[:, first:last], want[:, first:last],
                                      err_msg=f"{name} 1/{denom} region {(x0, y0, x1, y1)}")
        assert np.abs(pixels.astype(int) - want).max() <= 32  # The edge columns: close.


@needs_turbojpeg
def test_fast_dct_is_a_different_close_decode(photo):
  """fast_dct switches libjpeg's inverse DCT to the fast integer one (tf.io.decode_jpeg's
  default, which matches it exactly: checked by hand, TensorFlow is too slow to import
  here): other pixels, within a few levels of the accurate ones."""
  encoded = _flavours(photo)["420"]
  head = turbojpeg.header(encoded)
  accurate, _, _ = turbojpeg.decode(encoded, head)
  fast, _, _ = turbojpeg.decode(encoded, head, fast_dct=True)
  again, _, _ = turbojpeg.decode(encoded, head, fast_dct=True)
  np.testing.assert_array_equal(fast, again)
  diff = np.abs(fast.astype(int) - accurate)
  assert diff.any() and diff.max() <= 8 and diff.mean() < 2, (diff.max(), diff.mean())
  # And the accurate DCT is back on the next call (the setting is per call).
  np.testing.assert_array_equal(turbojpeg.decode(encoded, head)[0], accurate)


@needs_turbojpeg
@pytest.mark.parametrize("size", [224, 40])
def test_decode_crop_through_turbojpeg_is_pillows_crop(photo, size, monkeypatch):
  """The same boxes, DCT scales and filter as Pillow's full decode. Pillow's resize rounds
  its float box arithmetic differently once the box is offset into a decoded region, so
  about 2 % of values differ, by one level: bounded here at 5 % and 1."""
  flavours = _flavours(photo)
  fast = {(name, epoch): decode.decode_crop(
      encoded, name, size, None if epoch is None else decode.example_rng(0, epoch, 0))
      for name, encoded in flavours.items() for epoch in (None, 0, 1, 2)}
  monkeypatch.setattr(turbojpeg, "header", lambda encoded: None)
  differing = total = 0
  for (name, epoch), got in fast.items():
    rng = None if epoch is None else decode.example_rng(0, epoch, 0)
    want = decode.decode_crop(flavours[name], name, size, rng)
    assert got.shape == want.shape == (size, size, 3)
    diff = np.abs(got.astype(int) - want)
    assert diff.max() <= 1, (name, epoch)
    differing, total = differing + (diff > 0).sum(), total + diff.size
  assert differing <= 0.05 * total


def _outcome(encoded, size, rng, options):
  try:
    return decode.decode_crop(encoded, "x", size, rng, options)
  except decode.ImageError as e:
    return str(e)


@needs_turbojpeg
def test_every_decoder_path_gives_pillows_crop(photo, monkeypatch):
  """Without antialiasing the crops are Pillow's exactly, DCT scales included (the box is
  rounded once, in the decoded image's pixels); MPO files (a phone's JPEG with a second
  image) are drafted as Pillow drafts them; lossless JPEGs, which this libjpeg-turbo
  build would decode past its buffer at a DCT scale, go to Pillow (whose verdict, a crop
  or an error naming the file, stands)."""
  import importlib
  wheel = importlib.import_module("turbojpeg")  # The turbojpeg wheel's own module.
  big = Image.fromarray(photo).resize((1600, 1068))
  mpo = io.BytesIO()
  big.save(mpo, format="MPO", save_all=True, append_images=[Image.fromarray(photo)])
  lossless = wheel.compress(np.ascontiguousarray(photo[:300, :400]), 100, wheel.SAMP.Y444,
                            lossless=True)
  assert turbojpeg.header(lossless).lossless
  files = {**_flavours(photo), "mpo": mpo.getvalue(), "lossless": lossless}
  plain, antialiased = decode.Options(antialias=False), decode.Options()
  cases = [(name, size, epoch, options) for name in files for size in (64, 150)
           for epoch in (None, 0, 1, 2) for options in (plain, antialiased)]

  def outcomes():
    return [_outcome(files[name], size, None if epoch is None else
                     decode.example_rng(0, epoch, 1), options)
            for name, size, epoch, options in cases]

  fast = outcomes()
  monkeypatch.setattr(turbojpeg, "header", lambda encoded: None)
  for case, got, want in zip(cases, fast, outcomes(), strict=True):
    if isinstance(want, str) or case[3] is plain:
      np.testing.assert_array_equal(got, want, err_msg=str(case))
    else:
      assert np.abs(got.astype(int) - want).max() <= 1, case


def _bilinear(pixels, out_h, out_w):
  """tf.image.resize's bilinear without antialiasing (half-pixel centres, edges clamped),
  in float64 numpy, rounded."""
  def taps(n_in, n_out):
    x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(x).astype(int)
    return lo, np.minimum(lo + 1, n_in - 1), x - lo
  y0, y1, fy = taps(pixels.shape[0], out_h)
  x0, x1, fx = taps(pixels.shape[1], out_w)
  p = pixels.astype(np.float64)
  rows = p[y0] * (1 - fy)[:, None, None] + p[y1] * fy[:, None, None]
  out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
  return np.round(out)


@pytest.mark.parametrize("turbo", [True, False])
def test_decode_crop_without_antialiasing_is_tf_datas_bilinear(photo, turbo, monkeypatch):
  """antialias=False: the crop (training) or the whole image (evaluation, then its centre)
  resized by plain bilinear interpolation, as tf.image.resize does by default."""
  if turbo and not turbojpeg.available():
    pytest.skip("no libjpeg-turbo 3 here")
  if not turbo:
    monkeypatch.setattr(turbojpeg, "header", lambda encoded: None)
  encoded = _flavours(photo)["420"]
  full = _pillow(encoded)
  plain = decode.Options(antialias=False)
  for epoch in range(4):  # Crops of at most 333 px: under 2× 200, so no DCT scaling.
    top, left, h, w = decode.inception_box(decode.example_rng(0, epoch, 5), *full.shape[:2])
    got = decode.decode_crop(encoded, "x", 200, decode.example_rng(0, epoch, 5), plain)
    assert np.abs(got - _bilinear(full[top:top + h, left:left + w], 200, 200)).max() <= 1
  got = decode.decode_crop(encoded, "x", 200, None, plain)
  (new_h, new_w), _ = decode.central_box(*full.shape[:2], 200)
  whole = _bilinear(full, new_h, new_w)
  top, left = round((new_h - 200) / 2), round((new_w - 200) / 2)
  assert np.abs(got - whole[top:top + 200, left:left + 200]).max() <= 1


def test_cmyk_and_pngs_decode_with_pillow(photo, monkeypatch):
  """What libjpeg-turbo cannot turn into RGB (CMYK) and what is not a JPEG: Pillow, whole."""
  buf = io.BytesIO()
  Image.fromarray(photo[:200, :300]).convert("CMYK").save(buf, format="JPEG")
  png = io.BytesIO()
  Image.fromarray(photo[:200, :300]).save(png, format="PNG")
  rngs = lambda: [None, decode.example_rng(1, 0, 0)]  # noqa: E731
  got = [decode.decode_crop(b, "x", 48, r) for b in (buf.getvalue(), png.getvalue())
         for r in rngs()]
  monkeypatch.setattr(turbojpeg, "header", lambda encoded: None)
  want = [decode.decode_crop(b, "x", 48, r) for b in (buf.getvalue(), png.getvalue())
          for r in rngs()]
  for g, w in zip(got, want, strict=True):
    np.testing.assert_array_equal(g, w)


def test_a_jpeg_cut_short_below_the_crop_is_still_an_error(photo, tmp_path):
  """The centre crop never reads the last rows, but a file without its end marker is
  decoded whole, by Pillow: the error names it, whichever crop is drawn."""
  path = tmp_path / "cut.jpg"
  encoded = _jpeg(photo[:400, :400])
  path.write_bytes(encoded[:int(len(encoded) * 0.97)])
  for rng in (None, decode.example_rng(0, 0, 0)):
    with pytest.raises(decode.ImageError, match="cut.jpg"):
      decode.decode_crop(str(path), str(path), 64, rng)
  with pytest.raises(decode.ImageError, match="cut.jpg"):
    decode.check_image(str(path), str(path))


def test_decode_options_reach_the_splits_and_plain_bilinear_needs_opencv(tmp_path, monkeypatch):
  make_folder(tmp_path)
  plain = data.DecodeOptions(antialias=False, fast_dct=True)
  source = data.open_source("imagefolder", str(tmp_path), image_size=8, decoding=plain)
  assert source.train.decoding == source.test.decoding == plain
  images, _ = source.train.load(np.arange(3), 0)
  assert images.shape == (3, 8, 8, 3)
  monkeypatch.setitem(sys.modules, "cv2", None)  # As if OpenCV were not installed.
  with pytest.raises(ImportError, match="opencv-python-headless"):
    data.open_source("imagefolder", str(tmp_path), image_size=8, decoding=plain)
  assert data.open_source("imagefolder", str(tmp_path), image_size=8).train.decoding == (
      data.DecodeOptions(antialias=True, fast_dct=False))
