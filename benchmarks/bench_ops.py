"""Op throughput of mixjax's Mixup / CutMix / policy against two floors and peers.

For each shape (CIFAR 256×32×32×3, ImageNet 64 and 128×224×224×3) and dtype
(float32, bfloat16) it times, per jitted call (after warm-up, with
``block_until_ready`` and a fresh key per call):

* floors: the jitted copy ``x * 1`` of the same batch, and ``numpy.copyto`` into
  a preallocated array (the machine's memcpy);
* ops: ``mixjax.mixup``, ``mixjax.cutmix`` and ``mixjax.mix`` (the combined
  policy, Mixup α=0.8 / CutMix α=1, switch 0.5), each in ``batch`` and ``elem``
  mode, called through the public jitted API;
* diagnostics (``--diagnose``, on by default for float32): the sampling alone,
  λ alone (mixjax's sampler and ``jax.random.beta``, α = 1 and 0.2), the
  permutation alone, the apply kernel alone on drawn params, the
  ``x[perm]`` gather in several spellings, Mixup with static pairings, and a
  third floor, ``floor/blend_self``: ``λx + (1 − λ)x`` with a fresh runtime λ,
  one fused blend with no partner and no sampling (XLA compiles ``x * 1`` to
  a plain copy, so this is what any blend costs over the copy).

It also compiles each op and reads its HLO: the number of kernels XLA runs,
``while`` loops (threefry on CPU; ``jax.random.beta``'s Gamma rejection, which
mixjax no longer uses for a static α) and how many
image-sized buffers the program writes (1 = one fused loop, the partner gather
is not materialised).

``--ops family`` times the mixing family instead (``results/family_<allocator>.json``):
``mixjax.fmix``, ``resizemix``, ``saliencymix``, ``gridmix``, ``smoothmix`` and
3-way ``mixup(..., n=3)``, batch and elem, against the same floors; its
diagnostics split each op into its draw and its apply, and report FMix's mask
parts (the noise-to-image transform, ``fmix/low_freq_images``, which is the
inverse FFT, and the top-``num`` selection, ``fmix/binarise``) and SaliencyMix's
saliency (``saliency/maps`` for ``B`` images and for the one of batch mode, and
``saliency/peaks``) separately.

With ``--peers PYTHON`` it runs ``bench_peers.py`` in that interpreter after
each shape, so timm / torchvision are measured in the same run on the same CPU.

``--allocator jemalloc`` re-runs itself with jemalloc preloaded, which reuses
freed memory (see README: with glibc every large output buffer is page-faulted
in on every call).

  python benchmarks/bench_ops.py                       # ~2-3 min
  python benchmarks/bench_ops.py --ops family          # ~4 min
  python benchmarks/bench_ops.py --peers benchmarks/.venv-peers/bin/python
  python benchmarks/bench_ops.py --allocator jemalloc --peers ...
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

CORE_OPS = ("mixup", "cutmix", "policy")
FAMILY_OPS = ("fmix", "resizemix", "saliencymix", "gridmix", "smoothmix", "mixup3")
OP_SETS = {"core": CORE_OPS, "family": FAMILY_OPS}
MODES = ("batch", "elem")


def parse_args():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--ops", choices=tuple(OP_SETS), default="core",
                 help="core: Mixup / CutMix / policy (ops_*.json); family: FMix, "
                      "ResizeMix, SaliencyMix, GridMix, SmoothMix, 3-way Mixup (family_*.json)")
  p.add_argument("--shapes", default="cifar,imagenet64,imagenet128")
  p.add_argument("--dtypes", default="float32,bfloat16")
  p.add_argument("--repeats", type=int, default=0,
                 help="timed calls per variant (0: 60 for CIFAR, 20 for ImageNet)")
  p.add_argument("--rounds", type=int, default=4,
                 help="the variants are interleaved in this many rounds")
  p.add_argument("--diagnose", default="float32",
                 help="dtypes to run the diagnostics for ('' for none)")
  p.add_argument("--peers", default=None, metavar="PYTHON",
                 help="interpreter of the peers venv; runs bench_peers.py per shape")
  p.add_argument("--allocator", choices=_common.ALLOCATORS, default="default")
  p.add_argument("--wait-load", type=float, default=0.0,
                 help="wait until the 1-min load average is below this first")
  p.add_argument("--out", default=None, help="JSON path (default results/ops_<allocator>.json)")
  p.add_argument("--platform", default=None, help="e.g. cpu or gpu (default: jax's)")
  return p.parse_args()


ARGS = parse_args()
OPS = OP_SETS[ARGS.ops]
_common.ensure_allocator(ARGS.allocator)
if ARGS.platform:
  os.environ["JAX_PLATFORMS"] = ARGS.platform

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxlib  # noqa: E402
import numpy as np  # noqa: E402

import mixjax  # noqa: E402
from mixjax.sampling import sample_lambda, sample_partners  # noqa: E402

# ----------------------------------------------------------------------------- HLO

_INSTR = re.compile(
    r"^\s*(?:ROOT )?%[\w.\-]+ = (\(.*?\)|\w+\[[\d,]*\](?:\{[^}]*\})?) ([\w-]+)\(")
_TRIVIAL = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast"}


def hlo_summary(compiled_text: str, image_numel: int) -> dict:
  """Counts what the ENTRY computation of a compiled program does."""
  entry = compiled_text[compiled_text.index("\nENTRY"):]
  entry = entry[:entry.index("\n}")]
  opcodes, image_sized = [], []
  for line in entry.splitlines()[1:]:
    m = _INSTR.match(line)
    if not m:
      continue
    shape, opcode = m.groups()
    if opcode in _TRIVIAL:
      continue
    opcodes.append(opcode)
    dims = re.findall(r"\[([\d,]*)\]", shape)
    if not shape.startswith("(") and dims:
      numel = int(np.prod([int(d) for d in dims[0].split(",") if d] or [1]))
      if numel == image_numel:
        image_sized.append(opcode)
  return {
      "entry_kernels": len(opcodes),
      "entry_fusions": opcodes.count("fusion"),
      "while_loops": compiled_text.count(" while("),
      "gathers": len(re.findall(r" gather\(", compiled_text)),
      "image_sized_buffers": len(image_sized),
      "image_sized_ops": image_sized,
  }


# -------------------------------------------------------------------------- timing

def _block(out):
  jax.block_until_ready(out)


def bench_variants(variants: dict, repeats: int, rounds: int) -> dict:
  """Times each ``name -> (fn, make_args)`` with interleaved rounds.

  ``make_args(i)`` returns the arguments of the variant's ``i``-th call, ``i`` in
  ``range(calls_per_variant(repeats, rounds))``, each with its own key; it is
  called before the clock starts. Returns ``name -> list of seconds``.
  """
  times = {name: [] for name in variants}
  per_round = max(1, repeats // rounds)
  timed = per_round * rounds
  for fn, make_args in variants.values():      # compile + warm up: the last keys
    for i in range(WARMUP_CALLS):
      _block(fn(*make_args(timed + i)))
  for r in range(rounds):
    for name, (fn, make_args) in variants.items():
      for j in range(per_round):
        args = make_args(r * per_round + j)
        t0 = time.perf_counter()
        _block(fn(*args))
        times[name].append(time.perf_counter() - t0)
  return times


WARMUP_CALLS = 2


def calls_per_variant(repeats: int, rounds: int) -> int:
  """How many calls :func:`bench_variants` makes of each variant (so: keys)."""
  return max(1, repeats // rounds) * rounds + WARMUP_CALLS


def copyto_times(x: np.ndarray, repeats: int) -> list[float]:
  dst = np.empty_like(x)
  np.copyto(dst, x)
  out = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    np.copyto(dst, x)
    out.append(time.perf_counter() - t0)
  return out


def make_keys(n: int, seed: int = 0):
  keys = jax.random.split(jax.random.key(seed), n)
  keys = [keys[i] for i in range(n)]
  jax.block_until_ready(keys)
  return keys


# ------------------------------------------------------------------------ variants

def policy_config(mode: str, num_classes: int) -> mixjax.MixConfig:
  return mixjax.MixConfig(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5,
                          mode=mode, num_classes=num_classes)


def op_fn(op: str, mode: str, num_classes: int, pairing: str = "permute"):
  """The public jitted op, called the way a user calls it."""
  if op == "mixup":
    return lambda k, x, y: mixjax.mixup(k, x, y, alpha=1.0, num_classes=num_classes,
                                        mode=mode, pairing=pairing)
  if op == "cutmix":
    return lambda k, x, y: mixjax.cutmix(k, x, y, alpha=1.0, num_classes=num_classes,
                                         mode=mode, pairing=pairing)
  if op == "policy":
    cfg = policy_config(mode, num_classes)
    return lambda k, x, y: mixjax.mix(k, x, y, cfg)
  if op == "mixup3":
    return lambda k, x, y: mixjax.mixup(k, x, y, alpha=1.0, num_classes=num_classes,
                                        mode=mode, pairing=pairing, n=3)
  fn = getattr(mixjax, op)   # the family's public ops, each at its paper's defaults
  return lambda k, x, y: fn(k, x, y, num_classes=num_classes, mode=mode, pairing=pairing)


def family_mixer(op: str, mode: str) -> mixjax.Mixer:
  """The registered mixer behind a family op (its draw and its apply, apart)."""
  if op == "mixup3":
    return mixjax.Mixup(alpha=1.0, n=3, mode=mode)
  return mixjax.get_mixer(op, mode=mode)


def main_variants(x, y, keys, num_classes):
  at = lambda i: keys[i]   # bench_variants never asks past the end
  copy = jax.jit(lambda x: x * 1)
  v = {"floor/jit_copy": (copy, lambda i: (x,))}
  for op in OPS:
    for mode in MODES:
      v[f"{op}/{mode}"] = (op_fn(op, mode, num_classes), lambda i: (at(i), x, y))
  return v


def diagnostic_variants(x, y, keys, num_classes):
  b, h, w = x.shape[:3]
  at = lambda i: keys[i]   # bench_variants never asks past the end
  v = {}
  for mode in MODES:
    v[f"sample/mixup/{mode}"] = (
        jax.jit(lambda k, m=mode: mixjax.sample_mixup(k, b, alpha=1.0, mode=m)),
        lambda i: (at(i),))
    v[f"sample/cutmix/{mode}"] = (
        jax.jit(lambda k, m=mode: mixjax.sample_cutmix(k, b, (h, w), alpha=1.0, mode=m)),
        lambda i: (at(i),))
    v[f"sample/policy/{mode}"] = (
        jax.jit(lambda k, m=mode: mixjax.sample_mix(k, b, (h, w),
                                                    policy_config(m, num_classes))),
        lambda i: (at(i),))
    for alpha in (0.2, 1.0):
      # mixjax's loop-free sampler against jax.random.beta (Gamma rejection loops).
      n = 1 if mode == "batch" else b
      v[f"sample/lambda_a{alpha}/{mode}"] = (
          jax.jit(lambda k, m=mode, a=alpha: sample_lambda(k, b, a, m)), lambda i: (at(i),))
      v[f"sample/jax_beta_a{alpha}/{mode}"] = (
          jax.jit(lambda k, n=n, a=alpha: jax.random.beta(k, a, a, (n,))),
          lambda i: (at(i),))
  v["sample/uniform_lambda/elem"] = (
      jax.jit(lambda k: jax.random.uniform(k, (b,))), lambda i: (at(i),))
  v["sample/permutation"] = (jax.jit(lambda k: sample_partners(k, b)),
                             lambda i: (at(i),))
  # The apply kernel alone, on params drawn once.
  mix_p = mixjax.sample_mixup(keys[0], b, mode="elem")
  cut_p = mixjax.sample_cutmix(keys[0], b, (h, w), mode="elem")
  apply_images = jax.jit(mixjax.mix_images)
  apply_all = jax.jit(lambda p, x, y: mixjax.apply_mix(p, x, y, num_classes))
  v["apply/mixup_images"] = (apply_images, lambda i: (mix_p, x))
  v["apply/mixup_images+labels"] = (apply_all, lambda i: (mix_p, x, y))
  v["apply/cutmix_images"] = (apply_images, lambda i: (cut_p, x))
  # The partner gather alone, in several spellings.
  perm = mix_p.perm
  v["gather/take"] = (jax.jit(lambda x, p: jnp.take(x, p, axis=0)), lambda i: (x, perm))
  v["gather/index"] = (jax.jit(lambda x, p: x[p]), lambda i: (x, perm))
  v["gather/take_clip"] = (jax.jit(lambda x, p: jnp.take(x, p, axis=0, mode="clip")),
                           lambda i: (x, perm))
  v["gather/take_promise"] = (
      jax.jit(lambda x, p: x.at[p].get(mode="promise_in_bounds")),
      lambda i: (x, perm))
  v["gather/static_flip"] = (jax.jit(lambda x: x[::-1]), lambda i: (x,))
  # A blend with no partner: the floor of any fused blend (computed in float32).
  lams = jax.block_until_ready(list(jax.random.uniform(jax.random.key(7), (len(keys),))))
  v["floor/blend_self"] = (
      jax.jit(lambda lam, x: (lam * x + (1 - lam) * x).astype(x.dtype)),
      lambda i: (lams[i], x))
  # Whole ops with static pairings (no permutation, a static reverse / roll).
  for pairing in ("flip", "roll"):
    v[f"mixup/batch/{pairing}"] = (op_fn("mixup", "batch", num_classes, pairing),
                                   lambda i: (at(i), x, y))
    v[f"cutmix/batch/{pairing}"] = (op_fn("cutmix", "batch", num_classes, pairing),
                                    lambda i: (at(i), x, y))
  return v


def family_diagnostic_variants(x, y, keys, num_classes):
  """Each family op's draw alone and apply alone; FMix's and SaliencyMix's parts."""
  fmix_lib = sys.modules["mixjax.fmix"]
  saliency_lib = sys.modules["mixjax.saliencymix"]
  b, h, w = x.shape[:3]
  at = lambda i: keys[i]   # bench_variants never asks past the end
  apply = jax.jit(lambda p, x, y: mixjax.apply_mix(p, x, y, num_classes))
  v = {}
  for op in FAMILY_OPS:
    for mode in MODES:
      mixer = family_mixer(op, mode)
      if getattr(mixer, "uses_images", False):
        draw = jax.jit(lambda k, x, m=mixer: m.sample(k, b, x.shape[1:], images=x))
        v[f"sample/{op}/{mode}"] = (draw, lambda i: (at(i), x))
        params = draw(keys[0], x)
      else:
        draw = jax.jit(lambda k, m=mixer: m.sample(k, b, (h, w)))
        v[f"sample/{op}/{mode}"] = (draw, lambda i: (at(i),))
        params = draw(keys[0])
      v[f"apply/{op}/{mode}"] = (apply, lambda i, p=params: (p, x, y))
  for mode in MODES:
    n = 1 if mode == "batch" else b
    shape = (n,) + fmix_lib.noise_shape(h, w, "reference")
    noise = jax.random.normal(keys[0], shape)
    images = fmix_lib.low_freq_images(noise, h, w)
    lam = jax.random.uniform(keys[1], (n,))
    ceil = jax.random.uniform(keys[2], (n,)) > 0.5
    v[f"fmix/noise/{mode}"] = (jax.jit(lambda k, s=shape: jax.random.normal(k, s)),
                               lambda i: (at(i),))
    v[f"fmix/low_freq_images/{mode}"] = (
        jax.jit(lambda z: fmix_lib.low_freq_images(z, h, w)), lambda i, z=noise: (z,))
    v[f"fmix/binarise/{mode}"] = (jax.jit(fmix_lib.binarise),
                                  lambda i, a=(images, lam, ceil): a)
    v[f"saliency/maps/{mode}"] = (saliency_lib.saliency_maps, lambda i, n=n: (x[:n],))
  maps = saliency_lib.saliency_maps(x)
  v["saliency/peaks/elem"] = (jax.jit(saliency_lib.saliency_peaks), lambda i: (maps,))
  return v


