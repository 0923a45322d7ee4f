"""Merges the JSON files in benchmarks/results/ into benchmarks/results/RESULTS.md.

  python benchmarks/report.py            # reads results/*.json, writes RESULTS.md
"""

from __future__ import annotations

import glob
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

OPS = ("mixup", "cutmix", "policy")
MODES = ("batch", "elem")
SHAPE_LABEL = {"cifar": "256×32×32×3", "imagenet64": "64×224×224×3",
               "imagenet128": "128×224×224×3"}
GOAL_FLOOR = {("imagenet", "mixup"): 1.2, ("imagenet", "cutmix"): 1.5,
              ("imagenet", "policy"): 1.5, ("cifar", "mixup"): 3.0,
              ("cifar", "cutmix"): 3.0, ("cifar", "policy"): 3.0}


def load(name):
  path = os.path.join(_common.RESULTS, name)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def fmt(v, digits=2):
  if v is None:
    return "–"
  if isinstance(v, str):
    return v
  if abs(v) >= 1000:
    return f"{v:,.0f}"
  if abs(v) >= 100:
    return f"{v:.0f}"
  if abs(v) >= 10:
    return f"{v:.1f}"
  return f"{v:.{digits}f}"


def table(header, rows):
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def max_other(rep):
  vals = [b.get("other_cpu") for b in rep.get("blocks", [])]
  vals += [p.get("other_cpu") for p in rep.get("peers", [])]
  for r in rep.get("overhead", {}).values():
    vals += r.get("other_cpu") or []
  vals += [r.get("other_cpu") for r in rep.get("results", []) if isinstance(r, dict)]
  vals.append((rep.get("pytorch") or {}).get("other_cpu"))
  vals = [v for v in vals if v is not None]
  return max(vals) if vals else None


def header_of(rep):
  m = rep["machine"]
  v = ", ".join(f"{k} {val}" for k, val in rep.get("versions", {}).items() if val)
  flags = f"XLA_FLAGS `{m['xla_flags']}`; " if m.get("xla_flags") else ""
  return (f"{rep['date']}; {m['cpu']}, {m['cores']} cores, {m.get('memory_gib')} GiB; "
          f"{rep.get('device', '')}; {v}; allocator `{rep.get('allocator')}`; {flags}"
          f"load average before {rep.get('loadavg_start')}; other processes used at most "
          f"{max_other(rep)} cores during any measured block")


def ops_section(rep, title):
  res = {(r["shape"], r["dtype"], r["name"]): r for r in rep["results"]}
  out = [f"### {title}", "", header_of(rep), ""]
  rows = []
  for (shape, dtype, name), r in res.items():
    if not (name.startswith("floor/") or name.split("/")[0] in OPS) or name.count("/") > 1:
      continue
    op = name.split("/")[0]
    goal = ""
    if op in OPS:
      fam = "imagenet" if shape.startswith("imagenet") else "cifar"
      g = GOAL_FLOOR[(fam, op)]
      goal = f"{'✓' if r['vs_jit_copy'] <= g else '✗'} ≤{g}"
    rows.append([SHAPE_LABEL[shape], dtype, name.replace("/", " "), fmt(r["median_ms"], 3),
                 fmt(r["images_per_s"]), fmt(r["gb_per_s"]), fmt(r["vs_jit_copy"]),
                 goal, fmt(r["vs_copyto"])])
  out.append(table(["batch", "dtype", "op", "median ms", "images/s", "GB/s",
                    "× jit copy", "goal", "× memcpy"], rows))
  return "\n".join(out)


