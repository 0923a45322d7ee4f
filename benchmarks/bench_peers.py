"""Peer timings: timm ``Mixup`` and torchvision ``v2.MixUp``/``v2.CutMix``, and a
PyTorch PreActResNet-18 SGD step. Runs in the optional peers venv (no jax):

  python3 -m venv benchmarks/.venv-peers
  benchmarks/.venv-peers/bin/pip install -r benchmarks/requirements-peers.txt
  benchmarks/.venv-peers/bin/python benchmarks/bench_peers.py ops --shape cifar
  benchmarks/.venv-peers/bin/python benchmarks/bench_peers.py train
  benchmarks/.venv-peers/bin/python benchmarks/bench_peers.py parts

Normally ``bench_ops.py``, ``bench_train.py`` and ``bench_backward.py`` call it (``--peers``) as a
subprocess, shape by shape, in the same run as mixjax's own timings; it prints
one JSON object on stdout.

Peers take NCHW float tensors and int labels. timm's ``Mixup`` works in place on
its input (the way timm uses it), mixes the batch with its flip and needs an
even batch; ``label_smoothing=0`` so that it does the same work as mixjax.
torchvision's transforms mix with ``roll(1)`` and have no per-example mode.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


def _torch():
  import torch
  torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
  return torch


def _time(fn, repeats: int, rounds: int, warmup: int = 2) -> list[float]:
  """Per-call wall times of ``fn`` (synchronous on CPU)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return times


def peer_variants(torch, x, y, num_classes):
  """``(library, op, mode) -> callable`` for every peer transform."""
  from timm.data import Mixup
  from torchvision.transforms import v2

  timm_cfg = {
      "mixup": {"mixup_alpha": 1.0, "cutmix_alpha": 0.0},
      "cutmix": {"mixup_alpha": 0.0, "cutmix_alpha": 1.0},
      "policy": {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "switch_prob": 0.5},
  }
  variants = {}
  for op, cfg in timm_cfg.items():
    for mode in ("batch", "elem"):
      m = Mixup(prob=1.0, mode=mode, label_smoothing=0.0, num_classes=num_classes,
                **cfg)
      # In place on x, as timm's training loop uses it.
      variants[("timm", op, mode)] = (lambda m=m: m(x, y))
  tv = {
      "mixup": v2.MixUp(alpha=1.0, num_classes=num_classes),
      "cutmix": v2.CutMix(alpha=1.0, num_classes=num_classes),
      # torchvision's documented recipe for "MixUp or CutMix".
      "policy": v2.RandomChoice([v2.MixUp(alpha=0.8, num_classes=num_classes),
                                 v2.CutMix(alpha=1.0, num_classes=num_classes)]),
  }
  for op, t in tv.items():
    variants[("torchvision", op, "batch")] = (lambda t=t: t(x, y))
  return variants


def run_ops(args) -> dict:
  torch = _torch()
  import timm
  import torchvision
  shape = _common.SHAPES[args.shape]
  b, h, w, c = shape
  k = _common.NUM_CLASSES[args.shape]
  out = {"shape": args.shape, "nchw": [b, c, h, w], "threads": torch.get_num_threads(),
         "allocator": _common.allocator_in_use(),
         "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                      "timm": timm.__version__},
         "results": []}
  torch.manual_seed(0)
  for dtype_name in args.dtypes.split(","):
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    x = torch.rand(b, c, h, w).to(dtype)
    y = torch.arange(b) % k
    dst = torch.empty_like(x)
    variants = {("torch", "copy", "clone"): lambda x=x: x.clone(),
                ("torch", "copy", "copy_"): lambda x=x, dst=dst: dst.copy_(x)}
    variants.update(peer_variants(torch, x, y, k))
    for (lib, op, mode), fn in variants.items():
      if op != "copy" and mode not in args.modes.split(","):
        continue
      times = _time(fn, args.repeats, 1)
      rec = {"library": lib, "op": op, "mode": mode, "dtype": dtype_name}
      rec.update(_common.stats(times))
      out["results"].append(rec)
      print(f"  peers {args.shape} {dtype_name:8s} {lib:11s} {op:7s} {mode:6s} "
            f"{rec['median_ms']:8.3f} ms", file=sys.stderr, flush=True)
  return out


def preact_resnet18(torch, num_classes=10):
  """The Manifold Mixup repo's PreActResNet-18 (mixjax's default variant).

  vikasverma1077/manifold_mixup supervised/models/preresnet.py: a bare stem conv
  and identity shortcuts that carry ``x`` (not mixup-cifar10's ``ResNet18``).
  """
  nn, F = torch.nn, torch.nn.functional

  class Block(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
      self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                       if stride != 1 or cin != cout else None)

    def forward(self, x):
      out = F.relu(self.bn1(x))
      shortcut = self.shortcut(out) if self.shortcut is not None else x
      out = self.conv1(out)
      out = self.conv2(F.relu(self.bn2(out)))
      return out + shortcut

  class PreActResNet18(nn.Module):
    def __init__(self):
      super().__init__()
      self.stem = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
      layers, cin = [], 64
      for i, cout in enumerate((64, 128, 256, 512)):
        for j in range(2):
          layers.append(Block(cin, cout, 2 if i > 0 and j == 0 else 1))
          cin = cout
      self.layers = nn.Sequential(*layers)
      self.head = nn.Linear(512, num_classes)

    def forward(self, x):
      out = self.layers(self.stem(x))
      return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))

  return PreActResNet18()


