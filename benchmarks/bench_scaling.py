"""Scaling of the mapped train step over 1, 2, 4, ... devices.

Each device count runs in its own subprocess. On CPU the devices are forced
with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``: they are N logical
devices that share the same physical cores, so the number measures the cost of
splitting the step (per-device programs, the gradient all-reduce, smaller
per-device matrices), not added compute. The ideal on CPU is flat throughput.
On a machine with N GPUs the same command measures real data parallelism.

  python benchmarks/bench_scaling.py                       # CPU, 1/2/4 forced devices
  python benchmarks/bench_scaling.py --platform gpu --devices 1,2,4,8 \
      --dtype bfloat16 --batch-size 1024 --steps 50         # GPUs (strong scaling)
  python benchmarks/bench_scaling.py --platform gpu --devices 1,2,4,8 \
      --dtype bfloat16 --per-device-batch 256 --steps 50    # weak scaling
  python benchmarks/bench_scaling.py --layouts 1x4,2x2,4x1  # processes x devices

``--layouts PxM,...`` runs the same global batch on P local processes of M forced
CPU devices each, joined by ``jax.distributed`` on 127.0.0.1 (gloo collectives),
as ``train.py --coordinator_address=...`` does; every layout uses the same P·M
devices on the same cores, so the differences are the multi-process overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/
import _common  # noqa: E402


def parse_args():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--devices", default="1,2,4")
  p.add_argument("--batch-size", type=int, default=128, help="global batch (strong scaling)")
  p.add_argument("--per-device-batch", type=int, default=0,
                 help="if set, global batch = this x devices (weak scaling)")
  p.add_argument("--method", default="mixup")
  p.add_argument("--backend", default="shard_map", choices=("shard_map", "pmap"))
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--dtype", default="float32")
  p.add_argument("--platform", default="cpu")
  p.add_argument("--xla-defaults", action="store_true",
                 help="compile with XLA's default options (compiler_options={})")
  p.add_argument("--allocator", choices=_common.ALLOCATORS, default="default")
  p.add_argument("--wait-load", type=float, default=0.0)
  p.add_argument("--out", default=None)
  p.add_argument("--layouts", default="",
                 help="processes x devices, e.g. 1x4,2x2,4x1 (replaces --devices)")
  p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
  p.add_argument("--coordinator", default="", help=argparse.SUPPRESS)
  p.add_argument("--num-processes", type=int, default=0, help=argparse.SUPPRESS)
  p.add_argument("--process-id", type=int, default=0, help=argparse.SUPPRESS)
  return p.parse_args()


TOO_FEW_DEVICES = 3   # the worker's exit status when the machine has fewer devices


def worker(args) -> dict:
  """Runs in the subprocess: times the mapped step on ``args.worker`` devices."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from mixjax.models import preact_resnet18
  from mixjax.training import (
    MANIFOLD_METHODS,
    DataParallel,
    create_train_state,
    make_eval_step,
    make_optimizer,
    make_train_step,
    mixer_from_config,
  )

  n = args.worker
  devices = jax.devices()  # Every process's, under jax.distributed.
  if len(devices) < n:
    print(f"asked for {n} devices, {len(devices)} available", file=sys.stderr)
    raise SystemExit(TOO_FEW_DEVICES)
  devices = devices[:n]
  batch_size = args.per_device_batch * n if args.per_device_batch else args.batch_size
  dtype = jnp.dtype(args.dtype)
  model = preact_resnet18(num_classes=10, dtype=dtype)
  augment = _common.cifar_augment()
  from configs import base
  mixer = mixer_from_config(base.get_config(), args.method)
  dp = DataParallel(make_train_step(model, mixer, 10, augment, dtype=dtype,
                                    manifold=args.method in MANIFOLD_METHODS),
                    make_eval_step(model, augment, dtype=dtype),
                    backend=args.backend, devices=devices,
                    compiler_options={} if args.xla_defaults else None)
  dp.check_batch_size(batch_size)
  state = dp.put_state(create_train_state(model, jax.random.key(0), (32, 32, 3),
                                          make_optimizer(0.1)))
  batch = _common.cifar_batch(batch_size)
  if jax.process_count() > 1:  # This process's rows of the global batch.
    from mixjax.training.distributed import process_slice
    batch = {k: v[process_slice(batch_size)] for k, v in batch.items()}
  t0 = time.perf_counter()
  state, metrics = dp.train_step(state, batch, jax.random.key(1))
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  state, metrics = dp.train_step(state, batch, jax.random.key(2))
  jax.block_until_ready(metrics)
  rates, step = [], 3
  watch = _common.CpuWatch()
  for _ in range(args.rounds):
    t0 = time.perf_counter()
    for _ in range(args.steps):
      state, metrics = dp.train_step(state, batch, jax.random.key(step))
      step += 1
    jax.block_until_ready((state, metrics))
    rates.append(args.steps / (time.perf_counter() - t0))
  med = float(np.median(rates))
  cores_used = watch.own_cores()
  return {"devices": n, "cores_used": cores_used, "device_kind": devices[0].device_kind,
          "platform": devices[0].platform, "global_batch": batch_size,
          "per_device_batch": batch_size // n, "steps_per_s": med,
          "images_per_s": med * batch_size, "rates": rates, "compile_s": compile_s,
          "loss": float(metrics["loss"]), "jax": jax.__version__,
          "processes": jax.process_count(),
          "compiler_options": dp.compiler_options}


