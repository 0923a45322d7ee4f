"""Data parallelism: one per-device step mapped over every device of the run.

With several processes (:mod:`mixjax.training.distributed`) the mesh spans the
devices of all of them and each process passes only its own rows of every
global batch: :meth:`DataParallel.put_batch` builds the global array with
``jax.make_array_from_process_local_data``.

``backend="shard_map"`` (default) runs the step under ``jax.shard_map`` on a 1-D
mesh ``("data",)``: the state and the step key are replicated, the batch is
split along its first axis (device ``d`` holds rows ``d·b … (d + 1)·b − 1``).
``backend="pmap"`` does the same with ``jax.pmap`` (the original design); the
state then carries a leading device axis. With the same compiler options both
give the same result (tested on 4 forced CPU devices).

On CPU the shard_map steps are compiled with
:func:`~mixjax.training.compiler_options.default_compiler_options` (convolutions
on Eigen rather than YNNPACK, 1.85× faster for a PreActResNet-18 step on our
2-core CPU); pass ``compiler_options={}`` for XLA's defaults. ``jax.pmap`` takes
no compiler options, so the pmap steps always get XLA's defaults and the two
backends agree to float32 rounding rather than exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import chex
import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from mixjax.training.compiler_options import default_compiler_options

BACKENDS = ("shard_map", "pmap")
AXIS = "data"


def check_divisible(batch_size: int, num_devices: int, what: str = "batch_size") -> None:
  """Raises ``ValueError`` unless ``batch_size`` splits evenly over the devices."""
  if batch_size % num_devices:
    raise ValueError(
        f"{what} ({batch_size}) must be divisible by the number of devices "
        f"({num_devices}); choose a multiple of {num_devices}.")


class DataParallel:
  """Maps a per-device train step and eval step over ``devices``.

  Args:
    train_step: ``(state, batch, key) -> (state, metrics)`` for one device,
      reducing over the axis ``"data"``.
    eval_step: ``(state, batch) -> sums`` for one device, summed over ``"data"``.
    backend: ``"shard_map"`` or ``"pmap"``.
    devices: the devices; all of them (every process's) by default.
    compiler_options: XLA options for compiling both steps
      (``jax.jit(..., compiler_options=...)``). None picks
      :func:`~mixjax.training.compiler_options.default_compiler_options` for
      ``devices`` with ``backend="shard_map"`` and none with ``"pmap"``
      (``jax.pmap`` takes no options); ``{}`` keeps XLA's defaults.

  Raises:
    ValueError: for an unknown backend, non-empty ``compiler_options`` with
      ``backend="pmap"``, or ``backend="pmap"`` with several processes.
  """

  def __init__(
      self,
      train_step: Callable,
      eval_step: Callable,
      backend: str = "shard_map",
      devices: Sequence[jax.Device] | None = None,
      compiler_options: Mapping[str, str] | None = None,
  ):
    if backend not in BACKENDS:
      raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    if backend == "pmap" and compiler_options:
      raise ValueError(
          "compiler_options need backend='shard_map' (jax.pmap takes none), got "
          f"{dict(compiler_options)!r} with backend='pmap'.")
    if backend == "pmap" and jax.process_count() > 1:
      raise ValueError(
          f"backend='pmap' maps over one process's devices; with "
          f"{jax.process_count()} processes use backend='shard_map' (the default), "
          "whose mesh spans every process.")
    self.backend = backend
    self.devices = list(devices) if devices is not None else jax.devices()
    self.multiprocess = jax.process_count() > 1
    self.num_devices = len(self.devices)
    self.mesh = jax.sharding.Mesh(np.asarray(self.devices), (AXIS,))
    self._replicated = NamedSharding(self.mesh, P())
    self._sharded = NamedSharding(self.mesh, P(AXIS))
    if compiler_options is None:
      compiler_options = (default_compiler_options(self.devices)
                          if backend == "shard_map" else {})
    self.compiler_options = dict(compiler_options)
    if backend == "shard_map":
      # check_vma=False: the step averages gradients itself with lax.pmean, as
      # under pmap. With varying-axes checking on, differentiating replicated
      # parameters would already psum the gradients, and the step's pmean would
      # then leave the sum instead of the mean.
      self._train = jax.jit(
          jax.shard_map(train_step, mesh=self.mesh, in_specs=(P(), P(AXIS), P()),
                        out_specs=(P(), P()), check_vma=False),
          donate_argnums=0, compiler_options=self.compiler_options or None)
      self._eval = jax.jit(jax.shard_map(
          eval_step, mesh=self.mesh, in_specs=(P(), P(AXIS)), out_specs=P(),
          check_vma=False), compiler_options=self.compiler_options or None)
    else:
      self._train = jax.pmap(train_step, axis_name=AXIS, devices=self.devices,
                             in_axes=(0, 0, None), donate_argnums=0)
      self._eval = jax.pmap(eval_step, axis_name=AXIS, devices=self.devices)

  def check_batch_size(self, batch_size: int, what: str = "batch_size") -> None:
    check_divisible(batch_size, self.num_devices, what)

  def put_state(self, state: chex.ArrayTree) -> chex.ArrayTree:
    """Places a copy of a host/single-device state on every device.

    The copy is fresh (never aliases ``state``), since the train step donates it.
    """
    if self.multiprocess:  # The same values on every process: each places its copies.
      return jax.tree.map(lambda x: jax.make_array_from_process_local_data(
          self._replicated, np.array(x)), state)
    if self.backend == "shard_map":
      return jax.device_put(state, self._replicated, may_alias=False)
    # A leading device axis, one copy per device (what pmap's in_axes=0 expects).
    n = self.num_devices
    return jax.tree.map(
        lambda x: jax.device_put(np.broadcast_to(np.asarray(x), (n,) + np.shape(x)),
                                 self._sharded), state)

  def get_state(self, state: chex.ArrayTree) -> chex.ArrayTree:
    """The state as one copy (undoes :meth:`put_state`)."""
    if self.backend == "shard_map":
      return state
    return jax.tree.map(lambda x: x[0], state)

  def put_batch(self, batch: dict) -> dict:
    """Splits a batch over the devices (a batch already put is returned as it is).

    With one process ``batch`` is the whole batch ``[B, ...]``; with ``P`` it is
    this process's rows (``[B / P, ...]``, see
    :func:`~mixjax.training.distributed.process_slice`), and the global array
    of ``B`` rows is assembled from every process's part.
    """
    if self.backend == "shard_map" and all(isinstance(v, jax.Array) for v in batch.values()):
      return batch  # Put ahead by the caller (the trainer's device prefetch).
    if self.multiprocess:
      count = jax.process_count()
      for value in batch.values():
        self.check_batch_size(value.shape[0] * count, "the global batch size")
      return {k: jax.make_array_from_process_local_data(
          self._sharded, v, (v.shape[0] * count,) + v.shape[1:]) for k, v in batch.items()}
    for value in batch.values():
      self.check_batch_size(value.shape[0], "the batch size")
    if self.backend == "shard_map":
      return jax.device_put(batch, self._sharded)
    n = self.num_devices
    return jax.tree.map(lambda x: x.reshape((n, x.shape[0] // n) + x.shape[1:]), batch)

  def train_step(self, state, batch: dict, key: chex.PRNGKey):
    """Runs one mapped step; ``state`` must come from :meth:`put_state`.

    ``batch``: host arrays, or what :meth:`put_batch` returned for them.

    Every device gets the same ``key``; the step folds in the device index where
    it needs per-device draws (see :mod:`mixjax.training.step`).
    """
    if self.multiprocess:  # The same key on every process, replicated.
      key = jax.make_array_from_process_local_data(self._replicated, key)
    state, metrics = self._train(state, self.put_batch(batch), key)
    if self.backend == "pmap":
      metrics = jax.tree.map(lambda x: x[0], metrics)
    return state, metrics

  def eval_step(self, state, batch: dict) -> dict:
    sums = self._eval(state, self.put_batch(batch))
    if self.backend == "pmap":
      sums = jax.tree.map(lambda x: x[0], sums)
    return sums
