"""Trace-time argument checks shared by the mixing ops.

Every check runs on static information (shapes, dtypes, Python numbers), so it
fires once at trace time under ``jax.jit`` and costs nothing per call. Each
raises ``ValueError`` naming what was expected and what came.

Hyper-parameters are static: they fix the program (shapes, which steps run) and
are checked while tracing. :func:`static_value` brings what a user may pass for
one to a hashable Python value (a list or array becomes a tuple, a NumPy scalar
or concrete scalar array a Python number), and :func:`jit_with_hyperparameters`
does so for a jitted op's keyword arguments. The Beta parameters (``alpha``)
may instead be traced values (e.g. a schedule inside a jitted step): they are
then arguments of the program, checked at trace time only when concrete.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

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


def is_traced(value) -> bool:
  """Whether ``value`` is a tracer (a value only known when the program runs)."""
  return isinstance(value, jax.core.Tracer)


def has_tracer(value, *, fields: bool = True) -> bool:
  """Whether ``value`` is or holds a tracer (in a tuple or list, or with ``fields`` a
  dataclass's fields, e.g. a mixer's or a :class:`~mixjax.Choice`'s mixers')."""
  if is_traced(value):
    return True
  if isinstance(value, (tuple, list)):
    return any(has_tracer(v, fields=fields) for v in value)
  if fields and dataclasses.is_dataclass(value) and not isinstance(value, type):
    return any(has_tracer(getattr(value, f.name)) for f in dataclasses.fields(value))
  return False


def static_value(value, *, arrays: bool = True):
  """A hyper-parameter as a hashable Python value; tracers and others are returned as they are.

  NumPy scalars (``np.float32``, ``np.int64``, ...) and 0-d NumPy or concrete JAX
  arrays become Python numbers (``.item()``); lists and tuples become tuples of
  those, and so do 1-d or larger arrays unless ``arrays`` is False (a mixer's
  own checks read those). So ``np.float32(0.8)`` works wherever ``0.8`` does,
  and ``[0.2, 0.8]`` wherever ``(0.2, 0.8)`` does.
  """
  if is_traced(value):
    return value
  if type(value) in (list, tuple):
    return tuple(static_value(v, arrays=arrays) for v in value)
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, (np.ndarray, jax.Array)):
    if value.ndim == 0:
      return np.asarray(value).item()
    if arrays:
      return tuple(static_value(v) for v in np.asarray(value))
  return value


def check_static(value, name: str, traceable: Sequence[str] | None = None) -> None:
  """Raises unless ``value`` (the hyper-parameter ``name``) is known at trace time.

  ``traceable``: the hyper-parameters that may be traced, named in the message.
  """
  if has_tracer(value, fields=False):  # A mixer in it has checked its own fields.
    allowed = ("" if traceable is None else
               f"; only {', '.join(traceable)} may be traced" if traceable else
               "; none of its hyper-parameters may be traced")
    raise ValueError(
        f"{name} fixes the compiled program, so it must be known at trace time (a Python "
        f"number, string or tuple), got a traced value {value!r}{allowed}.")


def jit_with_hyperparameters(static_argnames: Sequence[str], traceable: Sequence[str] = ()
                             ) -> Callable[[Callable], Callable]:
  """``jax.jit`` for a mixing op whose keyword arguments are hyper-parameters.

  The hyper-parameters ``static_argnames`` go through :func:`static_value` (so
  lists, NumPy scalars and concrete arrays are accepted, and hash) and are static
  arguments. Those in ``traceable`` (the Beta parameters) may also be traced
  values: a call with one traced compiles a program that takes it as an argument
  (drawing exactly what the static value draws, see
  :func:`~mixjax.symmetric_beta`); a traced value for any other hyper-parameter is
  a ``ValueError`` naming it.
  """
  static_argnames = tuple(static_argnames)
  traceable = tuple(traceable)

  def decorate(fun):
    signature = inspect.signature(fun)
    static_jit = jax.jit(fun, static_argnames=static_argnames)
    traced_jit = jax.jit(fun, static_argnames=tuple(
        n for n in static_argnames if n not in traceable))

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
      kwargs = {k: static_value(v) if k in static_argnames else v for k, v in kwargs.items()}
      for k, v in kwargs.items():
        if k in static_argnames and k not in traceable:
          check_static(v, k, traceable)
      given = signature.bind_partial(*args, **kwargs).arguments
      if "labels" in given:
        check_label_ids(given["labels"], given.get("num_classes"))
      if any(is_traced(kwargs.get(n)) for n in traceable):
        return traced_jit(*args, **kwargs)
      return static_jit(*args, **kwargs)

    return wrapper

  return decorate


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
  check_static(p, name)
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


LAYOUTS = (None, "NHWC", "NTHWC")


def check_layout(layout: str | None) -> None:
  if layout not in LAYOUTS:
    raise ValueError(
        "layout must be None (NHWC, NHW or video NTHWC, checked for channels-first), "
        f"'NHWC' or 'NTHWC' (trusted), got {layout!r}.")


def check_spatial(images: jax.Array, layout: str | None = None) -> tuple[int, int]:
  """Returns (H, W) of an NHWC or NHW batch, or of an NTHWC batch of clips; raises otherwise.

  CutMix reads images as ``[B, H, W, C]`` or ``[B, H, W]``, and clips of video as
  ``[B, T, H, W, C]`` (Scenic's NTHWC; one box or mask per clip, in every frame). A
  rank-4 batch whose axis 1 has size 1, 3 or 4 and whose last axis is larger than 4
  is almost surely channels-first ``[B, C, H, W]`` (the PyTorch habit), where boxes
  would be drawn over channels × rows; it is refused unless ``layout="NHWC"`` says
  it is NHWC. Likewise a rank-5 batch that looks ``[B, C, T, H, W]`` unless
  ``layout="NTHWC"``.
  """
  check_layout(layout)
  if images.ndim not in (3, 4, 5):
    raise ValueError(
        "CutMix needs images with two spatial axes, [B, H, W, C] or [B, H, W], or clips "
        f"[B, T, H, W, C], got shape {tuple(images.shape)}.")
  if images.ndim == 5:
    if layout == "NHWC":
      raise ValueError(f"layout 'NHWC' is for [B, H, W, C] images; a rank-5 batch "
                       f"{tuple(images.shape)} is read as clips: pass layout='NTHWC'.")
    if layout is None and images.shape[1] in (1, 3, 4) and images.shape[4] > 4:
      raise ValueError(
          f"clips are read as [B, T, H, W, C], but shape {tuple(images.shape)} looks "
          f"channels-first [B, C, T, H, W] (axis 1 of size {images.shape[1]}, last axis "
          f"{images.shape[4]}). Transpose it with jnp.transpose(x, (0, 2, 3, 4, 1)), or "
          f"pass layout='NTHWC' if it really is {images.shape[1]} frames of "
          f"{images.shape[4]} channels.")
    return images.shape[2], images.shape[3]
  if layout == "NTHWC":
    raise ValueError(f"layout 'NTHWC' is for clips [B, T, H, W, C], got shape "
                     f"{tuple(images.shape)}.")
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


def check_minmax(minmax: Sequence[float] | None, name: str = "minmax"
                 ) -> tuple[float, float] | None:
  """``minmax`` (any pair: tuple, list, array) as a checked tuple of floats, or None."""
  minmax = static_value(minmax)
  if minmax is None:
    return None
  if (not isinstance(minmax, tuple) or len(minmax) != 2
      or not all(isinstance(v, numbers.Real) for v in minmax)):
    raise ValueError(f"{name} must be a pair (min, max), got {minmax!r}.")
  lo, hi = float(minmax[0]), float(minmax[1])
  if not 0.0 < lo <= hi <= 1.0:
    raise ValueError(
        f"{name} must satisfy 0 < min <= max <= 1, got {minmax!r}.")
  return lo, hi


MAX_REPORTED_IDS = 8  # Offending label ids named in an error message.


def check_label_ids(labels, num_classes) -> None:
  """Raises ``ValueError`` for integer class ids outside ``[0, num_classes)``.

  ``jax.nn.one_hot`` turns such an id into an all-zero row, so a mix of it gives a
  row that does not sum to one (e.g. 0.17): silently wrong targets. What is
  checked depends on what is known:

  * concrete ids (a NumPy array or a JAX array outside ``jit``): checked here, and
    the error names the offending ids and their positions (this reads the ids to
    the host: one small transfer and a wait for them per call); a global array that
    spans other processes' devices is not read;
  * traced ids (inside the caller's ``jit``, ``vmap``, ``shard_map``, ...): a
    ``checkify.check(..., debug=True)``, which XLA drops unless the caller wraps
    the function in ``jax.experimental.checkify.checkify``, then ``err.throw()``
    raises naming the first offending id. Without it nothing is checked (the
    rows of such ids are all zero).

  Anything else (label rows ``[B, K]``, float labels, ``num_classes=None``) is left
  to the callers' own checks.
  """
  if num_classes is None or not hasattr(labels, "dtype") or getattr(labels, "ndim", 0) != 1:
    return
  if not jnp.issubdtype(labels.dtype, jnp.integer) or isinstance(num_classes, bool):
    return
  try:
    k = int(num_classes)
  except (TypeError, ValueError):
    return
  if has_tracer(labels):
    ok = (labels >= 0) & (labels < k)
    first = jnp.argmin(ok)  # The first False (0 when every id is in range).
    # Its id by a masked sum, not labels[first]: no gather of a batch sharded over devices.
    value = jnp.sum(jnp.where(jnp.arange(labels.shape[0]) == first, labels, 0))
    checkify.check(jnp.all(ok),
                   f"label ids must lie in [0, {k}) (num_classes={k}); got {{id}} at "
                   f"position {{pos}}", id=value, pos=first, debug=True)
    return
  if isinstance(labels, jax.Array) and not labels.is_fully_addressable:
    return  # Spans other processes' devices: this process cannot read the ids.
  values = np.asarray(labels)
  bad = np.flatnonzero((values < 0) | (values >= k))
  if bad.size:
    shown = ", ".join(f"{values[i]} (at {i})" for i in bad[:MAX_REPORTED_IDS])
    more = f" and {bad.size - MAX_REPORTED_IDS} more" if bad.size > MAX_REPORTED_IDS else ""
    raise ValueError(
        f"label ids must lie in [0, {k}) (num_classes={k}); got {bad.size} outside: "
        f"{shown}{more}. An id outside would give an all-zero one-hot row.")
