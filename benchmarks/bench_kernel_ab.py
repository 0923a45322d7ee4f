"""A/B of the apply kernel: ``mixjax/params.py`` at a git revision vs the working tree.

Builds each public op (Mixup, CutMix, the policy; batch and elem) twice, once
with ``apply_mix`` from ``git show REF:mixjax/params.py`` and once with the
current one (same samplers, same keys), checks that both give bit-identical
outputs, and times them interleaved in one process.

  python benchmarks/bench_kernel_ab.py --ref <commit before the change>
  python benchmarks/bench_kernel_ab.py --ref <commit> --allocator jemalloc
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


def parse_args():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--ref", default="HEAD", help="git revision of the 'before' params.py")
  p.add_argument("--shapes", default="cifar,imagenet64")
  p.add_argument("--dtypes", default="float32,bfloat16")
  p.add_argument("--repeats", type=int, default=0, help="0: 60 CIFAR, 16 ImageNet")
  p.add_argument("--rounds", type=int, default=6)
  p.add_argument("--allocator", choices=_common.ALLOCATORS, default="default")
  p.add_argument("--wait-load", type=float, default=0.0)
  p.add_argument("--out", default=None)
  return p.parse_args()


ARGS = parse_args()
_common.ensure_allocator(ARGS.allocator)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import mixjax  # noqa: E402
from mixjax import params as params_now  # noqa: E402


def load_ref(ref: str):
  root = os.path.dirname(_common.HERE)
  src = subprocess.run(["git", "show", f"{ref}:mixjax/params.py"], cwd=root,
                       capture_output=True, text=True, check=True).stdout
  path = os.path.join(tempfile.mkdtemp(), "params_ref.py")
  with open(path, "w") as f:
    f.write(src)
  spec = importlib.util.spec_from_file_location("params_ref", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def ops(module, b, hw, k):
  cfg = lambda m: mixjax.MixConfig(mixup_alpha=0.8, cutmix_alpha=1.0, mode=m,
                                   num_classes=k)
  out = {}
  for m in ("batch", "elem"):
    samplers = {
        "mixup": lambda key, m=m: mixjax.sample_mixup(key, b, alpha=1.0, mode=m),
        "cutmix": lambda key, m=m: mixjax.sample_cutmix(key, b, hw, alpha=1.0, mode=m),
        "policy": lambda key, m=m: mixjax.sample_mix(key, b, hw, cfg(m)),
    }
    for op, sample in samplers.items():
      out[f"{op}/{m}"] = jax.jit(
          lambda key, x, y, s=sample: module.apply_mix(s(key), x, y, k))
  return out


def main():
  load_start = _common.wait_for_quiet(ARGS.wait_load)
  ref = load_ref(ARGS.ref)
  rev = subprocess.run(["git", "rev-parse", "--short", ARGS.ref], capture_output=True,
                       text=True, cwd=os.path.dirname(_common.HERE)).stdout.strip()
  report = {"benchmark": "kernel_ab", "date": _common.now(), "machine": _common.machine(),
            "allocator": _common.allocator_in_use(), "ref": rev,
            "versions": {"jax": jax.__version__}, "loadavg_start": load_start,
            "results": []}
  for shape_name in ARGS.shapes.split(","):
    shape = _common.SHAPES[shape_name]
    k = _common.NUM_CLASSES[shape_name]
    repeats = ARGS.repeats or (60 if shape_name == "cifar" else 16)
    for dtype_name in ARGS.dtypes.split(","):
      x = jnp.asarray(np.random.default_rng(0).random(shape, np.float32)).astype(dtype_name)
      y = jnp.asarray(np.arange(shape[0]) % k, jnp.int32)
      keys = jax.random.split(jax.random.key(0), 32)
      keys = [keys[i] for i in range(32)]
      before, after = ops(ref, shape[0], shape[1:3], k), ops(params_now, shape[0],
                                                            shape[1:3], k)
      for name in before:
        for key in keys[:4]:
          a, b = before[name](key, x, y), after[name](key, x, y)
          for u, v in zip(a, b, strict=True):
            if not np.array_equal(np.asarray(u).view(np.uint8), np.asarray(v).view(np.uint8)):
              raise SystemExit(f"{shape_name} {dtype_name} {name}: outputs differ")
        times = {"before": [], "after": []}
        watch = _common.CpuWatch()
        per_round = max(1, repeats // ARGS.rounds)
        for r in range(ARGS.rounds):
          pair = (("before", before[name]), ("after", after[name]))
          for which, fn in (pair if r % 2 == 0 else pair[::-1]):   # alternate order
            for i in range(per_round):
              key = keys[(r * per_round + i) % len(keys)]
              t0 = time.perf_counter()
              jax.block_until_ready(fn(key, x, y))
              times[which].append(time.perf_counter() - t0)
        rec = {"shape": shape_name, "dtype": dtype_name, "name": name,
               "before_ms": _common.stats(times["before"])["median_ms"],
               "after_ms": _common.stats(times["after"])["median_ms"],
               "other_cpu": watch.other_cpu()}
        rec["speedup"] = rec["before_ms"] / rec["after_ms"]
        report["results"].append(rec)
        print(f"  {shape_name:11s} {dtype_name:8s} {name:13s} before {rec['before_ms']:8.3f}"
              f" ms  after {rec['after_ms']:8.3f} ms  x{rec['speedup']:.2f}"
              f"  (others {rec['other_cpu']})",
              file=sys.stderr, flush=True)
  report["loadavg_end"] = _common.loadavg()
  out = ARGS.out or os.path.join(_common.RESULTS, f"kernel_ab_{report['allocator']}.json")
  _common.save_json(out, report)


if __name__ == "__main__":
  main()
