"""Where the PreActResNet-18 step's time goes: forward vs backward, and the
three convolutions of a layer (forward, input gradient, weight gradient).

Section 3 of the README found PyTorch's step faster than ours once both sides
use jemalloc. This script splits the step to say where: the whole ERM step
(``DataParallel``, as ``bench_train.py`` times it), the model's forward pass in
training mode (BatchNorm batch statistics), its forward + backward pass
(gradient of the cross-entropy, no optimizer), the on-device augmentation and
the optimizer update, each compiled as ``DataParallel`` compiles on CPU
(``default_compiler_options``), with the compiled program's convolution,
transpose and copy ops counted; then one 3×3
convolution per stage shape (32×32×64 … 4×4×512, batch 128): its forward pass,
its input gradient and its weight gradient, each its own jitted program. All
variants run in interleaved rounds; medians. With ``--peers`` the same parts of
the PyTorch model run in the peers venv right after (``bench_peers.py parts``).

  python benchmarks/bench_backward.py --allocator jemalloc \\
      --peers benchmarks/.venv-peers/bin/python        # ~2 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


def parse_args():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--batch-size", type=int, default=128)
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--peers", metavar="PYTHON", help="the peers venv's python")
  p.add_argument("--allocator", choices=_common.ALLOCATORS, default="default")
  p.add_argument("--wait-load", type=float, default=0.0)
  p.add_argument("--out", help="default: results/backward_<allocator>.json")
  return p.parse_args()


ARGS = parse_args()
_common.ensure_allocator(ARGS.allocator)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from mixjax.models import preact_resnet18  # noqa: E402
from mixjax.training import (  # noqa: E402
  DataParallel,
  create_train_state,
  default_compiler_options,
  make_eval_step,
  make_optimizer,
  make_train_step,
)
from mixjax.training.step import _prepare  # noqa: E402  (the step's own augmentation)

DIMS = ("NHWC", "HWIO", "NHWC")


def hlo_counts(compiled) -> dict | None:
  if not hasattr(compiled, "as_text"):
    return None
  text = compiled.as_text()
  return {op: text.count(f" {op}(") for op in ("convolution", "transpose", "copy")}


class Stepper:
  """The whole ERM train step as ``bench_train.py`` runs it (``DataParallel``,
  one device, state donated): each call runs one step on the previous state,
  and is timed alone (``bench_train.py`` times chunks of steps)."""

  def __init__(self, batch_size: int):
    model = preact_resnet18(num_classes=10)
    augment = _common.cifar_augment()
    self.dp = DataParallel(make_train_step(model, None, 10, augment),
                           make_eval_step(model, augment), devices=jax.devices()[:1])
    self.state = self.dp.put_state(create_train_state(
        model, jax.random.key(0), (32, 32, 3), make_optimizer(0.1)))
    self.batch = _common.cifar_batch(batch_size)
    self.key = jax.random.key(1)

  def __call__(self):
    self.state, metrics = self.dp.train_step(self.state, self.batch, self.key)
    return metrics


def step_part_programs(batch_size: int, options: dict) -> dict:
  """The step's parts besides the model: augmentation and the optimizer update."""
  model = preact_resnet18(num_classes=10)
  state = create_train_state(model, jax.random.key(0), (32, 32, 3), make_optimizer(0.1))
  grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), state.params)
  augment = _common.cifar_augment()
  images = jnp.asarray(_common.cifar_batch(batch_size)["image"])

  def augment_fn(key, images):   # what the train step does before the model
    return _prepare(images, augment, key)

  def optimizer_fn(state, grads):   # SGD, Nesterov momentum, weight decay (not donated)
    return state.apply_gradients(grads=grads, batch_stats=state.batch_stats)

  return {"augment": (jax.jit(augment_fn).lower(jax.random.key(2), images)
                      .compile(compiler_options=options), (jax.random.key(2), images)),
          "optimizer": (jax.jit(optimizer_fn).lower(state, grads)
                        .compile(compiler_options=options), (state, grads))}


