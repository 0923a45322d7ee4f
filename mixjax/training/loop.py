"""The training loop shared by ``train.py`` and the notebooks.

:func:`train_and_evaluate` trains one method from a config and returns its
final metrics; :func:`compare` trains each method named in ``config.methods``
and returns one row per method. Metrics go to stdout, ``metrics.jsonl`` and
TensorBoard (through tensorboardX, when it is installed).

Input comes from :mod:`mixjax.data.pipeline` (Grain): this process's rows of every
global batch, loaded ahead by ``config.data_threads`` threads in each of
``config.data_workers`` worker processes and put on the devices
``config.prefetch_batches`` steps ahead of the step that uses them.
"""

from __future__ import annotations

import collections
import json
import math
import os
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mixjax.data import (
    DecodeOptions,
    Source,
    Split,
    TrainInput,
    eval_dataset,
    open_source,
    steps_per_epoch,
    train_dataset,
)
from mixjax.data.pipeline import iterate
from mixjax.models import get_model, list_models
from mixjax.training import distributed
from mixjax.training.checkpoint import Checkpointer
from mixjax.training.methods import (
    MANIFOLD_METHODS,
    check_draw,
    check_mixer,
    mixer_from_config,
)
from mixjax.training.metrics import summarize
from mixjax.training.optimizers import optimizer_from_config
from mixjax.training.parallel import AXIS, DataParallel, check_divisible
from mixjax.training.state import create_train_state, make_schedule
from mixjax.training.step import Augment, make_eval_step, make_train_step

BATCH_NORMS = ("sync", "per_device")
# Per-epoch row fields that measure time, not learning (differ between identical runs).
TIMING_FIELDS = ("images_per_sec", "input_images_per_sec", "data_wait")


class NonFiniteLossError(FloatingPointError):
  """Raised when the loss or gradients become NaN/Inf; no checkpoint is written after it.

  Attributes:
    step: the first step (counting from 1, as checkpoints do: the update that
      makes ``state.step`` equal to it) whose loss or gradient norm was NaN/Inf.
    stopped_at: the number of steps run when training stopped.
  """

  def __init__(self, message: str, step: int | None = None, stopped_at: int | None = None):
    super().__init__(message)
    self.step, self.stopped_at = step, stopped_at


@jax.jit
def _accumulate(loss_sum, finite, metrics):
  """The epoch's loss sum, all steps finite so far, this step finite (on device)."""
  ok = jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
  return loss_sum + metrics["loss"], finite & ok, ok


class _FiniteWatch:
  """Notices a NaN/Inf loss or gradient within ``2·every`` steps, without a sync per step.

  Each step adds its on-device flags (:func:`_accumulate`). After every
  ``every``-th step the all-finite flag of the previous mark, ``every`` steps
  back (long computed, so the host does not wait for the step it just
  dispatched), is read; a step's own flags are read only to name the first bad
  step once one is known.
  """

  def __init__(self, every: int):
    self.every = every
    self.finite = jnp.array(True)
    self.steps: list[tuple[int, jax.Array]] = []  # (step, finite) not yet known finite.
    self.mark: tuple[int, jax.Array] | None = None

  def add(self, step: int, finite: jax.Array, ok: jax.Array) -> int | None:
    """Records step ``step`` (from 1); the first bad step when a mark reads NaN/Inf."""
    self.finite = finite
    self.steps.append((step, ok))
    if step % self.every:
      return None
    mark, self.mark = self.mark, (step, finite)
    return None if mark is None else self._check(*mark)

  def check(self, step: int) -> int | None:
    """Reads (waits for) the flag of every step up to ``step``, the last one run."""
    return self._check(step, self.finite)

  def _check(self, upto: int, finite: jax.Array) -> int | None:
    if bool(finite):
      self.steps = [(s, ok) for s, ok in self.steps if s > upto]
      return None
    flags = jax.device_get([ok for s, ok in self.steps if s <= upto])
    return next(s for (s, _), ok in zip(self.steps, flags, strict=False) if not ok)


