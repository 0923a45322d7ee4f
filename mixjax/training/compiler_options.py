"""XLA compiler options for the mapped train and eval steps.

XLA:CPU in jaxlib 0.10 hands dots, reductions *and convolutions* to YNNPACK by
default (its ``xla_cpu_experimental_ynn_fusion_type`` is
``INDIVIDUAL_DOT, REDUCE, INDIVIDUAL_CONVOLUTION``). On our 2-core CPU (Sapphire
Rapids class) YNNPACK's convolutions were much slower than XLA's Eigen ones:
the forward and backward pass of one 3×3, 64-channel convolution on a
128×32×32 batch took 512 ms with YNNPACK and 182 ms with Eigen, and the
PreActResNet-18 train step 4.33 s instead of 2.34 s
(``benchmarks/bench_cpu_options.py``, ``benchmarks/results/cpu_options.json``).
So on CPU the steps are compiled with the same list minus convolutions. Only
that option changes; it is passed per compiled step
(``jax.jit(..., compiler_options=...)``), never through ``XLA_FLAGS``, and only
on the jaxlib versions it was measured on, where it is accepted.
"""

from __future__ import annotations

import functools
import os
import types
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import jaxlib

YNN_FUSION_TYPE = "xla_cpu_experimental_ynn_fusion_type"

# XLA:CPU's default list (jaxlib 0.10) without LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION.
CPU_COMPILER_OPTIONS: Mapping[str, str] = types.MappingProxyType({
    YNN_FUSION_TYPE: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
})

# jaxlib (major, minor) versions whose XLA:CPU default list CPU_COMPILER_OPTIONS
# was derived from and measured on. Elsewhere the list could add or drop other
# fusions, so it is not applied.
MEASURED_JAXLIB = ((0, 10),)


def measured_jaxlib(version: str = jaxlib.__version__) -> bool:
  """Whether ``version`` is a jaxlib :data:`CPU_COMPILER_OPTIONS` was measured on."""
  major, minor = (int(part) for part in version.split(".")[:2])
  return (major, minor) in MEASURED_JAXLIB


@functools.cache
def _accepted(device: jax.Device, items: tuple[tuple[str, str], ...]) -> bool:
  """Whether this jaxlib compiles a program for ``device`` with these options."""
  try:
    x = jax.device_put(jnp.zeros((), jnp.float32), device)
    jax.jit(lambda v: v + 1, compiler_options=dict(items)).lower(x).compile()
  except Exception:  # jaxlib raises its own error types.
    return False
  return True


def default_compiler_options(devices: Sequence[jax.Device]) -> dict[str, str]:
  """The options :class:`~mixjax.training.DataParallel` compiles its steps with.

  :data:`CPU_COMPILER_OPTIONS` on CPU devices with a jaxlib in
  :data:`MEASURED_JAXLIB` that accepts them, unless ``XLA_FLAGS`` sets
  ``--xla_cpu_experimental_ynn_fusion_type`` itself (then the user's choice
  stands); nothing otherwise.

  Args:
    devices: the devices the steps run on.

  Returns:
    A dict for ``jax.jit(..., compiler_options=...)``, possibly empty.
  """
  devices = list(devices)
  if len(devices) == 0 or devices[0].platform != "cpu" or not measured_jaxlib():
    return {}
  if YNN_FUSION_TYPE in os.environ.get("XLA_FLAGS", ""):
    return {}
  items = tuple(sorted(CPU_COMPILER_OPTIONS.items()))
  return dict(items) if _accepted(devices[0], items) else {}
