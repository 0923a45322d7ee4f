"""Runs ``train.py`` as several local processes joined by ``jax.distributed``.

Only loopback addresses and a free port; every process starts in its own
process group, and only the groups these helpers started are ever killed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@dataclass
class Finished:
  returncode: int
  stdout: str
  stderr: str
  seconds: float


class Run:
  """``num_processes`` processes of ``train.py``, each with ``devices`` CPU devices."""

  def __init__(self, args: list[str], num_processes: int, devices: int,
               heartbeat_timeout: int = 10, initialization_timeout: int = 60,
               port: int | None = None, process_ids=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    port = port or free_port()
    self.started = time.monotonic()
    self.procs = [
        subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "train.py"), *args,
             f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={num_processes}",
             f"--process_id={i}", f"--heartbeat_timeout={heartbeat_timeout}",
             f"--initialization_timeout={initialization_timeout}"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        for i in (range(num_processes) if process_ids is None else process_ids)]

  def kill(self, index: int) -> None:
    """SIGKILLs process ``index`` (its whole process group, which it leads)."""
    os.killpg(self.procs[index].pid, signal.SIGKILL)

  def wait(self, timeout: float) -> list[Finished]:
    """Waits for every process; kills the ones still running after ``timeout``."""
    deadline = self.started + timeout
    out = []
    for proc in self.procs:
      try:
        stdout, stderr = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
      except subprocess.TimeoutExpired:
        self.close()
        stdout, stderr = proc.communicate()
        stderr += f"\n[tests/processes.py: killed after {timeout} s]"
      out.append(Finished(proc.returncode, stdout, stderr, time.monotonic() - self.started))
    return out

  def close(self) -> None:
    for proc in self.procs:
      if proc.poll() is None:
        try:
          os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
          pass