def main():
  args = parse_args()
  if args.worker:
    if args.platform:
      os.environ["JAX_PLATFORMS"] = args.platform
    if args.num_processes:
      from mixjax.training import distributed
      distributed.initialize(distributed.DistributedConfig(
          coordinator_address=args.coordinator, num_processes=args.num_processes,
          process_id=args.process_id, heartbeat_timeout_seconds=60))
    record = worker(args)
    if args.process_id == 0:
      print(json.dumps(record))
    return
  if args.layouts:
    return layouts(args)
  load_start = _common.wait_for_quiet(args.wait_load)
  started = time.time()
  report = {"benchmark": "scaling", "date": _common.now(), "machine": _common.machine(),
            "platform": args.platform, "allocator": args.allocator,
            "loadavg_start": load_start, "args": vars(args), "results": [], "skipped": []}
  for n in [int(v) for v in args.devices.split(",")]:
    env = _common.allocator_env(args.allocator)
    if args.platform == "cpu":
      flags = env.get("XLA_FLAGS", "")
      env["XLA_FLAGS"] = (flags + f" --xla_force_host_platform_device_count={n}").strip()
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(n)] + [
        a for a in sys.argv[1:]]
    watch = _common.CpuWatch()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode == TOO_FEW_DEVICES:   # e.g. --devices 1,2,4,8 on a 1-GPU machine
      why = next(line for line in proc.stderr.splitlines() if line.startswith("asked for"))
      print(f"  {n} device(s): skipped, {why}", file=sys.stderr, flush=True)
      report["skipped"].append({"devices": n, "why": why})
      continue
    if proc.returncode:
      sys.stderr.write(proc.stderr)
      raise SystemExit(f"worker for {n} devices failed")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    rec["loadavg"] = _common.loadavg()
    rec["other_cpu"] = watch.other_cpu()
    report["results"].append(rec)
    print(f"  {n} device(s): {rec['steps_per_s']:.3f} steps/s, "
          f"{rec['images_per_s']:.1f} images/s (compile {rec['compile_s']:.1f} s, "
          f"others used {rec['other_cpu']} cores)", file=sys.stderr, flush=True)
  base = report["results"][0]["images_per_s"] if report["results"] else None
  for rec in report["results"]:
    rec["vs_first"] = rec["images_per_s"] / base if base else None
  report["loadavg_end"] = _common.loadavg()
  report["wall_s"] = round(time.time() - started, 1)
  name = f"scaling_{args.platform}" + ("_xla_defaults" if args.xla_defaults else "")
  out = args.out or os.path.join(_common.RESULTS, f"{name}.json")
  _common.save_json(out, report)


def layouts(args) -> None:
  """Times the step for each ``PxM`` layout: P processes of M CPU devices."""
  import socket

  report = {"benchmark": "processes", "date": _common.now(), "machine": _common.machine(),
            "platform": "cpu", "allocator": args.allocator,
            "loadavg_start": _common.wait_for_quiet(args.wait_load), "args": vars(args),
            "results": []}
  started = time.time()
  for layout in args.layouts.split(","):
    procs, per = (int(v) for v in layout.split("x"))
    env = _common.allocator_env(args.allocator)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={per}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    with socket.socket() as s:
      s.bind(("127.0.0.1", 0))
      port = s.getsockname()[1]
    watch = _common.CpuWatch()
    workers = [subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--worker", str(procs * per),
         "--coordinator", f"127.0.0.1:{port}", "--num-processes", str(procs),
         "--process-id", str(i), *sys.argv[1:]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(procs)]
    outs = [w.communicate(timeout=1800) for w in workers]
    if any(w.returncode for w in workers):
      sys.stderr.write(outs[0][1][-3000:])
      raise SystemExit(f"layout {layout} failed")
    rec = json.loads(outs[0][0].strip().splitlines()[-1])
    rec.update(layout=layout, processes=procs, devices_per_process=per,
               other_cpu=watch.other_cpu(), loadavg=_common.loadavg())
    report["results"].append(rec)
    print(f"  {layout}: {rec['steps_per_s']:.3f} steps/s, {rec['images_per_s']:.1f} "
          f"images/s (compile {rec['compile_s']:.1f} s)", file=sys.stderr, flush=True)
  base = report["results"][0]["images_per_s"]
  for rec in report["results"]:
    rec["vs_first"] = rec["images_per_s"] / base
  report["loadavg_end"] = _common.loadavg()
  report["wall_s"] = round(time.time() - started, 1)
  _common.save_json(args.out or os.path.join(_common.RESULTS, "processes_cpu.json"), report)


if __name__ == "__main__":
  main()
