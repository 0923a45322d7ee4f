"""SaliencyMix: spectral-residual saliency against numpy (and OpenCV), peaks, boxes, modes."""

import functools
import importlib
import math
import os
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from mixjax import boxes as boxes_lib
from tests.tolerances import assert_close_in_ulps, ulps_apart

# The module, not the function mx.saliencymix that the package exports under its name.
saliencymix = importlib.import_module("mixjax.saliencymix")

# The batch of the tests that draw boxes (B, H, W; RGB): one shape, so that the programs
# their eager draws compile (every primitive, per shape) serve them all.
DRAW_SHAPE = (12, 32, 40)


# Compiled draws shared by the tests (one program per static option, whichever test asks
# first); the eager draws they are compared with stay eager.
@functools.partial(jax.jit, static_argnames=("mode", "saliency"))
def _jitted_boxes_and_mix(key, images, mode, saliency):
  """sample_saliencymix_boxes compiled, and saliencymix (labels i % 3) of the same key in
  the same program, which shares the draw's saliency maps (one compile for both)."""
  labels = jnp.arange(images.shape[0]) % 3
  return (saliencymix.sample_saliencymix_boxes(key, images, mode=mode, saliency=saliency),
          saliencymix.saliencymix(key, images, labels, num_classes=3, mode=mode,
                                  saliency=saliency))


@functools.partial(jax.jit, static_argnames="saliency")
def _vmapped_elem_boxes(keys, stacked, saliency):
  """sample_saliencymix_boxes(mode="elem") vmapped over keys and batches, compiled."""
  return jax.vmap(lambda k, x: saliencymix.sample_saliencymix_boxes(
      k, x, mode="elem", saliency=saliency))(keys, stacked)


# --- OpenCV's StaticSaliencySpectralResidual (opencv_contrib 65fc3f1), numpy float64. -----


def _resize(x, oh, ow):
  """cv2.resize(INTER_LINEAR): half-pixel centres, edges replicated."""
  h, w = x.shape

  def taps(out, size):
    s = np.clip((np.arange(out) + 0.5) * (size / out) - 0.5, 0, None)
    i0 = np.minimum(np.floor(s).astype(int), size - 1)
    return i0, np.minimum(i0 + 1, size - 1), s - i0

  r0, r1, fr = taps(oh, h)
  c0, c1, fc = taps(ow, w)
  top = x[r0][:, c0] * (1 - fc) + x[r0][:, c1] * fc
  bottom = x[r1][:, c0] * (1 - fc) + x[r1][:, c1] * fc
  return top * (1 - fr[:, None]) + bottom * fr[:, None]


def _filter(x, k):
  """sepFilter2D with BORDER_REFLECT_101 (numpy's "reflect")."""
  r = len(k) // 2
  x = np.pad(x, r, mode="reflect")
  h, w = x.shape[0] - 2 * r, x.shape[1] - 2 * r
  x = sum(kk * x[i:i + h] for i, kk in enumerate(k))
  return sum(kk * x[:, i:i + w] for i, kk in enumerate(k))


def _ref_saliency(image):
  """computeSaliencyImpl: grey (RGB), 64×64, log(|F| + 1) minus its 3×3 mean, phase kept,
  |IDFT|, GaussianBlur(5×5, σ = 8), squared, / max, resized back."""
  image = np.asarray(image, np.float64)
  grey = image if image.ndim == 2 else image @ np.array([0.299, 0.587, 0.114])
  grey = _resize(grey, 64, 64)
  spectrum = np.fft.fft2(grey)
  log_amplitude = np.log(np.abs(spectrum) + 1)
  residual = np.exp(log_amplitude - _filter(log_amplitude, np.full(3, 1 / 3)))
  residual = residual * np.exp(1j * np.angle(spectrum))
  saliency = np.abs(np.fft.ifft2(residual))
  k = np.exp(-(np.arange(5) - 2.0) ** 2 / (2 * 8.0 ** 2))
  saliency = _filter(saliency, k / k.sum()) ** 2
  return _resize(saliency / saliency.max(), *image.shape[:2])


def _ref_peak(saliency_map):
  """saliency_bbox, lines 204–206: first argmax of (map·255).astype(uint8)."""
  quantised = (saliency_map * 255).astype("uint8")
  return np.unravel_index(np.argmax(quantised, axis=None), quantised.shape)