def peers_section(rep):
  if not rep.get("peers"):
    return ""
  ours = {(r["shape"], r["dtype"], r["name"]): r["median_ms"] for r in rep["results"]}
  out = [f"### mixjax vs timm / torchvision (allocator `{rep['allocator']}`)", ""]
  pv = rep["peers"][0]["versions"]
  out.append(f"Peers: torch {pv['torch']}, torchvision {pv['torchvision']}, timm "
             f"{pv['timm']}, {rep['peers'][0]['threads']} threads, same run. Speed-up = "
             f"fastest peer's time / mixjax's time (goal ≥ 2).")
  out.append("")
  rows = []
  for p in rep["peers"]:
    shape = p["shape"]
    peer = {(r["dtype"], r["library"], r["op"], r["mode"]): r["median_ms"]
            for r in p["results"]}
    for dtype in sorted({r["dtype"] for r in p["results"]}, reverse=True):
      for op in ("copy",) + OPS:
        for mode in (("clone",) if op == "copy" else MODES):
          if op == "copy":
            mine = ours.get((shape, dtype, "floor/jit_copy"))
            t, tv = None, peer.get((dtype, "torch", "copy", "clone"))
          else:
            mine = ours.get((shape, dtype, f"{op}/{mode}"))
            t = peer.get((dtype, "timm", op, mode))
            tv = peer.get((dtype, "torchvision", op, mode))
          cands = [v for v in (t, tv) if v is not None]
          if mine is None or not cands:
            continue
          speedup = min(cands) / mine
          goal = "" if op == "copy" else ("✓" if speedup >= 2 else "✗")
          rows.append([SHAPE_LABEL[shape], dtype, "copy (jit / torch clone)" if op == "copy"
                       else f"{op} {mode}", fmt(mine, 3), fmt(t, 3), fmt(tv, 3),
                       fmt(speedup), goal])
  out.append(table(["batch", "dtype", "op", "mixjax ms", "timm ms", "torchvision ms",
                    "speed-up", "≥2×"], rows))
  return "\n".join(out)


def summary_floors(rep):
  """One row per batch/dtype: jit copy ms, then each op's median ms and × copy."""
  res = {(r["shape"], r["dtype"], r["name"]): r for r in rep["results"]}
  rows = []
  for shape in SHAPE_LABEL:
    for dtype in ("float32", "bfloat16"):
      copy = res.get((shape, dtype, "floor/jit_copy"))
      if not copy:
        continue
      memcpy = res.get((shape, dtype, "floor/numpy_copyto"), {})   # none off the CPU
      row = [SHAPE_LABEL[shape], dtype, fmt(copy["median_ms"], 3),
             fmt(memcpy.get("median_ms"), 3)]
      for op in OPS:
        for mode in MODES:
          r = res[(shape, dtype, f"{op}/{mode}")]
          fam = "imagenet" if shape.startswith("imagenet") else "cifar"
          ok = "" if r["vs_jit_copy"] <= GOAL_FLOOR[(fam, op)] else " ✗"
          row.append(f"{fmt(r['median_ms'], 3)} ({r['vs_jit_copy']:.2f}×{ok})")
      rows.append(row)
  head = ["batch", "dtype", "jit copy ms", "memcpy ms"] + [f"{o} {m}" for o in OPS
                                                           for m in MODES]
  return table(head, rows)


def summary_peers(rep):
  """One row per batch/dtype: speed-up over the fastest peer per op and mode."""
  if not rep.get("peers"):
    return ""
  ours = {(r["shape"], r["dtype"], r["name"]): r["median_ms"] for r in rep["results"]}
  rows = []
  for p in rep["peers"]:
    shape = p["shape"]
    peer = {}
    for r in p["results"]:
      if r["library"] in ("timm", "torchvision"):
        k = (r["dtype"], r["op"], r["mode"])
        if k not in peer or r["median_ms"] < peer[k][0]:
          peer[k] = (r["median_ms"], r["library"])
    for dtype in ("float32", "bfloat16"):
      row = [SHAPE_LABEL[shape], dtype]
      for op in OPS:
        for mode in MODES:
          mine = ours.get((shape, dtype, f"{op}/{mode}"))
          best = peer.get((dtype, op, mode))
          if mine is None or best is None:
            row.append("–")
            continue
          sp = best[0] / mine
          lib = "tv" if best[1] == "torchvision" else "timm"
          row.append(f"{fmt(mine, 3)} vs {fmt(best[0], 3)} {lib} = {sp:.2f}×"
                     f"{'' if sp >= 2 else ' ✗'}")
      rows.append(row)
  head = ["batch", "dtype"] + [f"{o} {m}" for o in OPS for m in MODES]
  return table(head, rows)


