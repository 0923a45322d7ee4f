"""Float tolerances derived from the scale of what is compared.

A different CPU, thread count or XLA fusion reorders float arithmetic (or fuses
``a·b + c`` into one FMA), which moves results by a few units in the last place
(ulp) of the values involved, never by a fixed absolute amount. So every
tolerance here is a number of ulps of the largest magnitude that enters the
comparison; each caller states why its count bounds the rounding it allows.
"""

from __future__ import annotations

import numpy as np

F32_EPS = float(np.finfo(np.float32).eps)  # 2⁻²³, one ulp of 1.0 in float32.

# Two programs of the same deep network fed bit-identical inputs differ only by
# the order XLA gives their reductions: ~1 ulp of the activations per layer,
# grown by the layers after it. Measured: 1 ulp of input difference grows to
# ~8 ulps of the logits' scale through a PreActResNet-18; this allows 32× that.
NETWORK_ULPS = 256


def scale_atol(*scales, ulps: float, eps: float = F32_EPS) -> float:
  """``ulps`` ulps of the largest magnitude among the arrays ``scales``."""
  return ulps * eps * max(float(np.max(np.abs(np.asarray(s, np.float64)))) for s in scales)


def assert_close_in_ulps(actual, desired, ulps: float, *, scale=None,
                         eps: float = F32_EPS, err_msg: str = "") -> None:
  """``|actual − desired| ≤ ulps·eps·max|scale|`` elementwise (scale: desired)."""
  desired = np.asarray(desired, np.float64)
  atol = scale_atol(desired if scale is None else scale, ulps=ulps, eps=eps)
  np.testing.assert_allclose(np.asarray(actual, np.float64), desired, rtol=0, atol=atol,
                             err_msg=err_msg)


def differ_beyond_rounding(a, b, ulps: float = NETWORK_ULPS, eps: float = F32_EPS) -> bool:
  """True when ``a`` and ``b`` differ by more than ``ulps`` ulps of their scale."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b))) > scale_atol(a, b, ulps=ulps, eps=eps)


def ulps_apart(a, b, eps: float = F32_EPS) -> float:
  """``max|a − b|`` in ulps of ``max(|a|, |b|)``: what a tolerance must allow."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), np.finfo(np.float64).tiny)
  return float(np.max(np.abs(a - b))) / (eps * scale)


def assert_trees_close_in_ulps(a, b, ulps: float, eps: float = F32_EPS) -> None:
  """Every leaf of ``b`` within ``ulps`` ulps of that leaf's own scale of ``a``."""
  import jax  # Here only: the module stays importable without initialising jax.

  paths_a, tree_a = jax.tree_util.tree_flatten_with_path(a)
  paths_b, tree_b = jax.tree_util.tree_flatten_with_path(b)
  assert tree_a == tree_b, f"different structures: {tree_a} vs {tree_b}"
  for (path, x), (_, y) in zip(paths_a, paths_b, strict=True):
    assert_close_in_ulps(y, x, ulps, scale=np.maximum(np.abs(x), np.abs(y)), eps=eps,
                         err_msg=jax.tree_util.keystr(path))


# Parameters after a few SGD steps whose gradients were reduced in another order
# (other devices, backend or conv kernels): measured ≤ 3 ulps of each leaf's
# scale on digits; this allows ~20× that.
STEP_ULPS = 64