def _images(n, h, w, c=3, seed=0):
  """Smooth random scenes: a few Gaussian blobs of random colours over noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:h, :w]
  out = 0.1 * rng.uniform(size=(n, h, w, c))
  for i in range(n):
    for _ in range(3):
      cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.05, 0.2) * min(h, w)
      blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
      out[i] += blob[..., None] * rng.uniform(0.2, 1.0, size=c)
  return out.astype(np.float32)


def _map_ulps(image):
  """Tolerance of a float32 map, in ulps of its maximum (1), for one image.

  A float32 FFT of N = 64² points errs by about log2(N)·ε·‖F‖₂ over all coefficients,
  spread over them: |δF_k| ≈ log2(N)·ε·‖F‖₂/√N = log2(N)·ε·‖g‖₂ (Parseval, g the
  64×64 grey image). Through L = log(|F| + 1), |δL_k| ≤ |δF_k|/(|F_k| + 1) ≤ |δF_k|;
  L − box(L) at most doubles it, the residual R = exp(·) carries it as a relative error,
  the inverse FFT adds as much again, and squaring doubles the total: 8·log2(N)·ε·‖g‖₂
  relative to the map's maximum, plus 32 ulps for the filters, resizes and the
  normalisation. Measured: at most half of this on the test images.
  """
  image = np.asarray(image, np.float64)
  grey = image if image.ndim == 2 else image @ np.array([0.299, 0.587, 0.114])
  norm = np.sqrt(np.sum(_resize(grey, 64, 64) ** 2))
  return 8 * 12 * norm + 32


@pytest.mark.parametrize("shape", [(16, 32, 32, 3), (4, 224, 224, 3), (6, 20, 28, 1),
                                   (5, 40, 24)],
                         ids=["cifar", "imagenet", "grey-20x28", "rank3-40x24"])
def test_saliency_maps_match_numpy_reference(shape):
  n, h, w = shape[:3]
  c = shape[3] if len(shape) == 4 else 1
  images = _images(n, h, w, c, seed=n)
  if len(shape) == 3:
    images = images[..., 0]
  maps = np.asarray(saliencymix.saliency_maps(jnp.asarray(images)))
  assert maps.shape == (n, h, w) and maps.dtype == np.float32
  worst = 0.0
  for i in range(n):
    image = images[i] if len(shape) == 3 or c == 3 else images[i, ..., 0]
    ref = _ref_saliency(image)
    assert_close_in_ulps(maps[i], ref, _map_ulps(image), scale=1.0)
    worst = max(worst, ulps_apart(maps[i], ref) / _map_ulps(image))
  assert worst > 1e-3  # The bound is not vacuous: some rounding shows.


def test_saliency_maps_match_opencv():
  """Our numpy reference is OpenCV's: on float images, equal to float32 rounding."""
  cv2 = _cv2()
  images = _images(6, 32, 48, seed=7)
  ours = np.asarray(saliencymix.saliency_maps(jnp.asarray(images)))
  cv_maps = cv2.maps("spectral_residual", [image[..., ::-1] for image in images])  # BGR.
  for i, (image, cv_map) in enumerate(zip(images, cv_maps, strict=True)):
    # OpenCV takes the grey image and its resize in float32 (the input's dtype), then
    # float64: the same front-end rounding as ours, so the same tolerance.
    assert_close_in_ulps(_ref_saliency(image), cv_map, _map_ulps(image), scale=1.0)
    assert_close_in_ulps(ours[i], cv_map, _map_ulps(image), scale=1.0)


def test_saliency_peaks_match_the_reference_argmax():
  """The peak is the reference's first maximum of uint8(255·map), exactly, wherever the
  map's rounding cannot move a pixel across a quantisation step that matters: no value
  of 255·ref within 255·tol of the top bin's edges. Elsewhere it is one of the pixels the
  rounding could have put in the top bin."""
  images = _images(64, 32, 32, seed=3)
  maps = saliencymix.saliency_maps(jnp.asarray(images))
  rows, cols = (np.asarray(v) for v in saliencymix.saliency_peaks(maps))
  clear = 0
  for i in range(64):
    tol = 255 * _map_ulps(images[i]) * np.finfo(np.float32).eps
    ref = _ref_saliency(images[i]) * 255
    top = np.floor(ref.max())
    near_edge = (np.abs(ref - top) < tol) | (np.abs(ref - (top + 1)) < tol)
    if not near_edge.any():
      clear += 1
      assert (rows[i], cols[i]) == _ref_peak(ref / 255), i
    else:
      assert ref[rows[i], cols[i]] > top - tol, i
  assert clear > 56  # Nearly all are exact comparisons.