def _devices(config) -> list:
  """The devices of the run: every process's (``jax.devices()``), or the first N."""
  devices = jax.devices()
  wanted = config.get("num_devices")
  if wanted and wanted != len(devices):
    if jax.process_count() > 1:
      raise ValueError(
          f"num_devices={wanted} selects devices within one process; with "
          f"{jax.process_count()} processes the run uses all {len(devices)} devices "
          "(leave num_devices at 0).")
    if wanted > len(devices):
      raise ValueError(
          f"num_devices={wanted} but only {len(devices)} devices exist.")
    devices = devices[:wanted]
  return devices


class _Progress:
  """A one-line progress bar with throughput, on a terminal only."""

  def __init__(self, total: int, stream=sys.stderr, enabled: bool = True):
    self.total, self.stream = total, stream
    self.enabled = enabled and hasattr(stream, "isatty") and stream.isatty()

  def update(self, done: int, images_per_sec: float, input_per_sec: float,
             data_wait: float):
    if not self.enabled:
      return
    width = 30
    filled = int(width * done / max(self.total, 1))
    self.stream.write(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
        f"step {images_per_sec:,.0f} img/s | input {input_per_sec:,.0f} img/s | "
        f"waiting for data {data_wait:.0%}  ")
    self.stream.flush()

  def close(self):
    if self.enabled:
      self.stream.write("\n")


def _tensorboard(workdir: str, enabled: bool):
  """A tensorboardX writer (no TensorFlow needed), or None when disabled or missing."""
  if not enabled:
    return None
  try:
    from tensorboardX import SummaryWriter
  except ImportError:
    return None
  return SummaryWriter(workdir)


class _DeviceFeed:
  """The run's batches, put on the devices ``depth`` steps ahead of the step using them.

  ``next`` returns ``(device batch, input state)``. Counts what the input costs: the
  host's time blocked waiting for the pipeline (``wait``) and the loaders' own time
  per image (``load``), from which :meth:`rates` reports what the input could deliver.
  """

  def __init__(self, inputs: TrainInput, put, depth: int, loaders: int):
    self.inputs, self.put, self.depth, self.loaders = inputs, put, max(depth, 1), loaders
    self.queue: collections.deque = collections.deque()
    self.reset()

  def reset(self):
    self.wait = self.load = 0.0
    self.images = 0

  def _fill(self):
    while len(self.queue) < self.depth:
      start = time.perf_counter()
      try:
        batch, state = next(self.inputs)
      except StopIteration:
        return
      self.wait += time.perf_counter() - start
      self.load += float(batch.pop("load_seconds"))
      self.images += batch["label"].shape[0]
      self.queue.append((self.put(batch), state))

  def __next__(self):
    self._fill()
    if not self.queue:
      raise StopIteration
    item = self.queue.popleft()
    self._fill()  # The next batches' transfers start before this step runs.
    return item

  def rates(self, seconds: float) -> tuple[float, float]:
    """(images/s the loaders deliver when busy, fraction of ``seconds`` spent waiting)."""
    per_sec = self.images * self.loaders / self.load if self.load > 0 else math.inf
    return per_sec, self.wait / max(seconds, 1e-9)


