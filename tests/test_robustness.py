"""Occlusion and FGSM (mixjax.robustness): exact pixels, boxes, dtypes, jit and vmap."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixjax import robustness

DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16, jnp.uint8]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("height, width", [(32, 32), (12, 20)])
def test_centred_boxes_have_the_fraction_and_the_images_aspect(fraction, height, width):
  boxes = np.asarray(robustness.occlusion_boxes(None, 3, height, width, fraction))
  h, w = round(height * math.sqrt(fraction)), round(width * math.sqrt(fraction))
  np.testing.assert_array_equal(boxes, [[(height - h) // 2, (width - w) // 2, h, w]] * 3)
  # Rounding each side moves the area by at most half a row and half a column.
  assert abs(h * w - fraction * height * width) <= (height + width) / 2 + 0.25


def test_random_boxes_lie_inside_and_cover_every_position():
  boxes = np.asarray(robustness.occlusion_boxes(jax.random.key(0), 4000, 10, 12, 0.25,
                                                "random"))
  top, left, h, w = boxes.T
  assert (h == 5).all() and (w == 6).all()
  assert top.min() == 0 and top.max() == 10 - 5 and left.min() == 0 and left.max() == 12 - 6
  # Uniform positions: each of the 6 × 7 places within 25 % of 4000 / 42 (a binomial
  # count's sd is ~9.6 there: 2.5 sd either side).
  counts = np.bincount(top * 7 + left, minlength=42)
  assert np.abs(counts - 4000 / 42).max() < 0.25 * 4000 / 42, counts


@pytest.mark.parametrize("dtype", DTYPES)
def test_occlude_overwrites_exactly_the_box(dtype):
  rng = np.random.default_rng(1)
  images = jnp.asarray(rng.integers(1, 200, (3, 6, 7, 2)), dtype)
  boxes = jnp.array([[0, 0, 2, 3], [4, 5, 2, 2], [1, 2, 0, 0]], jnp.int32)
  noise = jnp.asarray(rng.integers(201, 255, (3, 6, 7, 2)), dtype)
  for fill, want_fill in ((0, np.zeros(images.shape)), (noise, np.asarray(noise))):
    out = jax.jit(robustness.occlude)(images, boxes, fill)
    assert out.dtype == images.dtype and out.shape == images.shape
    want = np.asarray(images).copy()
    for b, (top, left, h, w) in enumerate(np.asarray(boxes)):
      want[b, top:top + h, left:left + w] = want_fill[b, top:top + h, left:left + w]
    np.testing.assert_array_equal(np.asarray(out), want)


def test_occlude_under_vmap_equals_the_batch():
  images = jnp.arange(2 * 4 * 5 * 1, dtype=jnp.float32).reshape(2, 4, 5, 1)
  boxes = robustness.occlusion_boxes(jax.random.key(3), 2, 4, 5, 0.3, "random")
  one = jax.vmap(lambda x, b: robustness.occlude(x[None], b[None])[0])(images, boxes)
  np.testing.assert_array_equal(one, robustness.occlude(images, boxes))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_fgsm_steps_along_the_gradient_sign_and_clips(dtype):
  """A linear loss ``Σ v·x`` has gradient ``v``: the step is exactly ``ε·sign(v)``
  (ε = 0.25 is exact in every dtype), clipped to [0, 1]."""
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.integers(0, 9, (2, 3, 4, 1)) / 8, dtype)
  v = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
  loss = lambda images: jnp.sum(v * images.astype(jnp.float32))
  out = jax.jit(lambda x: robustness.fgsm(loss, x, 0.25))(x)
  assert out.dtype == dtype
  want = np.clip(np.asarray(x, np.float32) + 0.25 * np.sign(np.asarray(v)), 0, 1)
  np.testing.assert_array_equal(np.asarray(out, np.float32), want)
  free = robustness.fgsm(loss, x, 0.25, clip=None)
  np.testing.assert_array_equal(np.asarray(free, np.float32),
                                np.asarray(x, np.float32) + 0.25 * np.sign(np.asarray(v)))


@pytest.mark.parametrize("call, match", [
    (lambda: robustness.occlusion_boxes(None, 2, 8, 8, 1.5), r"fraction must be .* \[0, 1\]"),
    (lambda: robustness.occlusion_boxes(None, 2, 8, 8, 0.5, "corner"), "position must be"),
    (lambda: robustness.occlusion_boxes(None, 2, 8, 8, 0.5, "random"), "needs a PRNG key"),
    (lambda: robustness.occlusion_boxes(None, 0, 8, 8, 0.5), "batch must be an int >= 1"),
    (lambda: robustness.occlude(jnp.zeros((2, 4, 4)), jnp.zeros((2, 4), jnp.int32)),
     r"\[B, H, W, C\]"),
    (lambda: robustness.occlude(jnp.zeros((2, 4, 4, 1)), jnp.zeros((3, 4), jnp.int32)),
     r"integer \[B, 4\] = \[2, 4\]"),
    (lambda: robustness.fgsm(jnp.sum, jnp.zeros((1, 2, 2, 1)), -0.1), "eps must be"),
    (lambda: robustness.fgsm(jnp.sum, jnp.zeros((1, 2, 2, 1), jnp.uint8), 0.1),
     "floating images"),
])
def test_bad_arguments_are_refused(call, match):
  with pytest.raises(ValueError, match=match):
    call()


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_occlude_passes_gradients_outside_the_box_only(dtype):
  images = jnp.ones((2, 5, 6, 3), dtype)
  boxes = robustness.occlusion_boxes(None, 2, 5, 6, 0.25)
  grad = jax.grad(lambda x: robustness.occlude(x, boxes).astype(jnp.float32).sum())(images)
  assert grad.dtype == dtype
  top, left, h, w = np.asarray(boxes)[0]
  want = np.ones(images.shape, np.float32)
  want[:, top:top + h, left:left + w] = 0
  np.testing.assert_array_equal(np.asarray(grad, np.float32), want)
