"""Model variables for forward tests, filled in NumPy instead of compiling ``model.init``."""

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def numpy_variables(model: nn.Module, x: chex.Array) -> dict:
  """Variables for ``model`` without running ``model.init``'s random numbers.

  Initialisers compile slowly on CPU (several seconds for a ResNet), so the
  forward tests fill the structure from ``eval_shape`` with NumPy: He-scaled
  normal kernels, unit scales, zero biases, fresh BatchNorm statistics. The real
  ``init`` is exercised by the counts (under ``eval_shape``) and the small models.
  """
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  rng = np.random.default_rng(0)

  def fill(path, leaf):  # Made in NumPy and transferred: no eager programs.
    name = path[-1].key
    if name == "kernel":
      fan_in = math.prod(leaf.shape[:-1])
      value = rng.standard_normal(leaf.shape) * math.sqrt(2 / fan_in)
    elif name in ("scale", "var"):
      value = np.ones(leaf.shape)
    else:
      value = np.zeros(leaf.shape)
    return jnp.asarray(value.astype(leaf.dtype))

  return jax.tree_util.tree_map_with_path(fill, shapes)