def _open_source(config: ml_collections.ConfigDict):
  """The config's dataset (its ``label_noise`` drawn from its ``seed``)."""
  return open_source(config.dataset, config.get("data_dir"), config.get("image_size", 224),
                     config.seed, label_noise=config.get("label_noise", 0.0),
                     decoding=DecodeOptions(config.get("antialias", True),
                                           config.get("fast_dct", False)))


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    method: str | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
    source: Source | None = None,
) -> dict:
  """Trains one method and evaluates it on the whole test split.

  Args:
    config: a config from ``configs/`` (see ``configs/base.py`` for the fields).
    workdir: where checkpoints, ``metrics.jsonl`` and TensorBoard logs go.
    method: a name of :func:`~mixjax.training.method_names`; default
      ``config.methods[0]``. Its mixer is :func:`~mixjax.training.mixer_from_config`'s.
    resume: continue from the newest checkpoint in ``workdir``. Without it, a
      ``workdir`` that holds checkpoints is an error (nothing is overwritten).
    log: where progress lines go.
    source: the dataset, already opened
      (:func:`~mixjax.data.open_source` of ``config.dataset``, ``data_dir``,
      ``image_size``, ``seed`` and ``label_noise``); default: opened here.

  With several processes (:mod:`mixjax.training.distributed`) every process
  calls this with the same config and ``workdir`` (a directory they all share:
  checked); each loads its rows of every global batch, all take part in the
  checkpoints, and only process 0 logs and writes ``metrics.jsonl`` and
  TensorBoard.

  Returns:
    the final metrics: ``accuracy``, ``nll``, ``ece``, ``train_loss``, ``epochs``,
    ``steps``, ``images_per_sec``, ``seconds``, plus the ``history`` per epoch.

  Raises:
    ValueError: bad config (unknown dataset/model/method, a field set for a method
      that does not take it, batch size not divisible by the device count, ...).
    FileExistsError: ``workdir`` has checkpoints and ``resume`` is False.
    NonFiniteLossError: the loss or gradients became NaN/Inf; training stops within
      ``2·config.nan_check_every`` steps and the last good checkpoint is kept.
  """
  name = config.methods[0] if method is None else method
  mixer = mixer_from_config(config, name)
  manifold = name in MANIFOLD_METHODS
  check_every = config.get("nan_check_every", 10)
  if not isinstance(check_every, int) or check_every < 1:
    raise ValueError(
        f"nan_check_every must be an int >= 1 (steps between reads of the NaN/Inf "
        f"flag), got {check_every!r}.")
  devices = _devices(config)
  batch_size = config.batch_size
  # Gradient accumulation: each update averages the gradients of `accumulate` steps of
  # micro-batches of batch_size / accumulate (together the global batch's examples).
  accumulate = config.get("grad_accum_steps", 1)
  if not isinstance(accumulate, int) or accumulate < 1 or batch_size % accumulate:
    raise ValueError(f"grad_accum_steps must be an int >= 1 dividing batch_size "
                     f"({batch_size}), got {accumulate!r}.")
  micro_batch = batch_size // accumulate
  eval_batch_size = config.get("eval_batch_size") or batch_size
  check_divisible(micro_batch, len(devices),
                  "batch_size / grad_accum_steps" if accumulate > 1 else "batch_size")
  check_divisible(eval_batch_size, len(devices), "eval_batch_size")
  primary = distributed.is_primary()
  if not primary:
    log = lambda line: None  # Only process 0 reports.
  rows = distributed.process_slice(micro_batch)
  eval_rows = distributed.process_slice(eval_batch_size)

  if config.model not in list_models():
    raise ValueError(f"unknown model {config.model!r}; known models: {list_models()}.")
  if source is None:
    source = _open_source(config)
  # Unset (None) model options keep the model's defaults.
  model_kwargs = {k: v for k, v in (config.get("model_kwargs") or {}).items()
                  if v is not None}
  batch_norm = config.get("batch_norm", "sync")
  if batch_norm not in BATCH_NORMS:
    raise ValueError(f"batch_norm must be one of {BATCH_NORMS}, got {batch_norm!r}.")
  if "axis_name" in model_kwargs:
    raise ValueError(
        "model_kwargs.axis_name is set by the trainer: use --config.batch_norm=sync "
        "(statistics of the global batch, the default) or per_device.")
  dtype = jnp.dtype(config.get("dtype") or "float32")
  if dtype != jnp.float32:
    model_kwargs.setdefault("dtype", dtype)
  if config.get("mix_layers"):  # Where the model may mix: where Manifold Mixup draws.
    model_kwargs["mix_layers"] = tuple(config.mix_layers)
  try:
    model = get_model(config.model, source.num_classes, **model_kwargs)
  except TypeError as e:  # A declared option this model does not have.
    raise ValueError(
        f"model {config.model!r} does not take the options "
        f"{sorted(k for k in model_kwargs if k not in ('dtype', 'mix_layers'))} set in "
        f"config.model_kwargs: {e}") from e
  if batch_norm == "sync" and hasattr(model, "axis_name"):
    model = model.clone(axis_name=AXIS)  # BatchNorm over the whole global batch.

  train_data = train_dataset(source.train, batch_size, config.seed, config.num_epochs, rows,
                             accumulate)
  updates_per_epoch = steps_per_epoch(len(source.train), batch_size)
  spe = updates_per_epoch * accumulate  # Steps (micro-batches) per epoch.
  workers = config.get("data_workers", 0)
  threads = config.get("data_threads", 1)
  input_options = {"workers": workers, "threads": threads,
                   "buffer": config.get("data_buffer", 2)}
  # What a saved input position belongs to: the same in a resumed run, or it restarts.
  input_key = {"processes": jax.process_count(), "workers": workers, "batch_size": batch_size}
  # The schedule counts optimiser updates (optax.MultiSteps steps it once per update).
  schedule = make_schedule(
      config.learning_rate, config.num_epochs * updates_per_epoch, updates_per_epoch,
      config.schedule, config.get("warmup_epochs", 0.0), tuple(config.get("milestones", ())),
      config.get("gamma", 0.1), config.get("warmup_lr", 0.0), config.get("min_lr", 0.0),
      config.get("step_epochs"))
  tx = optimizer_from_config(config, schedule)
  ema_decay = config.get("ema_decay")
  init_key, train_key = jax.random.split(jax.random.key(config.seed))
  state = create_train_state(model, init_key, source.image_shape, tx,
                             ema=ema_decay is not None)
  augment = Augment(config.padding, config.flip, tuple(source.mean), tuple(source.std),
                    config.get("random_erasing", 0.0))
  eval_step = make_eval_step(model, augment, config.get("ece_bins", 15), dtype=dtype)
  label_smoothing = config.get("label_smoothing", 0.0)

  def mapped(mixer, manifold: bool) -> DataParallel:
    return DataParallel(
        make_train_step(model, mixer, source.num_classes, augment, label_smoothing,
                        dtype=dtype, loss=config.get("loss", "ce"), manifold=manifold,
                        ema_decay=ema_decay, accumulate=accumulate),
        eval_step, backend=config.get("parallel", "shard_map"), devices=devices,
        compiler_options={} if config.get("xla_defaults", False) else None)

  parallel = mapped(mixer, manifold)
  # timm's --mixup-off-epoch: from this epoch (counted from 0) on, train without mixing
  # (the labels keep their smoothing); its step is compiled when first needed.
  mix_off = config.get("mixup_off_epoch")
  if mix_off is not None and (not isinstance(mix_off, int) or mix_off < 0):
    raise ValueError(f"mixup_off_epoch must be an int >= 0 or None, got {mix_off!r}.")
  unmixed = (mapped(None, False) if mix_off is not None and mix_off < config.num_epochs
             and (mixer is not None or manifold) else None)

  os.makedirs(workdir, exist_ok=True)
  distributed.check_shared_directory(workdir)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), config.get("keep_checkpoints", 3))
  history: list[dict] = []
  meta: dict = {}
  if ckpt.latest_step() is not None:
    if not resume:
      raise FileExistsError(
          f"{workdir} already holds checkpoints (newest step {ckpt.latest_step()}); "
          "pass --resume to continue, or choose another --workdir.")
    state, meta = ckpt.restore(state)
    if meta.get("grad_accum_steps", 1) != accumulate:
      raise ValueError(
          f"{ckpt.directory} was saved with grad_accum_steps={meta.get('grad_accum_steps', 1)} "
          f"(its steps count micro-batches of that size); resume with the same value, not "
          f"{accumulate}.")
    history = meta.get("history", [])
    log(f"[{name}] resumed from step {int(state.step)} in {ckpt.directory}")
  start_step = int(state.step)
  saved = meta.get("input")
  input_start, input_state = start_step, None
  if saved and {k: saved.get(k) for k in input_key} == input_key:
    input_start, input_state = saved["start"], ckpt.restore_input(start_step)
  elif saved:  # Another process or worker count: the same batches, from the step.
    log(f"[{name}] the checkpoint's input position was saved by {saved['processes']} "
        f"process(es) with {saved['workers']} data worker(s) at batch size "
        f"{saved['batch_size']}; this run has {jax.process_count()}, {workers} and "
        f"{batch_size}: the input restarts at step {start_step} of the global order.")
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  if primary:
    with open(metrics_path, "w") as f:  # Rewritten from the checkpoint's history.
      f.writelines(json.dumps(row) + "\n" for row in history)
  writer = _tensorboard(workdir, primary and config.get("tensorboard", True))

  ckpt_every = config.get("checkpoint_every_steps") or spe
  state = parallel.put_state(state)
  inputs = TrainInput(train_data, input_start, input_state, **input_options)
  put = parallel.put_batch if parallel.backend == "shard_map" else (lambda batch: batch)
  feed = _DeviceFeed(inputs, put, config.get("prefetch_batches", 2),
                     max(workers, 1) * max(threads, 1))
  last_input_state = input_state
  progress = _Progress(config.num_epochs * spe, enabled=primary)
  images_seen, run_start = 0, time.perf_counter()
  last_saved = ckpt.latest_step()

  watch = _FiniteWatch(check_every)

  def stop(bad: int, step: int) -> None:
    """Raises for the first non-finite step ``bad``, noticed after ``step`` steps."""
    ckpt.wait()
    where = (f"the last good checkpoint, step {last_saved}, is kept in {ckpt.directory}"
             if last_saved is not None else "no checkpoint was written")
    raise NonFiniteLossError(
        f"[{name}] the loss or gradients became NaN/Inf at step {bad} (epoch "
        f"{(bad - 1) // spe + 1}); noticed after step {step} (the flags are read every "
        f"config.nan_check_every = {check_every} steps) and training stopped: nothing "
        f"from step {bad} on was saved, {where}. Lower the learning rate or check the "
        "data.", bad, step)

  def save(step: int, loss_sum=0.0, steps_in_epoch: int = 0) -> None:
    nonlocal last_saved
    bad = watch.check(step)
    if bad is not None:
      stop(bad, step)
    # The partial epoch's loss sum lets a resumed epoch report the same train_loss.
    meta = {"history": history, "method": name, "grad_accum_steps": accumulate,
            "epoch_loss_sum": float(loss_sum), "epoch_steps": steps_in_epoch}
    if last_input_state is not None:
      meta["input"] = {**input_key, "start": inputs.start}
    ckpt.save(step, parallel.get_state(state), meta, last_input_state)
    last_saved = step

  step = start_step
  try:
    for epoch in range(start_step // spe, config.num_epochs):
      epoch_start, epoch_images = time.perf_counter(), 0
      first = start_step - epoch * spe if epoch == start_step // spe else 0
      loss_sum, steps_in_epoch = jnp.zeros(()), 0
      if first:  # Resumed mid-epoch: carry on the epoch's running loss.
        loss_sum = jnp.asarray(meta.get("epoch_loss_sum", 0.0), jnp.float32)
        steps_in_epoch = meta.get("epoch_steps", 0)
      feed.reset()
      train_step = (unmixed if unmixed is not None and epoch >= mix_off else parallel).train_step
      for _ in range(first, spe):
        batch, input_state = next(feed)
        state, metrics = train_step(state, batch, jax.random.fold_in(train_key, step))
        loss_sum, finite, ok = _accumulate(loss_sum, watch.finite, metrics)
        last_input_state = input_state
        steps_in_epoch += 1
        step += 1
        bad = watch.add(step, finite, ok)
        if bad is not None:
          stop(bad, step)
        epoch_images += micro_batch
        if progress.enabled and step % 10 == 0:
          elapsed = time.perf_counter() - epoch_start
          progress.update(step, epoch_images / max(elapsed, 1e-9), *feed.rates(elapsed))
        if step % ckpt_every == 0 and step % spe:  # Mid-epoch; epoch ends save below.
          save(step, loss_sum, steps_in_epoch)
      jax.block_until_ready(state)
      epoch_time = time.perf_counter() - epoch_start
      images_seen += epoch_images
      bad = watch.check(step)
      if bad is not None:
        stop(bad, step)
      row = {"epoch": epoch + 1, "step": step,
             "train_loss": float(loss_sum) / max(steps_in_epoch, 1),
             "learning_rate": float(schedule(step // accumulate - 1)),
             "images_per_sec": epoch_images / epoch_time}
      row["input_images_per_sec"], row["data_wait"] = feed.rates(epoch_time)
      last = epoch + 1 == config.num_epochs
      if last or (epoch + 1) % config.get("eval_every_epochs", 1) == 0:
        row.update(_evaluations(parallel, state, source, eval_batch_size, eval_rows, threads))
      history.append(row)
      if primary:
        with open(metrics_path, "a") as f:
          f.write(json.dumps(row) + "\n")
      if writer is not None:
        for k, v in row.items():
          if k not in ("epoch", "step"):
            writer.add_scalar(k, v, step)
        writer.flush()
      if last or (epoch + 1) % config.get("log_every_epochs", 1) == 0:
        progress.close()
        log(_format_row(name, row))
      if last or step % ckpt_every == 0:
        save(step)
    if last_saved != step:
      save(step)
  finally:
    inputs.close()
  ckpt.wait()
  ckpt.close()
  final = history[-1] if history else {}
  return {
      "method": name,
      "accuracy": final.get("test_accuracy", math.nan),
      "nll": final.get("test_nll", math.nan),
      "ece": final.get("test_ece", math.nan),
      **{f"ema_{k}": final[f"test_ema_{k}"] for k in ("accuracy", "nll", "ece")
         if f"test_ema_{k}" in final},
      "train_loss": final.get("train_loss", math.nan),
      "epochs": config.num_epochs,
      "steps": step,
      "images_per_sec": images_seen / max(time.perf_counter() - run_start, 1e-9),
      "seconds": time.perf_counter() - run_start,
      "history": history,
      "state": parallel.get_state(state),
  }


def _evaluations(parallel: DataParallel, state, source: Source, batch_size: int,
                 rows: slice, threads: int) -> dict[str, float]:
  """An epoch row's evaluations: ``test_*``; ``test_ema_*`` of the EMA when the state
  keeps one; ``train_flipped_accuracy`` with label noise (the fraction of the flipped
  training examples predicted as their wrong label: how much of the noise is memorised)."""
  row = {f"test_{k}": v for k, v in
         evaluate(parallel, state, source.test, batch_size, rows, threads).items()}
  if state.ema is not None:
    row.update({f"test_ema_{k}": v for k, v in evaluate(
        parallel, state.ema_view(), source.test, batch_size, rows, threads).items()})
  if source.train_flipped is not None:
    row["train_flipped_accuracy"] = evaluate(
        parallel, state, source.train_flipped, batch_size, rows, threads)["accuracy"]
  return row


def evaluate(parallel: DataParallel, state, split: Split, batch_size: int,
             rows: slice = slice(None), threads: int = 1) -> dict[str, float]:
  """Accuracy, NLL and ECE over every example of ``split`` exactly once.

  ``rows``: this process's part of every global batch of ``batch_size``; the
  sums are over every process's examples, so all processes get the same metrics.
  ``threads``: threads decoding the batches ahead (:func:`mixjax.data.pipeline.iterate`).
  """
  sums = None
  for batch in iterate(eval_dataset(split, batch_size, rows), threads=threads):
    out = parallel.eval_step(state, batch)
    sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
  return summarize(jax.tree.map(np.asarray, sums))


def _format_row(name: str, row: dict) -> str:
  parts = [f"[{name}] epoch {row['epoch']:>3}", f"loss {row['train_loss']:.4f}"]
  if "test_accuracy" in row:
    parts += [f"test acc {row['test_accuracy']:.4f}", f"nll {row['test_nll']:.4f}",
              f"ece {row['test_ece']:.4f}"]
  parts.append(f"{row['images_per_sec']:,.0f} img/s")
  return " | ".join(parts)


def compare(
    config: ml_collections.ConfigDict,
    workdir: str,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict]:
  """Trains every method in ``config.methods`` (each in ``workdir/<method>``).

  Every method is checked before the first one trains: its name, the fields the
  config sets for it (:func:`~mixjax.training.mixer_from_config`), and its draw
  traced on the dataset's image shape.
  """
  mixers = {name: mixer_from_config(config, name) for name in config.methods}
  # Opened once for every method (an image folder is scanned, in-memory data read).
  source = _open_source(config)
  for name, mixer in mixers.items():
    check_mixer(mixer, manifold=name in MANIFOLD_METHODS)
    check_draw(mixer, source.image_shape)
  return [train_and_evaluate(config, os.path.join(workdir, name), name, resume, log, source)
          for name in config.methods]


def format_table(results: list[dict]) -> str:
  """A plain-text table of final metrics, one row per method."""
  header = ("method", "test acc", "test NLL", "test ECE", "train loss", "img/s", "time")
  rows = [(r["method"], f"{r['accuracy']:.4f}", f"{r['nll']:.4f}", f"{r['ece']:.4f}",
           f"{r['train_loss']:.4f}", f"{r['images_per_sec']:,.0f}", f"{r['seconds']:.1f}s")
          for r in results]
  widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
  line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))
  sep = "  ".join("-" * w for w in widths)
  return "\n".join([line(header), sep] + [line(r) for r in rows])