def diag_section(rep, run_label=None):
  rows = []
  names = [("sample/mixup/batch", "sample Mixup (batch)"),
           ("sample/mixup/elem", "sample Mixup (elem)"),
           ("sample/cutmix/batch", "sample CutMix (batch)"),
           ("sample/cutmix/elem", "sample CutMix (elem)"),
           ("sample/policy/batch", "sample policy (batch)"),
           ("sample/policy/elem", "sample policy (elem)"),
           ("sample/lambda_a1.0/batch", "λ ~ Beta(1, 1), 1 value"),
           ("sample/jax_beta_a1.0/batch", "(jax.random.beta, 1 value)"),
           ("sample/lambda_a1.0/elem", "λ ~ Beta(1, 1), B values"),
           ("sample/jax_beta_a1.0/elem", "(jax.random.beta, B values)"),
           ("sample/lambda_a0.2/batch", "λ ~ Beta(0.2, 0.2), 1 value"),
           ("sample/jax_beta_a0.2/batch", "(jax.random.beta, 1 value)"),
           ("sample/lambda_a0.2/elem", "λ ~ Beta(0.2, 0.2), B values"),
           ("sample/jax_beta_a0.2/elem", "(jax.random.beta, B values)"),
           ("sample/uniform_lambda/elem", "(uniform, B values)"),
           ("sample/permutation", "permutation of B"),
           ("apply/mixup_images", "apply Mixup images"),
           ("apply/mixup_images+labels", "apply Mixup images+labels"),
           ("apply/cutmix_images", "apply CutMix images"),
           ("gather/take", "x[perm]: jnp.take (fill)"),
           ("gather/index", "x[perm]: indexing"),
           ("gather/take_clip", "x[perm]: take mode=clip"),
           ("gather/take_promise", "x[perm]: promise_in_bounds"),
           ("gather/static_flip", "x[::-1] (static)"),
           ("mixup/batch/flip", "mixup batch, pairing=flip"),
           ("mixup/batch/roll", "mixup batch, pairing=roll"),
           ("cutmix/batch/flip", "cutmix batch, pairing=flip"),
           ("cutmix/batch/roll", "cutmix batch, pairing=roll"),
           ("mixup/batch", "mixup batch, pairing=permute"),
           ("floor/jit_copy", "jit copy")]
  res = {(r["shape"], r["dtype"], r["name"]): r for r in rep["results"]}
  shapes = [s for s in SHAPE_LABEL if (s, "float32", "sample/permutation") in res]
  if not shapes:
    return ""
  for name, label in names:
    rows.append([label] + [fmt(res[(s, "float32", name)]["median_ms"], 3)
                           if (s, "float32", name) in res else "–" for s in shapes])
  run_label = run_label or f"allocator `{rep['allocator']}`"
  out = [f"### Where the time goes (float32, ms per jitted call, {run_label})", ""]
  out.append(table(["part"] + [SHAPE_LABEL[s] for s in shapes], rows))
  hlo = rep.get("hlo", {})
  if hlo:
    out += ["", "HLO of each compiled op (ENTRY computation): kernels run, `while` loops"
            " (threefry's rolled loops on CPU, the shuffle's sort rounds), image-sized"
            " buffers written (1 = one fused loop, the partner gather is not"
            " materialised).", ""]
    rows = []
    for key, h in hlo.items():
      rows.append([key, h["entry_kernels"], h["entry_fusions"], h["while_loops"],
                   h["image_sized_buffers"], ", ".join(h["image_sized_ops"])])
    out.append(table(["program", "kernels", "fusions", "while loops",
                      "image-sized buffers", "their ops"], rows))
  return "\n".join(out)


def options_of(options: dict) -> str:
  """Compiler options as text: each `key=value`, or XLA's defaults when empty."""
  if not options:
    return "XLA's default compiler options"
  return "compiler options " + ", ".join(f"`{k}={v}`" for k, v in options.items())


