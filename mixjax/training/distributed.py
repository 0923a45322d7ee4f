"""Several processes, one program: JAX's multi-controller runtime.

On a Cloud TPU slice, a multi-node GPU job or several local processes, every
process runs the same ``train.py``; :func:`initialize` joins them with
``jax.distributed.initialize`` before anything touches a device. From then on
``jax.devices()`` lists the devices of every process, the trainer's mesh spans
them all, and each process feeds only its own slice of every global batch
(``jax.make_array_from_process_local_data``): process ``p`` of ``P`` holds rows
``p·B/P … (p + 1)·B/P − 1`` of global batch ``B``, which land on its devices in
mesh order, so device ``d`` holds the same examples as device ``d`` of one
process with all the devices.

Faults: the runtime's heartbeat makes every process exit with an error within
``heartbeat_timeout_seconds`` once one of them dies (a process blocked in a
collective with a dead peer fails sooner); nothing waits forever.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import time

import jax
import numpy as np
from jax.experimental import multihost_utils


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
  """How this process joins the others.

  Attributes:
    auto: let JAX find the coordinator, process count and id itself (Cloud TPU,
      SLURM, Open MPI, ...): ``jax.distributed.initialize()`` with no arguments.
    coordinator_address: ``host:port`` of process 0's coordination service.
    num_processes: the number of processes.
    process_id: this process's index, ``0 ≤ process_id < num_processes``.
    initialization_timeout: seconds to wait for every process to join.
    heartbeat_timeout_seconds: seconds without a heartbeat after which the
      runtime declares a process dead and ends the others.
  """
  auto: bool = False
  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  initialization_timeout: int = 300
  heartbeat_timeout_seconds: int = 60

  @property
  def enabled(self) -> bool:
    return self.auto or any(v is not None for v in (
        self.coordinator_address, self.num_processes, self.process_id))

  def validate(self) -> None:
    """Raises ``ValueError`` for flags that cannot describe a set of processes."""
    explicit = (self.coordinator_address, self.num_processes, self.process_id)
    if self.auto and any(v is not None for v in explicit):
      raise ValueError(
          "--distributed finds the coordinator itself; do not also pass "
          "--coordinator_address/--num_processes/--process_id.")
    if not self.auto and any(v is not None for v in explicit) and None in explicit:
      raise ValueError(
          "--coordinator_address, --num_processes and --process_id go together, got "
          f"coordinator_address={self.coordinator_address!r}, "
          f"num_processes={self.num_processes!r}, process_id={self.process_id!r}.")
    if self.num_processes is not None and self.num_processes < 1:
      raise ValueError(f"--num_processes must be >= 1, got {self.num_processes}.")
    if self.process_id is not None and not 0 <= self.process_id < self.num_processes:
      raise ValueError(
          f"--process_id must be in [0, {self.num_processes}) for "
          f"--num_processes={self.num_processes}, got {self.process_id}.")
    if self.coordinator_address is not None and ":" not in self.coordinator_address:
      raise ValueError(
          f"--coordinator_address must be host:port, got {self.coordinator_address!r}.")
    for name in ("initialization_timeout", "heartbeat_timeout_seconds"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1 second, got {getattr(self, name)}.")


def _wait_for_coordinator(address: str, timeout: float) -> None:
  """Waits until ``address`` accepts TCP connections; ``RuntimeError`` after ``timeout``.

  The runtime itself aborts the process (no Python error) when the coordinator
  never answers, so processes other than 0 check first.
  """
  host, port = address.rsplit(":", 1)
  deadline = time.monotonic() + timeout
  while True:
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
        return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise RuntimeError(
            f"no coordinator answered at {address} within {timeout:g} s ({e}); start "
            "process 0 with the same --coordinator_address, or check the address.") from e
      time.sleep(0.5)


def initialize(config: DistributedConfig) -> None:
  """Joins the other processes (a no-op when ``config`` is not enabled).

  Must run before anything touches a device. CPU collectives go through gloo
  (the setting only concerns the CPU backend).

  Raises:
    ValueError: bad flags (see :meth:`DistributedConfig.validate`).
    RuntimeError: the processes did not all join within
      ``initialization_timeout`` (a missing or unreachable coordinator).
  """
  config.validate()
  if not config.enabled:
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = dict(initialization_timeout=config.initialization_timeout,
                heartbeat_timeout_seconds=config.heartbeat_timeout_seconds)
  if not config.auto:
    kwargs.update(coordinator_address=config.coordinator_address,
                  num_processes=config.num_processes, process_id=config.process_id)
    if config.process_id:
      _wait_for_coordinator(config.coordinator_address, config.initialization_timeout)
  try:
    jax.distributed.initialize(**kwargs)
  except Exception as e:  # noqa: BLE001  (jaxlib raises its own XlaRuntimeError)
    where = (f"the coordinator at {config.coordinator_address}" if not config.auto
             else "the cluster's coordinator")
    raise RuntimeError(
        f"could not join the other processes through {where} within "
        f"{config.initialization_timeout} s: {e}") from e


def is_primary() -> bool:
  """Process 0: the one that prints and writes the run's files."""
  return jax.process_index() == 0


def process_slice(global_batch: int) -> slice:
  """This process's rows of a global batch of ``global_batch`` examples."""
  count, index = jax.process_count(), jax.process_index()
  if global_batch % count:
    raise ValueError(
        f"the global batch ({global_batch}) must be divisible by the number of "
        f"processes ({count}).")
  size = global_batch // count
  return slice(index * size, (index + 1) * size)


def check_shared_directory(directory: str) -> None:
  """Raises ``ValueError`` on every process unless all of them see ``directory``.

  Process 0 writes a random token there; every process reads it back, and the
  outcome is gathered so that all of them fail together. One process needs no
  check.
  """
  if jax.process_count() == 1:
    return
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, ".mixjax_shared_check")
  token = np.frombuffer(secrets.token_bytes(8), np.uint32)
  token = multihost_utils.broadcast_one_to_all(token)
  if is_primary():
    with open(path + ".tmp", "wb") as f:
      f.write(np.asarray(token).tobytes())
    os.replace(path + ".tmp", path)
  multihost_utils.sync_global_devices("mixjax: shared-directory token written")
  try:
    with open(path, "rb") as f:
      seen = np.frombuffer(f.read(), np.uint32)
    ok = np.array(seen.shape == token.shape and bool(np.all(seen == token)))
  except OSError:
    ok = np.array(False)
  everyone = np.asarray(multihost_utils.process_allgather(ok))
  multihost_utils.sync_global_devices("mixjax: shared-directory token read")
  if is_primary():
    os.remove(path)
  if not everyone.all():
    missing = np.flatnonzero(~everyone.reshape(-1)).tolist()
    raise ValueError(
        f"the workdir {directory} is not shared by every process: processes {missing} "
        "do not see what process 0 wrote there. Checkpoints need one directory that "
        "all processes read and write (a shared file system or a bucket).")
