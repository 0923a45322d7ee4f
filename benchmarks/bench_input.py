"""The host input pipeline: decode + random-resized crop + flip at 224 px, images/s per core.

Answers "how many host cores does my accelerator need to be fed?". Side by side in
one run, on the same folder of ImageNet-sized JPEGs:

* ``mixjax``: the trainer's Grain pipeline (``mixjax.data``): torchvision's
  RandomResizedCrop box; libjpeg-turbo 3 decodes only the rows and columns the resize
  reads (``mixjax.data.turbojpeg``; at a DCT scale when the crop is at least twice the
  output); the accurate DCT and Pillow's antialiased bilinear resize to 224² (the
  default, torchvision's), or tf.data's choices (``config.antialias=False``,
  ``config.fast_dct=True``: the fast integer DCT, OpenCV's bilinear without
  antialiasing); uint8 batches of 64. Its flip runs on the device (``config.flip``), so
  the host does not do it. With 0 worker processes (1 thread, and 2 threads), 1 and 2
  workers (``config.data_workers``); and once with Pillow decoding every image whole
  (what a host without libjpeg-turbo 3 gets);
* ``mixjax loop``: the same per-image function (``decode.decode_crop``) in a plain loop,
  without Grain: the floor of the pipeline's overhead;
* ``tf.data``: what big_vision and the Flax ImageNet example run: ``read_file``,
  ``sample_distorted_bounding_box`` (the same area and aspect ranges, 10 tries),
  ``decode_and_crop_jpeg`` (libjpeg-turbo decodes only the crop's rows), a bilinear
  resize (``tf.image.resize``'s default, no antialiasing), ``random_flip_left_right``,
  a cast to uint8, ``batch(64)``; its thread pool sized to the cores. Once more with
  ``antialias=True``, the filter mixjax's (and torchvision's) Pillow resize applies;
* where mixjax's time goes, per image on one core: Pillow's full decode, the partial
  decode, the antialiased (Pillow) and plain (OpenCV) resizes of the crop alone.

Every configuration runs in a fresh process pinned (``sched_setaffinity``, inherited by
Grain's workers) to ``cores`` CPUs; after a warm-up (worker start-up) it times
``--batches`` batches and reads the CPU time that the process and all its descendants
spent meanwhile (``/proc``). ``per_core`` is images/s divided by the pinned cores;
``cpu_ms_per_image`` is what each image cost in CPU time, whichever core did it.

The images: ``--images`` (512) JPEGs cut from scikit-learn's two sample photos (real
photographs, 427 × 640), in ImageNet's common sizes: 500 × 375 or 500 × 333 in either
orientation, and one in eight with its long side drawn from 600-1,200 px; quality 95 with
4:2:0 chroma. The result records their mean file size (ImageNet's is ~110 KB: these
photos are smoother, so they decode a little faster than ImageNet's average).

  python benchmarks/bench_input.py                  # writes results/input_cpu.json
  python benchmarks/bench_input.py --batches 20 --images 128   # a quick look
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import _common

SIZE = 224
BATCH = 64
# An A100 trains ResNet-50 at about 2,500 images/s in mixed precision (NVIDIA's
# DeepLearningExamples, DALI input); the cores a host needs to keep one such GPU fed.
GPU_IMAGES_PER_SEC = 2500

CONFIGS = (
    # (name, pipeline, cores, workers, threads); "grain_tf": tf.data's choices
    # (antialias=False, fast_dct=True); "grain_pillow": Pillow decodes every image whole
    # (no libjpeg-turbo 3).
    ("mixjax loop", "loop", 1, 0, 1),
    ("mixjax, 0 workers, 1 thread", "grain", 1, 0, 1),
    ("mixjax, tf.data's choices, 1 thread", "grain_tf", 1, 0, 1),
    ("mixjax, Pillow decode, 1 thread", "grain_pillow", 1, 0, 1),
    ("mixjax, 1 worker", "grain", 1, 1, 1),
    ("tf.data, 1 core", "tf", 1, 0, 1),
    ("tf.data antialiased, 1 core", "tf_antialias", 1, 0, 1),
    ("mixjax, 0 workers, 2 threads", "grain", 2, 0, 2),
    ("mixjax, tf.data's choices, 2 threads", "grain_tf", 2, 0, 2),
    ("mixjax, 2 workers", "grain", 2, 2, 1),
    ("tf.data, 2 cores", "tf", 2, 0, 2),
)


def make_folder(root: str, count: int, seed: int = 0) -> str:
  """``count`` ImageNet-sized JPEGs in ``root/train/<class>/`` (and one per class in val)."""
  import numpy as np
  from PIL import Image
  from sklearn.datasets import load_sample_images
  photos = [Image.fromarray(p) for p in load_sample_images().images]
  rng = np.random.default_rng(seed)
  for split, n in (("train", count), ("val", 8)):
    for i in range(n):
      folder = os.path.join(root, split, f"class_{i % 8}")
      os.makedirs(folder, exist_ok=True)
      long = int(rng.integers(600, 1201)) if rng.random() < 1 / 8 else 500
      short = round(long * (0.75 if rng.random() < 0.6 else 2 / 3))
      w, h = (long, short) if rng.random() < 0.75 else (short, long)
      photo = photos[i % len(photos)]
      # A random window of the photo with the target's aspect, at least 60% of its side.
      scale = rng.uniform(0.6, 1.0) * min(photo.width / w, photo.height / h)
      cw, ch = w * scale, h * scale
      left = rng.uniform(0, photo.width - cw)
      top = rng.uniform(0, photo.height - ch)
      image = photo.resize((w, h), Image.Resampling.BICUBIC,
                           box=(left, top, left + cw, top + ch))
      image.save(os.path.join(folder, f"{i:05d}.jpg"), quality=95, subsampling="4:2:0")
  return root


def _tree_cpu_seconds() -> float:
  """User + system CPU seconds of this process and all its live descendants."""
  ticks = os.sysconf("SC_CLK_TCK")
  stats = {}
  for entry in os.listdir("/proc"):
    if entry.isdigit():
      try:
        with open(f"/proc/{entry}/stat") as f:
          fields = f.read().rsplit(")", 1)[1].split()
      except OSError:
        continue
      stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
  tree, grew = {os.getpid()}, True
  while grew:
    grew = False
    for pid, (ppid, _) in stats.items():
      if ppid in tree and pid not in tree:
        tree.add(pid)
        grew = True
  return sum(stats[pid][1] for pid in tree if pid in stats)


def _mixjax_batches(data_dir: str, workers: int, threads: int, loop: bool,
                    tf_choices: bool = False):
  from mixjax.data import datasets, decode, pipeline
  decoding = decode.Options(antialias=not tf_choices, fast_dct=tf_choices)
  split = datasets.open_source("imagefolder", data_dir, SIZE, seed=0,
                               decoding=decoding).train
  if loop:  # The per-image function alone, in the order the pipeline reads.
    def batches():
      epoch = 0
      while True:
        order = _order(len(split), epoch)
        for start in range(0, len(order) - BATCH + 1, BATCH):
          images = [decode.decode_crop(split.files[i], split.files[i], SIZE,
                                       decode.example_rng(0, epoch, int(i)), decoding)
                    for i in order[start:start + BATCH]]
          yield images
        epoch += 1
    return batches()
  dataset = pipeline.train_dataset(split, BATCH, seed=0, num_epochs=1000)
  return pipeline.iterate(dataset, workers=workers, threads=threads, buffer=2)


def parts(data_dir: str, repeats: int = 3) -> dict:
  """Milliseconds per image on one core: Pillow's full decode, the partial decode of the
  crop's region, the crop's antialiased (Pillow) and plain (OpenCV) resizes alone, and
  the whole ``decode_crop`` with each filter."""
  import cv2
  import numpy as np
  from PIL import Image

  from mixjax.data import datasets, decode, turbojpeg
  split = datasets.open_source("imagefolder", data_dir, SIZE, seed=0).train
  files = split.files[:256]
  encoded = [open(f, "rb").read() for f in files]
  images = [Image.open(io.BytesIO(e)).convert("RGB") for e in encoded]
  arrays = [np.asarray(image) for image in images]
  heads = [turbojpeg.header(e) for e in encoded]
  boxes = []
  for i, image in enumerate(images):
    top, left, h, w = decode.inception_box(decode.example_rng(0, 0, i), image.height,
                                           image.width)
    boxes.append((left, top, left + w, top + h))

  def partial(i):  # The region decode_crop asks for (no DCT scale: it times the crop).
    box = boxes[i]
    return turbojpeg.decode(encoded[i], heads[i], 1,
                            decode._region(box, SIZE, *images[i].size, True, None))

  def best(fn):
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      for i in range(len(files)):
        fn(i)
      times.append(time.perf_counter() - start)
    return 1e3 * min(times) / len(files)

  def plain(i):
    left, top, right, bottom = boxes[i]
    return cv2.resize(arrays[i][top:bottom, left:right], (SIZE, SIZE),
                      interpolation=cv2.INTER_LINEAR)

  return {"decode_ms": best(lambda i: Image.open(io.BytesIO(encoded[i])).convert("RGB")),
          "partial_decode_ms": best(partial) if turbojpeg.available() else None,
          "resize_ms": best(lambda i: images[i].resize((SIZE, SIZE), Image.Resampling.BILINEAR,
                                                       box=boxes[i])),
          "plain_resize_ms": best(plain),
          "decode_crop_ms": best(lambda i: decode.decode_crop(
              encoded[i], files[i], SIZE, decode.example_rng(0, 0, i))),
          "decode_crop_tf_choices_ms": best(lambda i: decode.decode_crop(
              encoded[i], files[i], SIZE, decode.example_rng(0, 0, i),
              decode.Options(antialias=False, fast_dct=True)))}


def _order(n: int, epoch: int):
  import numpy as np
  return np.random.default_rng([0, epoch]).permutation(n)


def _tf_batches(data_dir: str, cores: int, antialias: bool):
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf
  tf.config.threading.set_inter_op_parallelism_threads(cores)
  tf.config.threading.set_intra_op_parallelism_threads(1)
  files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(data_dir, "train"))
                 for f in fs)

  def decode_crop(path):
    data = tf.io.read_file(path)
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        tf.image.extract_jpeg_shape(data), tf.zeros([0, 0, 4], tf.float32),
        min_object_covered=0.0, aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True)
    y, x, _ = tf.unstack(begin)
    h, w, _ = tf.unstack(size)
    image = tf.image.decode_and_crop_jpeg(data, tf.stack([y, x, h, w]), channels=3)
    image = tf.image.resize(image, (SIZE, SIZE), method="bilinear", antialias=antialias)
    image = tf.image.random_flip_left_right(image)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

  ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=0).repeat()
  ds = ds.map(decode_crop, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH).prefetch(2)
  options = tf.data.Options()
  options.threading.private_threadpool_size = cores
  options.threading.max_intra_op_parallelism = 1
  return ds.with_options(options).as_numpy_iterator()


def child(args) -> dict:
  """One configuration, in this (pinned) process."""
  os.sched_setaffinity(0, range(args.cores))
  if args.pipeline == "parts":
    return parts(args.data_dir)
  if args.pipeline.startswith("tf"):
    batches = _tf_batches(args.data_dir, args.cores, args.pipeline == "tf_antialias")
  else:
    if args.pipeline == "grain_pillow":  # As on a host without libjpeg-turbo 3.
      from mixjax.data import turbojpeg
      turbojpeg.header = lambda encoded: None
    batches = _mixjax_batches(args.data_dir, args.workers, args.threads,
                              args.pipeline == "loop", args.pipeline == "grain_tf")
  start = time.monotonic()
  for _ in range(args.warmup):
    next(batches)
  warmup = time.monotonic() - start
  cpu, start = _tree_cpu_seconds(), time.monotonic()
  for _ in range(args.batches):
    next(batches)
  seconds = time.monotonic() - start
  cpu = _tree_cpu_seconds() - cpu
  images = args.batches * BATCH
  return {"images_per_sec": images / seconds, "per_core": images / seconds / args.cores,
          "cpu_ms_per_image": 1e3 * cpu / images, "seconds": seconds,
          "warmup_seconds": warmup, "images": images}


def _run_child(name: str, *args: str) -> dict:
  """Runs this script with ``--child ARGS`` in a fresh process: the JSON it prints last."""
  proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *args],
                        capture_output=True, text=True, cwd=_common.HERE)
  if proc.returncode:
    raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--images", type=int, default=512)
  parser.add_argument("--batches", type=int, default=40, help="timed batches of 64")
  parser.add_argument("--warmup", type=int, default=4, help="untimed batches first")
  parser.add_argument("--rounds", type=int, default=2,
                      help="runs of every configuration, interleaved; the best is kept")
  parser.add_argument("--only", default="", help="config names separated by ;")
  parser.add_argument("--wait-load", type=float, default=0.0)
  parser.add_argument("--out", default=os.path.join(_common.RESULTS, "input_cpu.json"))
  # Internal: one configuration in a child process.
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--pipeline", help=argparse.SUPPRESS)
  parser.add_argument("--cores", type=int, help=argparse.SUPPRESS)
  parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
  parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
  parser.add_argument("--data-dir", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(child(args)))
    return

  available = len(os.sched_getaffinity(0))
  configs = [c for c in CONFIGS if c[2] <= available
             and (not args.only or c[0] in args.only.split(";"))]
  with tempfile.TemporaryDirectory() as tmp:
    data_dir = make_folder(tmp, args.images)
    sizes = [os.path.getsize(os.path.join(d, f))
             for d, _, fs in os.walk(os.path.join(data_dir, "train")) for f in fs]
    load = _common.wait_for_quiet(args.wait_load)
    where = _run_child("parts", "--pipeline", "parts", "--cores", "1", "--data-dir", data_dir)
    print("  one core, ms per image: " + ", ".join(
        f"{k[:-3]} {v:.2f}" for k, v in where.items() if v is not None),
        file=sys.stderr, flush=True)
    rows = {}
    for _ in range(args.rounds):
      for name, pipeline, cores, workers, threads in configs:
        row = _run_child(name, "--pipeline", pipeline, "--cores", str(cores),
                         "--workers", str(workers), "--threads", str(threads),
                         "--data-dir", data_dir, "--batches", str(args.batches),
                         "--warmup", str(args.warmup))
        print(f"  {name:30s} {row['images_per_sec']:7.0f} img/s  "
              f"{row['per_core']:6.0f} /core  {row['cpu_ms_per_image']:5.2f} CPU ms/img",
              file=sys.stderr, flush=True)
        best = rows.get(name)
        if best is None or row["images_per_sec"] > best["images_per_sec"]:
          rows[name] = {"pipeline": pipeline, "cores": cores, "workers": workers,
                        "threads": threads, **row}
  tf_rate = next((r["per_core"] for n, r in rows.items() if n == "tf.data, 1 core"), None)
  for row in rows.values():
    row["cores_per_gpu"] = GPU_IMAGES_PER_SEC / row["per_core"]
    if tf_rate:
      row["vs_tf_data_per_core"] = row["per_core"] / tf_rate
  result = {"benchmark": "input", "date": _common.now(), "machine": _common.machine(),
            "load_before": load, "image_size": SIZE, "batch_size": BATCH,
            "images": args.images, "mean_file_kb": sum(sizes) / len(sizes) / 1e3,
            "gpu_images_per_sec": GPU_IMAGES_PER_SEC, "rounds": args.rounds,
            "mixjax_one_core_ms": where, "rows": rows}
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
  print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
  main()
