"""Test images whose every pixel value tells which example it came from."""

import jax.numpy as jnp
import numpy as np


def distinct_images(shape, dtype=jnp.float32, seed=0):
  """Random images where example i holds values in [2i, 2i + 1) (floats) or
  [32i, 32i + 32) (uint8), so any output pixel can be traced to its example."""
  rng = np.random.default_rng(seed)
  index = np.arange(shape[0]).reshape((-1,) + (1,) * (len(shape) - 1))
  if dtype == jnp.uint8:
    return jnp.asarray(32 * index + rng.integers(0, 32, shape), jnp.uint8)
  return jnp.asarray(2 * index + rng.uniform(size=shape), dtype)


def source_example(values, dtype):
  """Which example each pixel value of :func:`distinct_images` came from."""
  values = np.asarray(values, np.float64)
  return (values // 32 if dtype == jnp.uint8 else values // 2).astype(int)