@pytest.mark.parametrize("shape", [(64, 64), (5, 7), (6, 5), (3, 2), (1, 1)])
def test_real_fft2_is_fft2(shape):
  """rfft2 plus Hermitian symmetry is the full fft2 (even and odd sides): within
  log2(N·M) + 2 ulps of the spectrum's scale, sum |x|, against float64 numpy."""
  x = np.random.default_rng(sum(shape)).random((3,) + shape).astype(np.float32)
  got = np.asarray(saliencymix._real_fft2(jnp.asarray(x)))
  want = np.fft.fft2(x.astype(np.float64))
  assert got.shape == want.shape
  ulps = math.log2(x[0].size) + 2
  for part in (np.real, np.imag):
    assert_close_in_ulps(part(got), part(want), ulps, scale=np.abs(x).sum(axis=(1, 2)).max())


@pytest.mark.parametrize("fast", [True, False], ids=["one-max", "argmax"])
def test_saliency_peaks_is_numpy_argmax_of_the_uint8_map(fast, monkeypatch):
  """Exactly the reference's np.argmax of uint8(255·map): first maximum in row-major
  order, on maps full of ties (few levels), values outside [0, 1] clipped, constant maps;
  both the one-integer-max path and the argmax path it takes past 2^23 pixels."""
  if not fast:
    monkeypatch.setattr(saliencymix, "_INDEX_LIMIT", 16)
  rng = np.random.default_rng(4)
  maps = rng.integers(0, 6, size=(40, 24, 36)) / 5.0 * 1.1 - 0.05   # ties everywhere
  maps[0] = 0.5
  maps[1] = 1.0
  maps[2, -1, -1] = 2.0   # clipped to 1: the last pixel among earlier 1s is not first
  maps = maps.astype(np.float32)
  rows, cols = (np.asarray(v) for v in saliencymix.saliency_peaks(jnp.asarray(maps)))
  for i in range(len(maps)):
    want = np.argmax((np.clip(maps[i], 0, 1) * 255).astype("uint8"))
    assert (rows[i], cols[i]) == divmod(want, maps.shape[2]), i