def hlo_of(fn, args):
  return jax.jit(fn).lower(*args).compile().as_text()


# ---------------------------------------------------------------------------- main

def run_peers(python: str, shape: str, dtypes: str, repeats: int):
  return _common.run_peer(python, ["ops", "--shape", shape, "--dtypes", dtypes,
                                   "--repeats", str(repeats)], ARGS.allocator)


def main():
  load_start = _common.wait_for_quiet(ARGS.wait_load)
  started = time.time()
  dev = jax.devices()[0]
  on_cpu = dev.platform == "cpu"
  report = {
      "benchmark": "ops" if ARGS.ops == "core" else "family",
      "date": _common.now(),
      "machine": _common.machine(),
      "device": f"{dev.platform}:{dev.device_kind}",
      "allocator": _common.allocator_in_use(),
      "allocator_env": {k: os.environ.get(k) for k in ("LD_PRELOAD", "MALLOC_CONF")},
      "versions": {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
                   "mixjax": mixjax.__version__, "numpy": np.__version__},
      "loadavg_start": load_start,
      "args": vars(ARGS),
      "results": [],
      "hlo": {},
      "peers": [],
      "blocks": [],
  }
  import flax
  report["versions"]["flax"] = flax.__version__
  diagnose = [d for d in ARGS.diagnose.split(",") if d]
  for shape_name in ARGS.shapes.split(","):
    shape = _common.SHAPES[shape_name]
    k = _common.NUM_CLASSES[shape_name]
    repeats = ARGS.repeats or (60 if shape_name == "cifar" else 20)
    rng = np.random.default_rng(0)
    for dtype_name in ARGS.dtypes.split(","):
      dtype = jnp.dtype(dtype_name)
      x_np = rng.random(shape, np.float32).astype(dtype)
      x = jax.device_put(x_np)
      y = jnp.asarray(np.arange(shape[0]) % k, jnp.int32)
      # One key per call of a variant: no variant sees a key twice.
      keys = make_keys(calls_per_variant(repeats, ARGS.rounds))
      variants = main_variants(x, y, keys, k)
      if dtype_name in diagnose:
        more = diagnostic_variants if ARGS.ops == "core" else family_diagnostic_variants
        variants.update(more(x, y, keys, k))
      print(f"{shape_name} {dtype_name}: {len(variants)} variants x {repeats} calls",
            file=sys.stderr, flush=True)
      watch = _common.CpuWatch()
      times = bench_variants(variants, repeats, ARGS.rounds)
      if on_cpu:   # the host's memcpy is a floor only for ops that run on the host
        times["floor/numpy_copyto"] = copyto_times(np.asarray(x_np), repeats)
      nbytes = x.size * x.dtype.itemsize
      copy_ms = _common.stats(times["floor/jit_copy"])["median_ms"]
      copyto_ms = (_common.stats(times["floor/numpy_copyto"])["median_ms"]
                   if on_cpu else None)
      load_now, other = _common.loadavg(), watch.other_cpu()
      report["blocks"].append({"shape": shape_name, "dtype": dtype_name,
                               "loadavg": load_now, "other_cpu": other})
      print(f"  (others used {other} cores during this block)", file=sys.stderr)
      for name, ts in times.items():
        rec = {"shape": shape_name, "dims": list(shape), "dtype": dtype_name,
               "name": name, "loadavg": load_now, "other_cpu": other}
        rec.update(_common.stats(ts))
        ms = rec["median_ms"]
        rec["images_per_s"] = shape[0] * 1e3 / ms
        rec["gb_per_s"] = 2 * nbytes / (ms * 1e-3) / 1e9   # read x + write x̃
        rec["vs_jit_copy"] = ms / copy_ms
        rec["vs_copyto"] = ms / copyto_ms if copyto_ms else None
        report["results"].append(rec)
        vs_copyto = f"{rec['vs_copyto']:6.2f}x copyto" if copyto_ms else ""
        print(f"  {shape_name:11s} {dtype_name:8s} {name:28s} {ms:9.3f} ms "
              f"{rec['vs_jit_copy']:6.2f}x copy  {vs_copyto}", file=sys.stderr, flush=True)
      # HLO of the public ops (float32 only: the structure does not change).
      if dtype_name == "float32":
        for op in OPS:
          for mode in MODES:
            text = hlo_of(op_fn(op, mode, k), (keys[0], x, y))
            report["hlo"][f"{shape_name}/{op}/{mode}"] = hlo_summary(text, x.size)
        for pairing in ("flip",) if ARGS.ops == "core" else ():
          text = hlo_of(op_fn("mixup", "batch", k, pairing), (keys[0], x, y))
          report["hlo"][f"{shape_name}/mixup/batch/{pairing}"] = hlo_summary(text, x.size)
        text = hlo_of(lambda x: x * 1, (x,))
        report["hlo"][f"{shape_name}/jit_copy"] = hlo_summary(text, x.size)
      del x, variants
    if ARGS.peers:
      print(f"{shape_name}: peers", file=sys.stderr, flush=True)
      watch = _common.CpuWatch()
      peers = run_peers(ARGS.peers, shape_name, ARGS.dtypes, repeats)
      peers["other_cpu"] = watch.other_cpu()
      print(f"  (others used {peers['other_cpu']} cores during the peers)", file=sys.stderr)
      report["peers"].append(peers)
  report["loadavg_end"] = _common.loadavg()
  report["wall_s"] = round(time.time() - started, 1)
  # CPU results are named by allocator (ops_default.json, ops_jemalloc.json),
  # others by platform (ops_gpu.json), so a GPU run never overwrites a CPU one.
  name = report["allocator"] if on_cpu else dev.platform
  out = ARGS.out or os.path.join(_common.RESULTS, f"{report['benchmark']}_{name}.json")
  _common.save_json(out, report)


if __name__ == "__main__":
  main()
