"""Training overhead of mixing: train steps/s per method (PreActResNet-18 on CIFAR by default).

One process, one model, one batch: the step of ``mixjax.training.make_train_step``
mapped by ``DataParallel`` over one device, for ``erm`` (no mixing) and each
method (``mixup``, ``cutmix``, ``manifold_mixup``, ``policy``; paper presets).
The methods are timed in interleaved rounds (the order rotates every round),
so drift of the machine's load hits them all alike. Each timed chunk runs
``--steps`` steps back to back (async dispatch, as in the training loop) and
blocks at the end; steps/s is the median over rounds of the chunks' rates.

It then checks that Manifold Mixup's random layer never recompiles: it runs
``--compile-steps`` steps (at the small ``--compile-batch``), counts how often
the step function is traced and the jit cache size, and shows which layers the
steps drew.

With ``--peers PYTHON`` it also runs a PyTorch PreActResNet-18 SGD step (batch
and threads the same) via ``bench_peers.py train`` in that interpreter.

  python benchmarks/bench_train.py                  # ~4-5 min on 2 CPU cores
  python benchmarks/bench_train.py --peers benchmarks/.venv-peers/bin/python
  python benchmarks/bench_train.py --dtype bfloat16 --steps 50 --rounds 3   # GPU

With ``--model`` any zoo model at ``--image-size`` (ImageNet's models: 1,000 classes,
no pad-and-crop, ImageNet's statistics), e.g. the ImageNet recipes' networks at a small
batch, every method against ERM (results/train_<model>_<allocator>.json):

  python benchmarks/bench_train.py --model resnet50 --image-size 224 --batch-size 16 \
    --methods erm,mixup,cutmix,manifold_mixup,policy,fmix,resizemix,saliencymix,gridmix,smoothmix \
    --steps 2 --rounds 2 --compile-steps 0
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/
import _common  # noqa: E402


def parse_args():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model", default="preact_resnet18", help="a name of mixjax.models")
  p.add_argument("--image-size", type=int, default=32)
  p.add_argument("--batch-size", type=int, default=128)
  p.add_argument("--steps", type=int, default=3, help="timed steps per chunk")
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--methods", default="erm,mixup,cutmix,manifold_mixup,policy")
  p.add_argument("--dtype", default="float32")
  p.add_argument("--compile-steps", type=int, default=200)
  p.add_argument("--compile-batch", type=int, default=8)
  p.add_argument("--peers", default=None, metavar="PYTHON")
  p.add_argument("--peer-steps", type=int, default=10)
  p.add_argument("--allocator", choices=_common.ALLOCATORS, default="default")
  p.add_argument("--wait-load", type=float, default=0.0)
  p.add_argument("--platform", default=None)
  p.add_argument("--xla-defaults", action="store_true",
                 help="compile the steps with XLA's default options (DataParallel's "
                      "compiler_options={}) instead of mixjax's CPU options")
  p.add_argument("--out", default=None)
  return p.parse_args()


ARGS = parse_args()
if ARGS.peers and ARGS.model != "preact_resnet18":
  sys.exit("--peers times PyTorch's PreActResNet-18 only: drop it with --model.")
_common.ensure_allocator(ARGS.allocator)
if ARGS.platform:
  os.environ["JAX_PLATFORMS"] = ARGS.platform

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import mixjax  # noqa: E402
from configs import base  # noqa: E402
from mixjax.manifold import sample_plan  # noqa: E402
from mixjax.models import get_model  # noqa: E402
from mixjax.training import (  # noqa: E402
  MANIFOLD_METHODS,
  DataParallel,
  create_train_state,
  default_compiler_options,
  make_eval_step,
  make_optimizer,
  make_train_step,
  mixer_from_config,
)
from mixjax.training.step import Augment  # noqa: E402

# 32-px images are CIFAR's (10 classes, pad-and-crop); larger ones ImageNet's.
CIFAR = ARGS.image_size <= 32
NUM_CLASSES = 10 if CIFAR else 1000


def host_batch(batch_size: int, seed: int = 0) -> dict:
  """Random uint8 images of the benchmark's size and int32 labels."""
  rng = np.random.default_rng(seed)
  size = ARGS.image_size
  return {"image": rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8),
          "label": rng.integers(0, NUM_CLASSES, (batch_size,), dtype=np.int32)}