@pytest.mark.parametrize("size", [(32, 32), (224, 224), (40, 64)])
def test_peak_finds_a_small_bright_square(size):
  """The use SaliencyMix makes of the map: on a flat noisy background, the peak lies on
  a small bright square (spectral residual lights its corners), to within one pixel of
  the 64×64 map's resolution."""
  h, w = size
  rng = np.random.default_rng(0)
  images = 0.3 + 0.02 * rng.uniform(size=(8, h, w, 3))
  r = max(1, h // 16)
  centres = []
  for i in range(8):
    cy, cx = rng.integers(h // 8, h - h // 8), rng.integers(w // 8, w - w // 8)
    images[i, cy - r:cy + r, cx - r:cx + r] = 1.0
    centres.append((cy, cx))
  maps = saliencymix.saliency_maps(jnp.asarray(images, jnp.float32))
  rows, cols = (np.asarray(v) for v in saliencymix.saliency_peaks(maps))
  slack = -(-max(h, w) // 64)
  for (cy, cx), y, x in zip(centres, rows, cols, strict=True):
    assert abs(y - cy) <= r + slack and abs(x - cx) <= r + slack


def test_boxes_at_is_the_reference_rand_bbox_rule():
  """With sample_boxes' own centres, boxes_at gives sample_boxes' boxes bit for bit."""
  h, w = 20, 30
  lam = jnp.asarray(np.random.default_rng(0).uniform(size=500), jnp.float32)
  key = jax.random.key(1)
  key_y, key_x = jax.random.split(key)  # sample_boxes' draw of the centres.
  cy = jax.random.randint(key_y, (500,), 0, h, dtype=jnp.int32)
  cx = jax.random.randint(key_x, (500,), 0, w, dtype=jnp.int32)
  np.testing.assert_array_equal(saliencymix.boxes_at(cy, cx, lam, h, w),
                                boxes_lib.sample_boxes(key, lam, h, w, "reference"))


def _ref_saliency_bbox(saliency_map, lam):
  """saliency_bbox (lines 191–214) with the map given; rows are size[1] of CHW."""
  rows, cols = saliency_map.shape
  cut_rat = np.sqrt(1. - lam)
  cut_w, cut_h = int(rows * cut_rat), int(cols * cut_rat)
  x, y = _ref_peak(saliency_map)
  return (np.clip(x - cut_w // 2, 0, rows), np.clip(y - cut_h // 2, 0, cols),
          np.clip(x + cut_w // 2, 0, rows), np.clip(y + cut_h // 2, 0, cols))


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_boxes_centre_on_the_partners_peak(mode):
  b, h, w = DRAW_SHAPE
  images = jnp.asarray(_images(b, h, w, seed=5))
  perm, boxes, lam = saliencymix.sample_saliencymix_boxes(jax.random.key(2), images,
                                                           mode=mode)
  assert perm.dtype == jnp.int32 and boxes.dtype == jnp.int32 and lam.dtype == jnp.float32
  assert perm.shape == (b,) and boxes.shape == (b, 4) and lam.shape == (b,)
  perm, boxes, lam = np.asarray(perm), np.asarray(boxes), np.asarray(lam)
  assert sorted(perm) == list(range(b))
  maps = np.asarray(saliencymix.saliency_maps(images))
  for i in range(b):
    source = perm[0] if mode == "batch" else perm[i]
    # The reference's box for our map and λ (its float64 √(1 − λ) of our float32 λ).
    want = _ref_saliency_bbox(maps[source], float(lam[i]))
    np.testing.assert_array_equal(boxes[i], want)
  if mode == "batch":
    assert (boxes == boxes[0]).all() and (lam == lam[0]).all()
  else:
    assert len(set(lam.tolist())) == b


def test_lambda_is_beta_and_pairings():
  images = jnp.asarray(_images(4000, 8, 8, seed=6))
  _, _, lam = jax.jit(functools.partial(  # Compiled: one program, not one per primitive.
      saliencymix.sample_saliencymix_boxes, alpha=0.7, mode="elem"))(jax.random.key(3), images)
  assert stats.kstest(np.asarray(lam), stats.beta(0.7, 0.7).cdf).pvalue > 0.01
  images = jnp.asarray(_images(*DRAW_SHAPE, seed=6))  # The other tests' eager programs.
  perm, _, _ = saliencymix.sample_saliencymix_boxes(jax.random.key(3), images, pairing="flip")
  np.testing.assert_array_equal(perm, np.arange(DRAW_SHAPE[0])[::-1])


def test_dtypes_and_constant_images():
  images = _images(3, 16, 16, seed=8)
  as_uint8 = jnp.asarray(np.clip(images * 255, 0, 255), jnp.uint8)
  maps = saliencymix.saliency_maps(as_uint8)
  assert maps.dtype == jnp.float32 and np.isfinite(np.asarray(maps)).all()
  bf16 = saliencymix.saliency_maps(jnp.asarray(images, jnp.bfloat16))
  assert bf16.dtype == jnp.float32
  flat = saliencymix.saliency_maps(jnp.ones(DRAW_SHAPE + (3,)))  # (The draws' program.)
  assert np.isfinite(np.asarray(flat)).all()  # log(|F| + 1) is finite where F = 0.


def test_jit_and_vmap():
  images = jnp.asarray(_images(*DRAW_SHAPE, seed=9))
  key = jax.random.key(4)
  for mode in ["batch", "elem"]:
    eager = saliencymix.sample_saliencymix_boxes(key, images, mode=mode)
    jitted, _ = _jitted_boxes_and_mix(key, images, mode, "spectral_residual")
    np.testing.assert_array_equal(eager[0], jitted[0], err_msg=mode)
    np.testing.assert_array_equal(eager[1], jitted[1], err_msg=mode)
    # Compiled, XLA may fuse the λ transform differently: 1 ulp of 1.0.
    assert_close_in_ulps(jitted[2], eager[2], 1, scale=1.0, err_msg=mode)
  keys = jax.random.split(key, 3)
  stacked = jnp.stack([images] * 3)
  # vmap, compiled as one program (eager vmap compiles each batched primitive apart).
  perm, boxes, lam = _vmapped_elem_boxes(keys, stacked, "spectral_residual")
  b = DRAW_SHAPE[0]
  assert perm.shape == (3, b) and boxes.shape == (3, b, 4) and lam.shape == (3, b)
  for i in range(3):
    one = saliencymix.sample_saliencymix_boxes(keys[i], images, mode="elem")
    np.testing.assert_array_equal(perm[i], one[0], err_msg=f"key {i}")
    np.testing.assert_array_equal(boxes[i], one[1], err_msg=f"key {i}")
    # Batched, XLA may fuse the λ transform differently: 1 ulp of 1.0.
    assert_close_in_ulps(lam[i], one[2], 1, scale=1.0, err_msg=f"key {i}")


@pytest.mark.parametrize("kwargs,match", [
    ({"alpha": 0.0}, "alpha must be > 0"),
    ({"mode": "pixel"}, "mode must be one of"),
    ({"pairing": "shuffle"}, "pairing must be one of"),
])
def test_bad_hyper_parameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    saliencymix.sample_saliencymix_boxes(jax.random.key(0), jnp.zeros((2, 8, 8, 3)), **kwargs)


def test_bad_images():
  with pytest.raises(ValueError, match="got 2 channels"):
    saliencymix.saliency_maps(jnp.zeros((2, 8, 8, 2)))
  with pytest.raises(ValueError, match="looks channels-first"):
    saliencymix.saliency_maps(jnp.zeros((2, 3, 8, 8)))
  with pytest.raises(ValueError, match="two spatial axes"):
    saliencymix.sample_saliencymix_boxes(jax.random.key(0), jnp.zeros((2, 8)))


# --- saliency="fine_grained": OpenCV's StaticSaliencyFineGrained. ---------------------

_CIFAR_MEAN = np.array([125.3, 123.0, 113.9]) / 255  # The reference's normalisation.
_CIFAR_STD = np.array([63.0, 62.1, 66.7]) / 255


_OPENCV_SCRIPT = """
import sys, numpy as np
import cv2
if sys.argv[1] == "avx2":
  print(int(cv2.checkHardwareSupport(11) and cv2.getHardwareFeatureName(11) == "AVX2"))
  sys.exit()
create = {"spectral_residual": cv2.saliency.StaticSaliencySpectralResidual_create,
          "fine_grained": cv2.saliency.StaticSaliencyFineGrained_create}[sys.argv[1]]
data = np.load(sys.argv[2])
maps = []
for i in range(len(data.files)):
  ok, saliency_map = create().computeSaliency(np.ascontiguousarray(data[f"a{i}"]))
  assert ok
  maps.append(saliency_map)
np.save(sys.argv[3], np.stack(maps))
"""


class _OpenCV:
  """cv2.saliency run in a child process: OpenCV's native libraries never share the
  test process (and its XLA compiler) with JAX."""

  def __init__(self, tmp):
    self.tmp = tmp

  def maps(self, kind, images):
    inputs, outputs = os.path.join(self.tmp, "in.npz"), os.path.join(self.tmp, "out.npy")
    np.savez(inputs, **{f"a{i}": image for i, image in enumerate(images)})
    _run_opencv(kind, inputs, outputs)
    return np.load(outputs)

  def float_path_is_avx2(self):
    """Our float path rounds as OpenCV's AVX2 kernels (FMA grey, 8-lane integral); it
    is the kernel OpenCV runs on any x86-64 CPU with AVX2 (AVX-512 ones included:
    measured on a Zen 4). Elsewhere OpenCV's own float maps round in another order."""
    return _float_path_is_avx2()


def _run_opencv(*args):
  return subprocess.run([sys.executable, "-c", _OPENCV_SCRIPT, *args], check=True,
                        capture_output=True, text=True, timeout=300).stdout


@functools.lru_cache(maxsize=1)
def _float_path_is_avx2():
  return _run_opencv("avx2").strip() == "1"  # Asked once: a child process each time costs.


@functools.lru_cache(maxsize=1)
def _opencv_problem():
  probe = subprocess.run(
      [sys.executable, "-c", "import cv2; cv2.saliency.StaticSaliencyFineGrained_create()"],
      capture_output=True, text=True, timeout=300)
  return probe.stderr.strip().splitlines()[-1] if probe.returncode else None


def _cv2():
  # The test extras install opencv-contrib-python-headless: CI runs these, never skips.
  problem = _opencv_problem()
  if problem and os.environ.get("CI"):
    pytest.fail(f"CI needs opencv-contrib-python-headless (cv2.saliency): {problem}")
  if problem:
    pytest.skip(f"needs opencv-contrib-python(-headless) for cv2.saliency: {problem}")
  return _OpenCV(tempfile.mkdtemp())


def _cv_fine_grained(cv2, images):
  """cv2's maps; RGB handed over as BGR (ours reads channel 0 as R)."""
  inputs = []
  for image in images:
    if image.ndim == 3 and image.shape[-1] == 1:
      image = image[..., 0]
    elif image.ndim == 3:
      image = image[..., ::-1]
    inputs.append(image)
  return cv2.maps("fine_grained", inputs)


def _fine_grained_cases(n, h, w, seed):
  base = _images(n, h, w, seed=seed)
  normalised = ((base - _CIFAR_MEAN) / _CIFAR_STD).astype(np.float32)
  as_uint8 = np.clip(base * 255, 0, 255).astype(np.uint8)
  return {"float01": base, "cifar-normalised": normalised, "uint8": as_uint8,
          "grey-float01": base[..., 1].copy(), "grey-uint8": as_uint8[..., 1].copy(),
          "grey1-normalised": normalised[..., :1].copy()}


@jax.jit
def _fine_grained_maps(batches):
  """fine_grained_saliency_maps of each batch: one program for all of a test's inputs."""
  return [saliencymix.fine_grained_saliency_maps(x) for x in batches]


@pytest.mark.parametrize("size", [(40, 24), (37, 29), (224, 224)])
def test_fine_grained_maps_equal_opencv(size):
  """Bit for bit: every step is integer or one float32 operation rounded once, in
  OpenCV's order (its FMA grey, its vector integral), so equality, no tolerance. Float
  input (in [0, 1] and CIFAR-normalised, negative) takes OpenCV's float path, whose
  centre values are bytes of the float image; uint8 its 8-bit path; grey and RGB."""
  cv2 = _cv2()
  h, w = size
  n = 2 if h > 100 else 6
  cases = {name: images for name, images in _fine_grained_cases(n, h, w, seed=h + w).items()
           # (uint8 is integer arithmetic: exact on every CPU)
           if images.dtype == np.uint8 or cv2.float_path_is_avx2()}
  # Cases of one dtype and shape go in one batch (maps are per image), every batch in one
  # compiled program, and every image to one OpenCV child process.
  groups = {}
  for name, images in cases.items():
    groups.setdefault((images.dtype.str, images.shape[1:]), []).append(name)
  batches = [np.concatenate([cases[name] for name in names]) for names in groups.values()]
  ours = {}
  for names, batch, maps in zip(groups.values(), batches,
                                _fine_grained_maps([jnp.asarray(b) for b in batches]),
                                strict=True):
    maps = np.asarray(maps)
    assert maps.shape == (len(batch), h, w) and maps.dtype == np.float32, names
    ours.update(zip(names, np.split(maps, len(names)), strict=True))
  cv_maps = _cv_fine_grained(cv2, [image for images in cases.values() for image in images])
  for i, name in enumerate(cases):
    want = cv_maps[i * n:(i + 1) * n]
    np.testing.assert_array_equal(ours[name], want, err_msg=name)
    assert len(np.unique(want)) > 10, name  # Not a degenerate map.


def test_fine_grained_float_input_reads_bytes_as_opencv_does():
  """OpenCV reads the float image's bytes as pixels: only the left quarter of the
  columns enters as centres, so changing the right half moves the window means only."""
  images = _images(*DRAW_SHAPE, seed=11)  # (The fine-grained draws' program.)
  w = DRAW_SHAPE[2]
  changed = images.copy()
  changed[:, :, w // 4:] = changed[:, :, w // 4:] * 0.5
  a = np.asarray(saliencymix.fine_grained_saliency_maps(jnp.asarray(images)))
  b = np.asarray(saliencymix.fine_grained_saliency_maps(jnp.asarray(changed)))
  assert not np.array_equal(a, b)
  flat = np.asarray(saliencymix.fine_grained_saliency_maps(jnp.ones((2, 16, 16, 3),
                                                                     jnp.uint8)))
  np.testing.assert_array_equal(flat, 0.0)  # OpenCV's 0/0 levels are 0.


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_fine_grained_boxes_centre_on_opencvs_peak(mode):
  """Boxes on the reference's np.argmax((map·255).astype("uint8")) of cv2's own map: the
  maps are equal, so the peaks are exact everywhere (no quantisation edge to avoid)."""
  cv2 = _cv2()
  if not cv2.float_path_is_avx2():
    pytest.skip("OpenCV's float kernels on this CPU are not the AVX2 ones we follow")
  b, h, w = DRAW_SHAPE
  images = ((_images(b, h, w, seed=12) - _CIFAR_MEAN) / _CIFAR_STD).astype(np.float32)
  perm, boxes, lam = (np.asarray(v) for v in saliencymix.sample_saliencymix_boxes(
      jax.random.key(5), jnp.asarray(images), mode=mode, saliency="fine_grained"))
  cv_maps = _cv_fine_grained(cv2, images)
  for i in range(b):
    source = perm[0] if mode == "batch" else perm[i]
    np.testing.assert_array_equal(boxes[i], _ref_saliency_bbox(cv_maps[source],
                                                               float(lam[i])))


def test_saliency_option_default_unchanged_and_jit_vmap():
  images = jnp.asarray(_images(*DRAW_SHAPE, seed=13))
  key = jax.random.key(6)
  batch, height, width = DRAW_SHAPE
  for mode in ["batch", "elem"]:
    default = saliencymix.sample_saliencymix_boxes(key, images, mode=mode)
    named = saliencymix.sample_saliencymix_boxes(key, images, mode=mode,
                                                 saliency="spectral_residual")
    for a, b in zip(default, named, strict=True):
      np.testing.assert_array_equal(a, b, err_msg=mode)
    for detector in saliencymix.SALIENCY_DETECTORS:
      what = f"{mode}, {detector}"
      eager = saliencymix.sample_saliencymix_boxes(key, images, mode=mode, saliency=detector)
      jitted, (x, y) = _jitted_boxes_and_mix(key, images, mode, detector)
      np.testing.assert_array_equal(eager[0], jitted[0], err_msg=what)
      np.testing.assert_array_equal(eager[1], jitted[1], err_msg=what)
      # Compiled, XLA may fuse the λ transform differently: 1 ulp of 1.0.
      assert_close_in_ulps(jitted[2], eager[2], 1, scale=1.0, err_msg=what)
      # saliencymix takes the detector (the reference's mode is "batch").
      assert x.shape == images.shape and y.shape == (batch, 3), what
  keys = jax.random.split(key, 3)
  stacked = jnp.stack([images] * 3)
  perm, boxes, _ = _vmapped_elem_boxes(keys, stacked, "fine_grained")
  for i in range(3):
    one = saliencymix.sample_saliencymix_boxes(keys[i], images, mode="elem",
                                               saliency="fine_grained")
    np.testing.assert_array_equal(perm[i], one[0], err_msg=f"key {i}")
    np.testing.assert_array_equal(boxes[i], one[1], err_msg=f"key {i}")
  params = saliencymix.sample_saliencymix(key, images, saliency="fine_grained")
  mixer = saliencymix.SaliencyMix(saliency="fine_grained")
  mixer.validate()
  np.testing.assert_array_equal(
      mixer.draw(key, batch, (height, width), images=images).label_weight, params.label_weight)


def test_unknown_saliency_detector():
  match = r"saliency must be one of \('spectral_residual', 'fine_grained'\), got 'itti'"
  with pytest.raises(ValueError, match=match):
    saliencymix.sample_saliencymix_boxes(jax.random.key(0), jnp.zeros((2, 8, 8, 3)),
                                         saliency="itti")
  with pytest.raises(ValueError, match=match):
    saliencymix.saliencymix(jax.random.key(0), jnp.zeros((2, 8, 8, 3)), jnp.zeros(2, int),
                            num_classes=2, saliency="itti")
  with pytest.raises(ValueError, match=match):
    saliencymix.SaliencyMix(saliency="itti").validate()
  with pytest.raises(ValueError, match="got 2 channels"):
    saliencymix.fine_grained_saliency_maps(jnp.zeros((2, 8, 8, 2)))
