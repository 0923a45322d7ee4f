"""Trace-time argument checks shared by the mixing ops.

Every check runs on static information (shapes, dtypes, Python numbers), so it
fires once at trace time under ``jax.jit`` and costs nothing per call. Each
raises ``ValueError`` naming what was expected and what came.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

MODES = ("batch", "elem")
PAIRINGS = ("permute", "flip", "roll")
BOX_RULES = ("reference", "full_side")


def concrete_number(value) -> float | None:
  """Returns ``value`` as a Python float if known at trace time, else None."""
  if isinstance(value, numbers.Real):
    return float(value)
  if isinstance(value, (np.ndarray, np.generic)) and np.ndim(value) == 0:
    return float(value)
  if isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer):
    if value.ndim == 0:
      return float(value)
  return None


def check_alpha(alpha, name: str = "alpha") -> None:
  """Raises unless ``alpha`` (when known at trace time) is a positive number."""
  value = concrete_number(alpha)
  if value is None:
    if isinstance(alpha, jax.Array) and alpha.ndim == 0:
      return  # Traced scalar: cannot be checked at trace time.
    raise ValueError(f"{name} must be a positive scalar, got {alpha!r}.")
  if not value > 0:
    raise ValueError(f"{name} must be > 0 (Beta({name}, {name})), got {value}.")


def check_probability(p, name: str) -> None:
  value = concrete_number(p)
  if value is None or not 0.0 <= value <= 1.0:
    raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}.")


def check_mode(mode: str) -> None:
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")


def check_pairing(pairing: str) -> None:
  if pairing not in PAIRINGS:
    raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}.")


def check_box_rule(box_rule: str) -> None:
  if box_rule not in BOX_RULES:
    raise ValueError(f"box_rule must be one of {BOX_RULES}, got {box_rule!r}.")


def check_batch(images: jax.Array, min_rank: int = 2) -> int:
  """Returns the batch size of ``images``, checking rank and dtype."""
  if not hasattr(images, "shape") or not hasattr(images, "dtype"):
    raise ValueError(f"images must be an array, got {type(images).__name__}.")
  if images.ndim < min_rank:
    raise ValueError(
        f"images must have rank >= {min_rank} with the batch axis first, "
        f"got shape {tuple(images.shape)}.")
  dtype = jnp.dtype(images.dtype)
  if not (jnp.issubdtype(dtype, jnp.floating) or
          jnp.issubdtype(dtype, jnp.integer)):
    raise ValueError(
        f"images must have a floating or integer dtype, got {dtype}.")
  if images.shape[0] < 1:
    raise ValueError("images must hold at least one example, got batch 0.")
  return images.shape[0]


LAYOUTS = (None, "NHWC")


def check_layout(layout: str | None) -> None:
  if layout not in LAYOUTS:
    raise ValueError(
        "layout must be None (NHWC or NHW, checked for channels-first) or 'NHWC' "
        f"(NHWC, trusted), got {layout!r}.")


def check_spatial(images: jax.Array, layout: str | None = None) -> tuple[int, int]:
  """Returns (H, W) of an NHWC or NHW batch; raises for other layouts.

  CutMix reads images as ``[B, H, W, C]`` or ``[B, H, W]``. A rank-4 batch whose
  axis 1 has size 1, 3 or 4 and whose last axis is larger than 4 is almost surely
  channels-first ``[B, C, H, W]`` (the PyTorch habit), where boxes would be drawn
  over channels × rows; it is refused unless ``layout="NHWC"`` says it is NHWC.
  """
  check_layout(layout)
  if images.ndim not in (3, 4):
    raise ValueError(
        "CutMix needs images with two spatial axes, [B, H, W, C] or [B, H, W], "
        f"got shape {tuple(images.shape)}.")
  if (layout is None and images.ndim == 4 and images.shape[1] in (1, 3, 4)
      and images.shape[3] > 4):
    raise ValueError(
        f"CutMix reads images as [B, H, W, C], but shape {tuple(images.shape)} "
        "looks channels-first [B, C, H, W] (axis 1 of size "
        f"{images.shape[1]}, last axis {images.shape[3]}): boxes would be drawn "
        "over channels x rows. Transpose it to NHWC with "
        "jnp.transpose(x, (0, 2, 3, 1)), or pass layout='NHWC' if it really is "
        f"{images.shape[1]} rows of {images.shape[3]} channels.")
  return images.shape[1], images.shape[2]


def check_minmax(minmax: Sequence[float] | None) -> tuple[float, float] | None:
  if minmax is None:
    return None
  if len(minmax) != 2:
    raise ValueError(f"minmax must be a pair (min, max), got {minmax!r}.")
  lo, hi = float(minmax[0]), float(minmax[1])
  if not 0.0 < lo <= hi <= 1.0:
    raise ValueError(
        f"minmax must satisfy 0 < min <= max <= 1, got {minmax!r}.")
  return lo, hi
