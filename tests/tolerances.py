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