def faults_of(per_step) -> str:
  """Median minor page faults per step (a list per round, or one number)."""
  if per_step is None:
    return ""
  if isinstance(per_step, list):
    per_step = statistics.median(per_step)
  return f"{per_step:,.0f}"


def train_section(rep, name=""):
  flags = rep["machine"].get("xla_flags")
  device = rep.get("device", "cpu")
  where = "1 device" if device.startswith("cpu") else f"1 {device.split(':', 1)[-1]}"
  a = rep["args"]
  model = a.get("model", "preact_resnet18")
  size = a.get("image_size", 32)
  what = ("PreActResNet-18, CIFAR 32×32" if model == "preact_resnet18"
          else f"`{model}`, {size}×{size}")
  title = (f"### Training overhead ({what}, {where}, allocator "
           f"`{rep.get('allocator')}`")
  options = rep.get("compiler_options")
  if options is not None:
    title += "; " + options_of(options)
  out = [title + (f"; XLA_FLAGS `{flags.strip()}`)" if flags else ")")
         + (f", `{name}`" if name else ""), "",
         header_of(rep), ""]
  out.append(f"Batch {a['batch_size']}, {a['dtype']}; {a['rounds']} interleaved rounds × "
             f"{a['steps']} timed steps per method (median over rounds).")
  out.append("")
  rows = []
  for name, r in rep["overhead"].items():
    rows.append([name, fmt(r["steps_per_s"], 3), fmt(r["images_per_s"]),
                 f"{r.get('slowdown_vs_erm_pct', 0):+.1f}%",
                 "✓" if r.get("slowdown_vs_erm_pct", 0) <= 5 else "✗",
                 fmt(r["compile_s"]), r["traces"], faults_of(r.get("faults_per_step"))])
  pt = rep.get("pytorch")
  if pt:
    r = pt["result"]
    rows.append([f"PyTorch {pt['versions']['torch']} (no mixing, {pt['threads']} threads)",
                 fmt(r["steps_per_s"], 3), fmt(r["images_per_s"]), "", "", "", "",
                 faults_of(r.get("faults_per_step"))])
  out.append(table(["method", "steps/s", "images/s", "vs erm", "≤5%", "compile s",
                    "traces", "page faults/step"], rows))
  rc = rep.get("recompile")
  if rc:
    out += ["", f"Recompile check: {rc['steps']} `manifold_mixup` steps at batch "
            f"{rc['batch_size']}: traced {rc['traces']}×, jit cache size "
            f"{rc['jit_cache_size']}, layers drawn {rc['layers_drawn']}."]
  return "\n".join(out)


def scaling_section(rep):
  devices = ("forced devices share the cores" if rep["platform"] == "cpu" else
             rep["results"][0]["device_kind"] if rep["results"] else "")
  per_device = rep["args"].get("per_device_batch")
  kind = (f"weak scaling, {per_device} per device" if per_device else
          f"strong scaling, global batch {rep['args']['batch_size']}")
  out = [f"### Scaling ({rep['platform']}, {devices}; {kind}, {rep['args']['dtype']})", "",
         f"{rep['date']}; {rep['machine']['cpu']}, {rep['machine']['cores']} cores; "
         f"load average before {rep['loadavg_start']}; other processes used at most "
         f"{max_other(rep)} cores", ""]
  options = rep["results"][0].get("compiler_options") if rep["results"] else None
  if options is not None:
    text = options_of(options)
    out += [text[0].upper() + text[1:] + ".", ""]
  rows = [[r["devices"], r["global_batch"], r["per_device_batch"], fmt(r["steps_per_s"], 3),
           fmt(r["images_per_s"]), fmt(r["vs_first"]), fmt(r.get("cores_used")),
           fmt(r["compile_s"])]
          for r in rep["results"]]
  out.append(table(["devices", "global batch", "per device", "steps/s", "images/s",
                    "vs 1 device", "host cores busy", "compile s"], rows))
  for skip in rep.get("skipped", []):
    out += ["", f"{skip['devices']} devices: not run ({skip['why']})."]
  return "\n".join(out)