def run_train(args) -> dict:
  torch = _torch()
  import torchvision
  torch.manual_seed(0)
  model = preact_resnet18(torch)
  if args.channels_last:
    model = model.to(memory_format=torch.channels_last)
  n_params = sum(p.numel() for p in model.parameters())
  opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                        weight_decay=1e-4)
  x = torch.randn(args.batch_size, 3, 32, 32)
  if args.channels_last:
    x = x.contiguous(memory_format=torch.channels_last)
  y = torch.randint(0, 10, (args.batch_size,))
  model.train()

  def step():
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss

  for _ in range(args.warmup):
    step()
  times = []
  faults0 = _common.minor_faults()
  for _ in range(args.steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
  faults = _common.minor_faults() - faults0
  rec = _common.stats(times)
  rec["faults_per_step"] = round(faults / args.steps)
  rec.update({"steps_per_s": 1e3 / rec["median_ms"],
              "images_per_s": args.batch_size * 1e3 / rec["median_ms"]})
  return {"model": "PreActResNet-18 (PyTorch)", "params": n_params,
          "batch_size": args.batch_size, "channels_last": args.channels_last,
          "threads": torch.get_num_threads(),
          "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
          "result": rec}


def _conv_parts(torch, a, w, g) -> dict:
  """A 3×3 convolution's forward, input gradient and weight gradient as callables."""
  F, grad = torch.nn.functional, torch.nn.grad
  return {"forward": lambda: F.conv2d(a, w, padding=1),
          "input_grad": lambda: grad.conv2d_input(a.shape, w, g, padding=1),
          "weight_grad": lambda: grad.conv2d_weight(a, w.shape, g, padding=1)}


def run_parts(args) -> dict:
  """The PyTorch step's parts: the whole step, forward, forward + backward, the
  optimizer update, and one 3×3 convolution's forward, input gradient and weight
  gradient per stage shape (what ``bench_backward.py`` times in JAX)."""
  torch = _torch()
  torch.manual_seed(0)
  model = preact_resnet18(torch)
  model.train()
  x = torch.randn(args.batch_size, 3, 32, 32)
  y = torch.randint(0, 10, (args.batch_size,))

  def forward():
    with torch.no_grad():
      return model(x)

  def forward_backward():
    model.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()

  opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                        weight_decay=1e-4)

  def train_step():   # as run_train's step
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()

  out = {"model": {}, "conv": []}
  for name, fn in (("train_step", train_step), ("forward", forward),
                   ("forward_backward", forward_backward)):
    out["model"][name] = _common.stats(_time(fn, args.repeats, 1))
  forward_backward()   # gradients in place for the optimizer alone
  out["model"]["optimizer"] = _common.stats(_time(opt.step, args.repeats, 1))
  for size, ch in _common.CONV_STAGES:
    a = torch.randn(args.batch_size, ch, size, size)
    w = torch.randn(ch, ch, 3, 3) * 0.05
    g = torch.randn(args.batch_size, ch, size, size)
    out["conv"].append({"size": size, "channels": ch, **{
        k: _common.stats(_time(fn, args.repeats, 1))
        for k, fn in _conv_parts(torch, a, w, g).items()}})
  return {"threads": torch.get_num_threads(), "versions": {"torch": torch.__version__},
          "batch_size": args.batch_size, **out}


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = p.add_subparsers(dest="cmd", required=True)
  o = sub.add_parser("ops", help="timm / torchvision mix transforms")
  o.add_argument("--shape", choices=sorted(_common.SHAPES), default="cifar")
  o.add_argument("--dtypes", default="float32,bfloat16")
  o.add_argument("--modes", default="batch,elem")
  o.add_argument("--repeats", type=int, default=30)
  t = sub.add_parser("train", help="PyTorch PreActResNet-18 SGD step")
  t.add_argument("--batch-size", type=int, default=128)
  t.add_argument("--steps", type=int, default=10)
  t.add_argument("--warmup", type=int, default=2)
  t.add_argument("--channels-last", action="store_true")
  q = sub.add_parser("parts", help="PyTorch step's forward / backward and conv gradients")
  q.add_argument("--batch-size", type=int, default=128)
  q.add_argument("--repeats", type=int, default=5)
  args = p.parse_args()
  result = {"ops": run_ops, "train": run_train, "parts": run_parts}[args.cmd](args)
  result["loadavg_end"] = _common.loadavg()
  json.dump(result, sys.stdout)
  sys.stdout.write("\n")


if __name__ == "__main__":
  main()