def model_programs(batch_size: int, options: dict) -> dict:
  """Forward (train mode) and forward + backward of PreActResNet-18, compiled."""
  model = preact_resnet18(num_classes=10)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(batch_size, 32, 32, 3)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, batch_size), jnp.int32)
  variables = model.init(jax.random.key(0), x[:2], train=False)

  def forward(params, stats):
    logits, _ = model.apply({"params": params, "batch_stats": stats}, x, train=True,
                            mutable=["batch_stats"])
    return logits

  def loss(params, stats):
    return optax.softmax_cross_entropy_with_integer_labels(forward(params, stats), y).mean()

  args = (variables["params"], variables["batch_stats"])
  return {name: (jax.jit(fn).lower(*args).compile(compiler_options=options), args)
          for name, fn in (("forward", forward), ("forward_backward", jax.grad(loss)))}


def conv_programs(batch_size: int, size: int, ch: int, options: dict) -> dict:
  """One 3×3 convolution's forward, input gradient and weight gradient, compiled."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(batch_size, size, size, ch)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, ch, ch)) * 0.05, jnp.float32)
  g = jnp.asarray(rng.normal(size=(batch_size, size, size, ch)), jnp.float32)

  def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DIMS)

  fns = {"forward": lambda x, w, g: conv(x, w),
         "input_grad": lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0],
         "weight_grad": lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0]}
  return {name: (jax.jit(fn).lower(x, w, g).compile(compiler_options=options), (x, w, g))
          for name, fn in fns.items()}


def main():
  load_start = _common.wait_for_quiet(ARGS.wait_load)
  started = time.time()
  options = default_compiler_options(jax.devices()[:1])
  programs = {("model", "train_step"): (Stepper(ARGS.batch_size), ())}
  programs.update({("model", name): p
                   for name, p in model_programs(ARGS.batch_size, options).items()})
  programs.update({("model", name): p
                   for name, p in step_part_programs(ARGS.batch_size, options).items()})
  for size, ch in _common.CONV_STAGES:
    for name, p in conv_programs(ARGS.batch_size, size, ch, options).items():
      programs[(f"conv {size}x{size}x{ch}", name)] = p
  times = {key: [] for key in programs}
  for fn, args in programs.values():
    jax.block_until_ready(fn(*args))   # warm-up
  blocks = []
  for r in range(ARGS.rounds):
    watch = _common.CpuWatch()
    for key, (fn, args) in programs.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[key].append(time.perf_counter() - t0)
    blocks.append({"round": r, "other_cpu": watch.other_cpu()})
    print(f"  round {r}: others used {blocks[-1]['other_cpu']} cores", file=sys.stderr,
          flush=True)
  results = [{"what": what, "part": part, "hlo": hlo_counts(programs[(what, part)][0]),
              **_common.stats(times[(what, part)])} for what, part in programs]
  import flax
  report = {"benchmark": "backward", "date": _common.now(), "machine": _common.machine(),
            "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
            "allocator": _common.allocator_in_use(),
            "versions": {"jax": jax.__version__, "flax": flax.__version__},
            "loadavg_start": load_start, "args": vars(ARGS), "compiler_options": options,
            "blocks": blocks, "results": results}
  if ARGS.peers:
    print("PyTorch parts", file=sys.stderr, flush=True)
    watch = _common.CpuWatch()
    report["pytorch"] = _common.run_peer(
        ARGS.peers, ["parts", "--batch-size", str(ARGS.batch_size)], ARGS.allocator)
    report["pytorch"]["other_cpu"] = watch.other_cpu()
  report["wall_s"] = round(time.time() - started, 1)
  out = ARGS.out or os.path.join(_common.RESULTS, f"backward_{report['allocator']}.json")
  _common.save_json(out, report)


if __name__ == "__main__":
  main()