def build(method_name: str, batch_size: int, dtype):
  """A DataParallel over one device, its state, and a trace counter."""
  model = get_model(ARGS.model, NUM_CLASSES, **({} if dtype == jnp.float32 else
                                                 {"dtype": dtype}))
  mixer = mixer_from_config(base.get_config(), method_name)
  if CIFAR:
    augment = _common.cifar_augment()
  else:  # The ImageNet recipes': flips, no pad-and-crop (the host crops), ImageNet's stats.
    augment = Augment(0, True, (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
  inner = make_train_step(model, mixer, NUM_CLASSES, augment, dtype=dtype,
                          manifold=method_name in MANIFOLD_METHODS)
  traces = {"n": 0}

  def counted(state, batch, key):
    traces["n"] += 1   # runs only when jax traces the step
    return inner(state, batch, key)

  dp = DataParallel(counted, make_eval_step(model, augment, dtype=dtype),
                    devices=jax.devices()[:1],
                    compiler_options={} if ARGS.xla_defaults else None)
  state = create_train_state(model, jax.random.key(0), (ARGS.image_size,) * 2 + (3,),
                             make_optimizer(0.1))
  return dp, dp.put_state(state), traces, model, mixer


def cache_size(dp) -> int | None:
  try:
    return dp._train._cache_size()
  except AttributeError:
    return None


def overhead(args, dtype) -> dict:
  methods = args.methods.split(",")
  batch = host_batch(args.batch_size)
  runs = {}
  for name in methods:
    dp, state, traces, _, _ = build(name, args.batch_size, dtype)
    t0 = time.perf_counter()
    state, metrics = dp.train_step(state, batch, jax.random.key(1))
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    state, metrics = dp.train_step(state, batch, jax.random.key(2))   # warm
    jax.block_until_ready(metrics)
    runs[name] = {"dp": dp, "state": state, "traces": traces, "rates": [],
                  "compile_s": compile_s, "step": 3}
    print(f"  {name}: compiled in {compile_s:.1f} s", file=sys.stderr, flush=True)
  for r in range(args.rounds):
    order = methods[r % len(methods):] + methods[:r % len(methods)]
    for name in order:
      run = runs[name]
      state = run["state"]
      watch = _common.CpuWatch()
      t0 = time.perf_counter()
      for _ in range(args.steps):
        state, metrics = run["dp"].train_step(state, batch, jax.random.key(run["step"]))
        run["step"] += 1
      jax.block_until_ready((state, metrics))
      dt = time.perf_counter() - t0
      run["state"] = state
      run["rates"].append(args.steps / dt)
      run.setdefault("other_cpu", []).append(watch.other_cpu())
      run.setdefault("cores_used", []).append(watch.own_cores())
      run.setdefault("faults_per_step", []).append(round(watch.faults() / args.steps))
      print(f"  round {r} {name:15s} {args.steps / dt:6.3f} steps/s "
            f"(others used {run['other_cpu'][-1]} cores)", file=sys.stderr, flush=True)
  out = {}
  for name, run in runs.items():
    rates = sorted(run["rates"])
    med = float(np.median(rates))
    out[name] = {"steps_per_s": med, "images_per_s": med * args.batch_size,
                 "rates": rates, "compile_s": run["compile_s"],
                 "other_cpu": run.get("other_cpu"),
                 "cores_used": run.get("cores_used"),
                 "faults_per_step": run.get("faults_per_step"),
                 "traces": run["traces"]["n"], "jit_cache_size": cache_size(run["dp"])}
  base = out.get("erm", {}).get("steps_per_s")
  for rec in out.values():
    if base:
      rec["slowdown_vs_erm_pct"] = 100.0 * (base / rec["steps_per_s"] - 1.0)
  return out


def recompile_check(args, dtype, method_name="manifold_mixup") -> dict:
  """Runs ``compile_steps`` steps with fresh keys; counts traces and compiles."""
  dp, state, traces, model, mixer = build(method_name, args.compile_batch, dtype)
  batch = host_batch(args.compile_batch, seed=1)
  layers = model.mix_layers

  @jax.jit
  def drawn_layer(key):
    # The layer the step draws (batch mode: the same on every device).
    key_mix = jax.random.split(key, 3)[1]
    return sample_plan(key_mix, args.compile_batch, layers, alpha=mixer.alpha).layer

  counts = {}
  t0 = time.perf_counter()
  for i in range(args.compile_steps):
    key = jax.random.key(1000 + i)
    state, metrics = dp.train_step(state, batch, key)
    layer = int(drawn_layer(key))
    counts[layer] = counts.get(layer, 0) + 1
  jax.block_until_ready(metrics)
  return {"method": method_name, "steps": args.compile_steps,
          "batch_size": args.compile_batch, "traces": traces["n"],
          "jit_cache_size": cache_size(dp),
          "layers_drawn": {str(k): v for k, v in sorted(counts.items())},
          "wall_s": time.perf_counter() - t0}


def run_peer_train(python: str, args) -> dict:
  return _common.run_peer(python, ["train", "--batch-size", str(args.batch_size),
                                   "--steps", str(args.peer_steps)], ARGS.allocator)


def main():
  load_start = _common.wait_for_quiet(ARGS.wait_load)
  started = time.time()
  dtype = jnp.dtype(ARGS.dtype)
  dev = jax.devices()[0]
  import flax
  import optax
  report = {"benchmark": "train", "date": _common.now(), "machine": _common.machine(),
            "device": f"{dev.platform}:{dev.device_kind}",
            "allocator": _common.allocator_in_use(),
            "versions": {"jax": jax.__version__, "flax": flax.__version__,
                         "optax": optax.__version__, "mixjax": mixjax.__version__},
            "loadavg_start": load_start, "args": vars(ARGS),
            "compiler_options": ({} if ARGS.xla_defaults
                                 else default_compiler_options(jax.devices()[:1]))}
  print(f"overhead: batch {ARGS.batch_size}, {ARGS.rounds} rounds x {ARGS.steps} steps",
        file=sys.stderr, flush=True)
  report["overhead"] = overhead(ARGS, dtype)
  report["loadavg_after_overhead"] = _common.loadavg()
  if ARGS.compile_steps:
    print(f"recompile check: {ARGS.compile_steps} steps at batch {ARGS.compile_batch}",
          file=sys.stderr, flush=True)
    report["recompile"] = recompile_check(ARGS, dtype)
  if ARGS.peers:
    print("PyTorch PreActResNet-18", file=sys.stderr, flush=True)
    watch = _common.CpuWatch()
    report["pytorch"] = run_peer_train(ARGS.peers, ARGS)
    report["pytorch"]["other_cpu"] = watch.other_cpu()
  report["loadavg_end"] = _common.loadavg()
  report["wall_s"] = round(time.time() - started, 1)
  if dev.platform != "cpu":   # train_gpu_bfloat16.json: never overwrites a CPU result
    suffix = f"{dev.platform}_{ARGS.dtype}"
  else:
    suffix = "xla_defaults" if ARGS.xla_defaults else report["allocator"]
  if ARGS.model != "preact_resnet18":
    suffix = f"{ARGS.model}_{suffix}"
  out = ARGS.out or os.path.join(_common.RESULTS, f"train_{suffix}.json")
  _common.save_json(out, report)


if __name__ == "__main__":
  main()
