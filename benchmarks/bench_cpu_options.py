"""Which XLA:CPU library fusions make the PreActResNet-18 step fast.

XLA:CPU hands some ops to YNNPACK, chosen by the repeated debug option
``xla_cpu_experimental_ynn_fusion_type`` (jaxlib 0.10: dots, reductions and
convolutions by default). This script compiles the same train step (ERM, batch
128, float32, one device) and one convolution's forward + backward pass
(3×3, 64 → 64 channels on 128×32×32) under several lists, passed per program
as ``jax.jit(..., compiler_options=...)``, and times them in interleaved rounds
in one process. It also checks which list reproduces XLA's default bit for bit
(same loss after two steps), which is how we know what the default is.

mixjax's choice, ``mixjax.training.CPU_COMPILER_OPTIONS``, is the default list
without convolutions.

  python benchmarks/bench_cpu_options.py          # ~3.5 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mixjax.models import preact_resnet18  # noqa: E402
from mixjax.training import (  # noqa: E402
  CPU_COMPILER_OPTIONS,
  DataParallel,
  create_train_state,
  make_eval_step,
  make_optimizer,
  make_train_step,
)
from mixjax.training.compiler_options import YNN_FUSION_TYPE  # noqa: E402

# name -> the YNNPACK fusion list (None: XLA's default options).
VARIANTS = {
    "xla_default": None,
    "mixjax (default minus convolutions)": CPU_COMPILER_OPTIONS[YNN_FUSION_TYPE],
    "DOT,REDUCE": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE",
    "REDUCE": "LIBRARY_FUSION_TYPE_REDUCE",
    "INDIVIDUAL_DOT": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    "INDIVIDUAL_DOT,REDUCE,INDIVIDUAL_CONVOLUTION": (
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE,"
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"),
}


def parse_args():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--batch-size", type=int, default=128)
  p.add_argument("--steps", type=int, default=2, help="timed steps per chunk")
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--wait-load", type=float, default=0.0)
  p.add_argument("--out", default=os.path.join(_common.RESULTS, "cpu_options.json"))
  return p.parse_args()


def options(fusions: str | None) -> dict:
  """``compiler_options`` for a YNNPACK fusion list (None: XLA's defaults)."""
  return {} if fusions is None else {YNN_FUSION_TYPE: fusions}


def conv_grad(fusions: str | None):
  """Forward + backward of one 3×3, 64-channel convolution, compiled with ``fusions``."""
  def loss(w, x):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(y * y)
  return jax.jit(jax.grad(loss, argnums=(0, 1)), compiler_options=options(fusions) or None)


def main():
  args = parse_args()
  load_start = _common.wait_for_quiet(args.wait_load)
  started, date = time.time(), _common.now()
  model = preact_resnet18(num_classes=10)
  augment = _common.cifar_augment()
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (args.batch_size, 32, 32, 3), dtype=np.uint8),
           "label": rng.integers(0, 10, (args.batch_size,), dtype=np.int32)}
  w = jnp.asarray(rng.normal(size=(3, 3, 64, 64)) * 0.05, jnp.float32)
  x = jnp.asarray(rng.normal(size=(args.batch_size, 32, 32, 64)), jnp.float32)
  fresh = create_train_state(model, jax.random.key(0), (32, 32, 3), make_optimizer(0.1))
  runs = {}
  for name, fusions in VARIANTS.items():
    dp = DataParallel(make_train_step(model, None, 10, augment),
                      make_eval_step(model, augment), devices=jax.devices()[:1],
                      compiler_options=options(fusions))
    state = dp.put_state(fresh)
    t0 = time.perf_counter()
    for i in range(2):
      state, metrics = dp.train_step(state, batch, jax.random.key(i))
    loss = float(metrics["loss"])
    conv = conv_grad(fusions)
    jax.block_until_ready(conv(w, x))
    runs[name] = {"fusions": fusions, "dp": dp, "state": state, "conv": conv,
                  "loss_after_2_steps": loss, "step_s": [], "conv_ms": [],
                  "compile_and_2_steps_s": time.perf_counter() - t0}
    print(f"  {name}: loss after 2 steps {loss!r}", file=sys.stderr, flush=True)
  blocks = []
  for r in range(args.rounds):
    for name, run in runs.items():
      watch = _common.CpuWatch()
      t0 = time.perf_counter()
      for i in range(args.steps):
        run["state"], metrics = run["dp"].train_step(run["state"], batch, jax.random.key(i))
      jax.block_until_ready((run["state"], metrics))
      run["step_s"].append((time.perf_counter() - t0) / args.steps)
      for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(run["conv"](w, x))
        run["conv_ms"].append(1e3 * (time.perf_counter() - t0))
      blocks.append({"round": r, "variant": name, "other_cpu": watch.other_cpu()})
      print(f"  round {r} {name:45s} {run['step_s'][-1]:.3f} s/step, conv "
            f"{np.median(run['conv_ms'][-3:]):.1f} ms", file=sys.stderr, flush=True)
  default_loss = runs["xla_default"]["loss_after_2_steps"]
  results = []
  for name, run in runs.items():
    step = float(np.median(run["step_s"]))
    results.append({
        "variant": name, "ynn_fusion_type": run["fusions"], "step_s": step,
        "images_per_s": args.batch_size / step, "step_s_all": run["step_s"],
        "conv_fwd_bwd_ms": float(np.median(run["conv_ms"])),
        "loss_after_2_steps": run["loss_after_2_steps"],
        "bitwise_same_loss_as_default": run["loss_after_2_steps"] == default_loss})
  dev = jax.devices()[0]
  report = {"benchmark": "cpu_options", "date": date, "machine": _common.machine(),
            "device": f"{dev.platform}:{dev.device_kind}",
            "allocator": _common.allocator_in_use(), "versions": {"jax": jax.__version__},
            "loadavg_start": load_start,
            "args": vars(args), "results": results, "blocks": blocks,
            "loadavg_end": _common.loadavg(), "wall_s": round(time.time() - started, 1)}
  _common.save_json(args.out, report)


if __name__ == "__main__":
  main()
