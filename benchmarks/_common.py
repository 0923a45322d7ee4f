"""Helpers shared by the benchmark scripts (no jax import: the peers venv uses it).

* machine description (``lscpu`` model name, cores), date, load average;
* waiting for a quiet machine before a final measurement;
* the allocator setting (see README: fresh 40-80 MB outputs cost page faults);
* summary statistics of a list of timings.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

# Shapes in NHWC (mixjax); the peers use the same batches in NCHW.
SHAPES = {
    "cifar": (256, 32, 32, 3),
    "imagenet64": (64, 224, 224, 3),
    "imagenet128": (128, 224, 224, 3),
}
NUM_CLASSES = {"cifar": 10, "imagenet64": 1000, "imagenet128": 1000}
# (spatial size, channels) of PreActResNet-18's four stages on 32×32 inputs: the
# convolutions bench_backward.py times in JAX and bench_peers.py in PyTorch.
CONV_STAGES = ((32, 64), (16, 128), (8, 256), (4, 512))


def cifar_augment():
  """The train step's on-device augmentation with CIFAR-10's channel statistics."""
  from mixjax.training import Augment  # here: jax must not load before ensure_allocator
  return Augment(mean=(125.3, 123.0, 113.9), std=(63.0, 62.1, 66.7))


def cifar_batch(batch_size: int, seed: int = 0) -> dict:
  """A random host batch of uint8 32×32×3 images and int32 labels in [0, 10)."""
  import numpy as np
  rng = np.random.default_rng(seed)
  return {"image": rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8),
          "label": rng.integers(0, 10, (batch_size,), dtype=np.int32)}

# glibc serves allocations above 32 MiB with a fresh mmap, so every 38/77 MB
# output buffer is page-faulted in (and zeroed by the kernel) on every call, in
# XLA and PyTorch alike: 9,408 faults per 38.5 MB. The ``jemalloc`` allocator
# of the benchmarks preloads jemalloc with page purging off, so freed buffers
# are reused and the timings show the kernels themselves.
JEMALLOC_PATHS = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
                  "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
                  "/usr/lib64/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
ALLOCATORS = ("default", "jemalloc")


def jemalloc_path() -> str | None:
  path = os.environ.get("JEMALLOC_PATH")
  if path:
    return path
  return next((p for p in JEMALLOC_PATHS if os.path.exists(p)), None)


def allocator_in_use() -> str:
  return "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "default"


def allocator_env(mode: str, base: dict | None = None) -> dict:
  """The environment a subprocess needs for allocator ``mode``."""
  env = dict(os.environ if base is None else base)
  preload = [p for p in env.get("LD_PRELOAD", "").split(":") if p and "jemalloc" not in p]
  env.pop("MALLOC_CONF", None)
  if mode == "jemalloc":
    path = jemalloc_path()
    if path is None:
      raise SystemExit("--allocator jemalloc: libjemalloc.so.2 not found (apt-get install "
                       "libjemalloc2, or set JEMALLOC_PATH)")
    preload.append(path)
    env["MALLOC_CONF"] = JEMALLOC_CONF
  if preload:
    env["LD_PRELOAD"] = ":".join(preload)
  else:
    env.pop("LD_PRELOAD", None)
  return env


def ensure_allocator(mode: str) -> None:
  """Re-executes this script with the environment of ``mode`` if needed.

  An allocator must be chosen before the process starts (LD_PRELOAD).
  """
  if allocator_in_use() == mode:
    return
  env = allocator_env(mode)
  sys.stdout.flush()
  os.execve(sys.executable, [sys.executable] + sys.argv, env)


def run_peer(python: str, args: list[str], allocator: str) -> dict:
  """Runs ``bench_peers.py ARGS`` in the peers venv's ``python`` under ``allocator``.

  Its stderr is passed on; returns the JSON object it prints last.
  """
  cmd = [python, os.path.join(HERE, "bench_peers.py"), *args]
  proc = subprocess.run(cmd, capture_output=True, text=True, env=allocator_env(allocator))
  sys.stderr.write(proc.stderr)
  if proc.returncode:
    raise RuntimeError(f"peers failed: {' '.join(cmd)}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
      if line.strip().startswith("Model name:"):
        return line.split(":", 1)[1].strip()
  except (OSError, subprocess.CalledProcessError):
    pass
  return platform.processor() or "unknown"


def machine() -> dict:
  try:
    affinity = len(os.sched_getaffinity(0))
  except AttributeError:
    affinity = os.cpu_count()
  try:
    thp = open("/sys/kernel/mm/transparent_hugepage/enabled").read().strip()
  except OSError:
    thp = None
  mem = None
  try:
    with open("/proc/meminfo") as f:
      mem = round(int(f.readline().split()[1]) / 2**20, 1)
  except OSError:
    pass
  return {
      "cpu": cpu_model(),
      "cores": affinity,
      "memory_gib": mem,
      "os": platform.platform(),
      "python": platform.python_version(),
      "transparent_hugepage": thp,
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }


def now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def loadavg() -> float:
  try:
    with open("/proc/loadavg") as f:
      return float(f.read().split()[0])
  except OSError:
    return float("nan")


def wait_for_quiet(threshold: float, max_wait: float = 600.0, poll: float = 20.0) -> float:
  """Waits until the 1-minute load average is below ``threshold``.

  Returns the load average when the wait ended (it may still be above the
  threshold if ``max_wait`` ran out; the caller records it either way).
  """
  if threshold <= 0:
    return loadavg()
  start = time.monotonic()
  load = loadavg()
  while load >= threshold and time.monotonic() - start < max_wait:
    print(f"  load average {load:.2f} >= {threshold}; waiting {poll:.0f} s ...",
          file=sys.stderr, flush=True)
    time.sleep(poll)
    load = loadavg()
  return load


def minor_faults() -> int:
  """Minor page faults of this process so far (a fresh page touched: with
  glibc, every large buffer that was just ``mmap``-ed)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class CpuWatch:
  """How busy the machine was with *other* processes during a measurement.

  The load average counts this benchmark's own threads, so it cannot tell a
  quiet machine from a disturbed one while the benchmark runs. This compares
  the machine's busy CPU time (``/proc/stat``) with this process's own (and its
  waited-for children's) CPU time: ``other_cpu`` is the rest, in cores (0 =
  nobody else ran; 1 = another process kept one core busy throughout).
  """

  @staticmethod
  def _busy() -> float:
    with open("/proc/stat") as f:
      v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")

  @staticmethod
  def _own() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system

  def __init__(self):
    try:
      self.t0, self.b0, self.o0 = time.monotonic(), self._busy(), self._own()
      self.ok = True
    except (OSError, ValueError):
      self.ok = False
    self.f0 = minor_faults()

  def faults(self) -> int:
    """Minor page faults of this process since the watch started."""
    return minor_faults() - self.f0

  def own_cores(self) -> float | None:
    """This process's (and its waited-for children's) CPU time / wall time."""
    if not self.ok:
      return None
    wall = time.monotonic() - self.t0
    return round((self._own() - self.o0) / wall, 3) if wall > 0 else None

  def other_cpu(self) -> float | None:
    if not self.ok:
      return None
    wall = time.monotonic() - self.t0
    other = (self._busy() - self.b0) - (self._own() - self.o0)
    return round(max(other, 0.0) / wall, 3) if wall > 0 else None


def stats(times_s: list[float]) -> dict:
  """Median and spread of timings in seconds, returned in milliseconds."""
  ts = sorted(times_s)
  n = len(ts)
  q = lambda p: ts[min(n - 1, max(0, int(round(p * (n - 1)))))]
  return {
      "median_ms": statistics.median(ts) * 1e3,
      "p10_ms": q(0.1) * 1e3,
      "p90_ms": q(0.9) * 1e3,
      "min_ms": ts[0] * 1e3,
      "n": n,
  }


def save_json(path: str, data: dict) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    json.dump(data, f, indent=1, sort_keys=False)
    f.write("\n")
  print(f"wrote {path}", file=sys.stderr)