def processes_section(rep):
  out = [f"### Processes × devices (`bench_scaling.py --layouts`, jax.distributed, global batch "
         f"{rep['args']['batch_size']}, {rep['args']['dtype']})", "",
         f"{rep['date']}; {rep['machine']['cpu']}, {rep['machine']['cores']} cores; "
         f"load average before {rep['loadavg_start']}; other processes used at most "
         f"{max_other(rep)} cores", ""]
  rows = [[r["layout"], fmt(r["steps_per_s"], 3), fmt(r["images_per_s"]), fmt(r["vs_first"]),
           fmt(r.get("cores_used")), fmt(r["compile_s"])] for r in rep["results"]]
  out.append(table(["processes × devices", "steps/s", "images/s", "vs first",
                    "cores busy (process 0)", "compile s"], rows))
  return "\n".join(out)


def cpu_options_section(rep):
  out = ["### XLA:CPU library fusions for the train step (`bench_cpu_options.py`)", "",
         header_of(rep), "",
         "ERM PreActResNet-18 step (batch 128, float32, one device) and one 3×3, 64-channel "
         "convolution's forward + backward, compiled with each "
         "`xla_cpu_experimental_ynn_fusion_type` list (`LIBRARY_FUSION_TYPE_` left out), "
         "interleaved rounds, medians.", ""]
  rows = [[r["variant"], (r["ynn_fusion_type"] or "(XLA's default)").replace(
              "LIBRARY_FUSION_TYPE_", "").replace(",", ", "),
           fmt(r["step_s"], 3), fmt(r["images_per_s"]), fmt(r["conv_fwd_bwd_ms"]),
           "yes" if r["bitwise_same_loss_as_default"] else "no"]
          for r in rep["results"]]
  out.append(table(["variant", "YNNPACK fuses", "s/step", "images/s",
                    "conv fwd+bwd ms", "same loss as default, bit for bit"], rows))
  return "\n".join(out)


def backward_section(rep):
  out = ["### Forward vs backward, and a convolution's three parts (`bench_backward.py`)", "",
         header_of(rep), "",
         f"Batch {rep['args']['batch_size']}, float32, {rep['args']['rounds']} interleaved "
         "rounds, median ms; ops counted in the compiled HLO text (fused bodies "
         "included)." + (" PyTorch (NCHW, same shapes) ran right after in the peers venv."
                          if rep.get("pytorch") else ""), ""]
  pt = rep.get("pytorch") or {}
  peer = {("model", k): v for k, v in pt.get("model", {}).items()}
  for c in pt.get("conv", []):
    for part in ("forward", "input_grad", "weight_grad"):
      peer[(f"conv {c['size']}x{c['size']}x{c['channels']}", part)] = c[part]
  rows = []
  for r in rep["results"]:
    p = peer.get((r["what"], r["part"]))
    rows.append([r["what"], r["part"], fmt(r["median_ms"]),
                 fmt(p["median_ms"]) if p else "",
                 f"{r['median_ms'] / p['median_ms']:.2f}×" if p else ""]
                + [r["hlo"][op] if r["hlo"] else "–" for op in ("convolution", "transpose",
                                                                 "copy")])
  out.append(table(["program", "part", "mixjax ms", "PyTorch ms", "ratio", "convolutions",
                    "transposes", "copies"], rows))
  return "\n".join(out)


def ab_section(rep):
  out = [f"### Apply kernel before/after (`params.py` at {rep['ref']} vs now, allocator "
         f"`{rep['allocator']}`)", "",
         f"{rep['date']}; load average before {rep['loadavg_start']}; other processes "
         f"used at most {max_other(rep)} cores during a block; outputs checked "
         "bit-identical.", ""]
  rows = [[SHAPE_LABEL[r["shape"]], r["dtype"], r["name"].replace("/", " "),
           fmt(r["before_ms"], 3), fmt(r["after_ms"], 3), f"{r['speedup']:.2f}×"]
          for r in rep["results"]]
  out.append(table(["batch", "dtype", "op", "before ms", "after ms", "speed-up"], rows))
  return "\n".join(out)


