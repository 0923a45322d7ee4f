"""The runs behind ``04_claims.ipynb``: the lecture's claims measured on the digits.

Every run is ``mixjax.training.train_and_evaluate`` (``train.py``'s code) with
``configs/digits.py`` (scikit-learn's 1,797 real 8×8 digits, the 19,562-parameter small
CNN, SGD + Nesterov, batch 64, weight decay 5e-4), one method, one seed and one
*setting*:

* ``noise0``, ``noise20``, ``noise40``, ``noise60``: 100 epochs with that percentage of
  the training labels replaced by a uniformly drawn other class (the mixup paper's
  Table 2 protocol; the draw follows the run's seed; test labels stay clean).
* ``epochs30`` and ``epochs300``: clean labels, 30 and 300 epochs (calibration as
  training lengthens; 100 epochs is ``noise0``); 300 epochs for ERM and the lecture's
  three methods only.
* ``mixoff``: clean labels, 100 epochs, no mixing from epoch 90 on (timm's
  ``mixup_off_epoch``; mixing methods only).

Every schedule divides the learning rate (0.05) by 10 at 50 % and 75 % of the epochs,
as the mixup paper's label-noise runs do (200 epochs, ×0.1 at 100 and 150). The test
split is evaluated after every epoch (final and best accuracy, NLL, ECE, and with label
noise the fraction of flipped training examples predicted as their wrong label). The
``noise0`` models are then evaluated on perturbed test images: occlusion
(:mod:`mixjax.robustness`, zeros or uniform noise over 0–50 % of the image, centred or
at a random position) and FGSM at several ε, both in the ``[0, 1]`` pixel scale.

Results go to a JSON-lines file (gzip-compressed for a ``.gz`` name), one line per run,
so a study that is stopped resumes where it was (finished runs are not repeated). The
full study, from the repository root (about an hour on 2 cores)::

  python notebooks/claims_study.py --out docs/claims/results.jsonl.gz --workers 2

Each worker is a fresh process running XLA on one thread, which on a small CPU is
faster than one process using every core for such a small network.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import gzip
import importlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

METHODS = ("erm", "mixup", "manifold_mixup", "cutmix", "fmix", "resizemix", "saliencymix",
           "gridmix", "smoothmix")
SEEDS = (0, 1, 2, 3, 4)
NOISE_LEVELS = (0.0, 0.2, 0.4, 0.6)
# Digits are 8×8, so the boxes are s × s pixels for s = 0..6: 0, 2, 6, 14, 25, 39 and 56 %
# of the image (occlusion_boxes rounds 8·√f to a whole side).
OCCLUSION_FRACTIONS = tuple((s / 8) ** 2 for s in range(7))
OCCLUSION_FILLS = ("zeros", "noise")
FGSM_EPS = (0.0, 0.02, 0.05, 0.1, 0.2)
LECTURE_METHODS = ("erm", "mixup", "manifold_mixup", "cutmix")
# Settings: name -> (epochs, label noise, mixup_off_epoch, the methods it runs).
SETTINGS = {
    **{f"noise{round(p * 100)}": (100, p, None, METHODS) for p in NOISE_LEVELS},
    "epochs30": (30, 0.0, None, METHODS),
    "mixoff": (100, 0.0, 90, METHODS[1:]),
    "epochs300": (300, 0.0, None, LECTURE_METHODS),   # The lecture's methods: 3× the time.
}


@dataclasses.dataclass(frozen=True)
class Job:
  """One training run of the study."""
  setting: str
  method: str
  seed: int
  epochs: int
  label_noise: float
  mixup_off_epoch: int | None
  robustness: bool

  @property
  def key(self) -> str:
    return f"{self.setting}/{self.method}/{self.seed}"


def jobs(settings=tuple(SETTINGS), methods=METHODS, seeds=SEEDS, epochs_scale=1.0):
  """The study's runs, in the order of ``SETTINGS`` (the label-noise grid first).

  ``epochs_scale`` shrinks every run (the CI smoke test), keeping at least 2 epochs.
  """
  out = []
  for setting in settings:
    epochs, noise, off, runs = SETTINGS[setting]
    scaled = max(2, round(epochs * epochs_scale))
    off = None if off is None else max(1, min(scaled - 1, round(off * scaled / epochs)))
    for method in methods:
      if method not in runs:
        continue
      for seed in seeds:
        out.append(Job(setting, method, seed, scaled, noise, off, setting == "noise0"))
  return out


def config_for(job: Job):
  """``configs/digits.py`` with the job's epochs, schedule, seed, noise and mixing stop."""
  if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
  config = importlib.import_module("configs.digits").get_config()
  config.methods = (job.method,)
  config.seed = job.seed
  config.num_epochs = job.epochs
  config.milestones = (job.epochs // 2, job.epochs * 3 // 4)
  config.label_noise = job.label_noise
  config.mixup_off_epoch = job.mixup_off_epoch
  config.log_every_epochs = job.epochs
  config.tensorboard = False
  config.checkpoint_every_steps = 10 ** 9   # Only the final checkpoint.
  return config


def robustness(state, seed: int) -> dict:
  """Test accuracy of a trained digits model under occlusion and FGSM."""
  import jax
  import jax.numpy as jnp
  import optax

  from mixjax import robustness as rb
  from mixjax.data import load_dataset, normalize

  ds = load_dataset("digits")
  images = jnp.asarray(ds.test_images, jnp.float32) / 255.0    # [0, 1]
  labels = jnp.asarray(ds.test_labels)
  variables = {"params": state.params, "batch_stats": state.batch_stats}

  def logits_of(x):
    return state.apply_fn(variables, normalize(x * 255.0, ds.mean, ds.std), train=False)

  @jax.jit
  def accuracy(x):
    return jnp.mean(jnp.argmax(logits_of(x), -1) == labels)

  def loss(x):
    return optax.softmax_cross_entropy_with_integer_labels(logits_of(x), labels).mean()

  key = jax.random.key(10_000 + seed)
  batch, height, width, _ = images.shape
  occlusion = {}
  for position in rb.POSITIONS:
    for fill in OCCLUSION_FILLS:
      row = []
      for i, fraction in enumerate(OCCLUSION_FRACTIONS):
        k_box, k_fill = jax.random.split(jax.random.fold_in(key, i))
        boxes = rb.occlusion_boxes(k_box, batch, height, width, fraction, position)
        value = 0.0 if fill == "zeros" else jax.random.uniform(k_fill, images.shape)
        row.append(float(accuracy(rb.occlude(images, boxes, value))))
      occlusion[f"{position}/{fill}"] = row
  fgsm = [float(accuracy(rb.fgsm(loss, images, eps))) for eps in FGSM_EPS]
  return {"occlusion": occlusion, "fgsm": fgsm}


def run_job(job: Job) -> dict:
  """Trains the job's run and returns its JSON-able result row."""
  from mixjax.training import train_and_evaluate

  with tempfile.TemporaryDirectory() as workdir:
    result = train_and_evaluate(config_for(job), workdir, job.method, log=lambda _: None)
  history = result["history"]
  row = {**dataclasses.asdict(job), "key": job.key,
         **{k: result[k] for k in ("accuracy", "nll", "ece", "train_loss", "seconds",
                                   "images_per_sec")},
         "best_accuracy": max(h["test_accuracy"] for h in history),
         "flipped_accuracy": history[-1].get("train_flipped_accuracy"),
         # Per epoch, one list per metric.
         "history": {k: [h[k] for h in history] for k in HISTORY if k in history[0]}}
  if job.robustness:
    row.update(robustness(result["state"], job.seed))
  return compact(row)


HISTORY = ("test_accuracy", "test_nll", "test_ece", "train_flipped_accuracy")
DIGITS = 5   # Decimals kept in the results file (accuracies are multiples of 1/360).


def compact(row: dict) -> dict:
  """``row`` with its floats rounded to :data:`DIGITS` decimals (a smaller file)."""
  if isinstance(row, dict):
    return {k: compact(v) for k, v in row.items()}
  if isinstance(row, list):
    return [compact(v) for v in row]
  return round(row, DIGITS) if isinstance(row, float) else row


def _worker_env() -> dict[str, str]:
  env = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
         "JAX_PLATFORMS": "cpu"}
  if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    env["JAX_COMPILATION_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / "mixjax-claims-cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  return env


def _init_worker(env: dict[str, str]) -> None:
  os.environ.update(env)     # Before this process imports jax (spawned: a fresh one).


def _open(path, mode: str):
  """A results file, gzip-compressed when its name ends in ``.gz`` (appending adds a member)."""
  return gzip.open(path, mode + "t") if str(path).endswith(".gz") else open(path, mode)


def load_results(path: str | os.PathLike) -> dict[str, dict]:
  """The finished runs in a results file, by :attr:`Job.key` (the last line wins)."""
  rows = {}
  if Path(path).exists():
    with _open(path, "r") as f:
      for line in f:
        if line.strip():
          row = json.loads(line)
          rows[row["key"]] = row
  return rows


def run_study(todo, out: str | os.PathLike | None = None, workers: int = 0,
              log=print) -> dict[str, dict]:
  """Runs the jobs not already in ``out`` and returns every result by key.

  Args:
    todo: the :class:`Job` s.
    out: a JSON-lines results file, appended to as runs finish (``None``: none).
    workers: parallel worker processes (single-threaded XLA each); 0 runs the jobs
      here, one after the other.
    log: where one line per finished run goes.
  """
  results = load_results(out) if out else {}
  missing = [job for job in todo if job.key not in results]
  start = time.perf_counter()

  def done(row):
    results[row["key"]] = row
    if out:
      Path(out).parent.mkdir(parents=True, exist_ok=True)
      with _open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    log(f"[{len(results)}/{len(todo)} · {time.perf_counter() - start:6.0f}s] {row['key']}: "
        f"acc {row['accuracy']:.4f} (best {row['best_accuracy']:.4f}) ece {row['ece']:.4f}")

  if workers <= 0:
    for job in missing:
      done(run_job(job))
  else:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker,
        initargs=(_worker_env(),)) as pool:
      futures = [pool.submit(run_job, job) for job in missing]
      for future in concurrent.futures.as_completed(futures):
        done(future.result())
  return {job.key: results[job.key] for job in todo}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--out", default=str(ROOT / "docs" / "claims" / "results.jsonl.gz"))
  p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
  p.add_argument("--settings", default=",".join(SETTINGS))
  p.add_argument("--methods", default=",".join(METHODS))
  p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
  args = p.parse_args(argv)
  if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
  todo = jobs(tuple(args.settings.split(",")), tuple(args.methods.split(",")),
              tuple(int(s) for s in args.seeds.split(",")))
  run_study(todo, args.out, args.workers)


if __name__ == "__main__":
  main()