FAMILY_OPS = ("fmix", "resizemix", "saliencymix", "gridmix", "smoothmix", "mixup3")
FAMILY_GOAL = 1.5   # ImageNet size, × the jitted copy (the family issue's goal)
FAMILY_PARTS = ("fmix/noise", "fmix/low_freq_images", "fmix/binarise", "saliency/maps",
                "saliency/peaks")


def family_section(rep, title):
  """Each family op per shape, dtype and mode (× the copy; the goal at ImageNet
  size), then the float32 split into draw and apply and FMix's / SaliencyMix's parts."""
  res = {(r["shape"], r["dtype"], r["name"]): r for r in rep["results"]}
  blocks = sorted({(r["shape"], r["dtype"]) for r in rep["results"]},
                  key=lambda b: (list(SHAPE_LABEL).index(b[0]), b[1]))
  cell = lambda r, goal=None: "–" if r is None else (
      f"{fmt(r['median_ms'], 3)} ({fmt(r['vs_jit_copy'])}×"
      + ("" if goal is None or r["vs_jit_copy"] <= goal else " ✗") + ")")
  out = [f"### {title}", "", header_of(rep), "",
         f"Median ms per call (× the jitted copy; ✗: over {FAMILY_GOAL}× at ImageNet size).",
         ""]
  header = ["batch", "dtype", "jit copy ms"] + [f"{op} {m}" for op in FAMILY_OPS
                                                 for m in ("batch", "elem")]
  rows = []
  for shape, dtype in blocks:
    goal = FAMILY_GOAL if shape.startswith("imagenet") else None
    copy = res.get((shape, dtype, "floor/jit_copy"))
    rows.append([SHAPE_LABEL[shape], dtype, fmt(copy and copy["median_ms"], 3)]
                + [cell(res.get((shape, dtype, f"{op}/{m}")), goal)
                   for op in FAMILY_OPS for m in ("batch", "elem")])
  out.append(table(header, rows))
  rows = []
  for shape, dtype in blocks:
    for op in FAMILY_OPS:
      for m in ("batch", "elem"):
        draw = res.get((shape, dtype, f"sample/{op}/{m}"))
        if draw is None:
          continue
        rows.append([SHAPE_LABEL[shape], dtype, f"{op} {m}",
                     cell(res.get((shape, dtype, f"{op}/{m}"))), cell(draw),
                     cell(res.get((shape, dtype, f"apply/{op}/{m}")))])
  if rows:
    out += ["", "Where the time goes: the whole op, its draw alone and its apply alone "
            "(each its own jitted call, so each pays its own dispatch).", "",
            table(["batch", "dtype", "op", "whole", "draw", "apply"], rows)]
  rows = []
  for shape, dtype in blocks:
    for part in FAMILY_PARTS:
      for m in ("batch", "elem"):
        r = res.get((shape, dtype, f"{part}/{m}"))
        if r is not None:
          rows.append([SHAPE_LABEL[shape], dtype, f"{part} {m}", cell(r)])
  if rows:
    out += ["", "FMix's mask and SaliencyMix's saliency, part by part: the normals, the "
            "inverse Fourier transform (`low_freq_images`), the top-`num` selection "
            "(`binarise`); the spectral-residual maps (B of them in elem mode, one in batch "
            "mode) and their peaks.", "", table(["batch", "dtype", "part", "ms (× copy)"], rows)]
  return "\n".join(out)


def input_section(rep):
  m, where = rep["machine"], rep["mixjax_one_core_ms"]
  rows = [[name, r["cores"], fmt(r["images_per_sec"]), fmt(r["per_core"]),
           fmt(r["cpu_ms_per_image"]), fmt(r.get("vs_tf_data_per_core")),
           fmt(r["cores_per_gpu"], 1)] for name, r in rep["rows"].items()]
  return "\n".join([
      f"## Input pipeline: decode + random-resized crop at {rep['image_size']} px "
      "(`bench_input.py`)", "",
      f"{rep['date']}; {m['cpu']}, {m['cores']} cores; {rep['images']} JPEGs "
      f"(mean {rep['mean_file_kb']:.0f} KB), batches of {rep['batch_size']}; best of "
      f"{rep['rounds']} rounds. One core, ms per image: "
      + ", ".join(f"{k.removesuffix('_ms').replace('_', ' ')} {v:.2f}"
                  for k, v in where.items() if v is not None) + ".", "",
      table(["pipeline", "cores", "img/s", "img/s per core", "CPU ms/img",
             "per core × tf.data", f"cores for {rep['gpu_images_per_sec']:,} img/s"], rows)])


def ops_reports():
  """(label, report) for ops_<allocator>.json (the CPU runs), then every other
  ``bench_ops.py`` result (GPU runs, partial runs such as blend_floor_*.json)."""
  names = [f"ops_{alloc}.json" for alloc in _common.ALLOCATORS]
  found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(_common.RESULTS, "*.json")))
  names += [n for n in found if n not in names]
  out = []
  for name in names:
    rep = load(name)
    if rep and rep.get("benchmark") == "ops":
      on_cpu = rep.get("device", "cpu").startswith("cpu")
      label = f"allocator `{rep['allocator']}`" if on_cpu else rep["device"]
      full = name.startswith("ops_")
      out.append((label if full else f"{label}, `{name}`", rep, full))
  return out


def main():
  parts = ["# mixjax benchmark results", "",
           "Generated by `python benchmarks/report.py` from the JSON files next to it. "
           "See `benchmarks/README.md` for what each number means.", ""]
  ops = ops_reports()
  for label, rep, full in ops:
    if full:   # partial runs (blend_floor_*.json, side_ops_*.json) get their sections only
      parts += [f"## Summary, {label}", "", header_of(rep), "",
                "Median ms per call and ratio to the jitted copy (✗: over the goal: "
                "ImageNet Mixup ≤ 1.2×, CutMix/policy ≤ 1.5×; CIFAR ≤ 3×).", "",
                summary_floors(rep), ""]
      sp = summary_peers(rep)
      if sp:
        parts += ["mixjax ms vs the fastest peer's ms (tv = torchvision), speed-up "
                  "(✗: under the 2× goal).", "", sp, ""]
  for label, rep, _ in ops:
    if rep:
      parts += [ops_section(rep, f"Ops vs floors ({label})"), ""]
      p = peers_section(rep)
      if p:
        parts += [p, ""]
      d = diag_section(rep, label)
      if d:
        parts += [d, ""]
  for name in sorted(glob.glob(os.path.join(_common.RESULTS, "family_*.json"))):
    rep = load(os.path.basename(name))
    if rep and rep.get("benchmark") == "family":
      on_cpu = rep.get("device", "cpu").startswith("cpu")
      label = f"allocator `{rep['allocator']}`" if on_cpu else rep["device"]
      parts += [family_section(rep, f"Mixing family vs the copy ({label})"), ""]
  for name in sorted(glob.glob(os.path.join(_common.RESULTS, "kernel_ab_*.json"))):
    parts += [ab_section(load(os.path.basename(name))), ""]
  for name in sorted(glob.glob(os.path.join(_common.RESULTS, "train_*.json"))):
    parts += [train_section(load(os.path.basename(name)), os.path.basename(name)), ""]
  rep = load("cpu_options.json")
  if rep:
    parts += [cpu_options_section(rep), ""]
  for name in sorted(glob.glob(os.path.join(_common.RESULTS, "backward_*.json"))):
    parts += [backward_section(load(os.path.basename(name))), ""]
  for name in sorted(glob.glob(os.path.join(_common.RESULTS, "scaling_*.json"))):
    parts += [scaling_section(load(os.path.basename(name))), ""]
  for name in sorted(glob.glob(os.path.join(_common.RESULTS, "processes_*.json"))):
    parts += [processes_section(load(os.path.basename(name))), ""]
  for name in sorted(glob.glob(os.path.join(_common.RESULTS, "input_*.json"))):
    parts += [input_section(load(os.path.basename(name))), ""]
  path = os.path.join(_common.RESULTS, "RESULTS.md")
  with open(path, "w") as f:
    f.write("\n".join(parts))
  print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
  main()
