r"""Trains and compares mixing methods from a config.

  python train.py --config=configs/digits.py          # the offline quick run
  python train.py --config=configs/cifar_mixup.py --workdir=runs/c10_mixup
  python train.py --config=configs/cifar_mixup.py --workdir=runs/c10_mixup --resume
  python train.py --config=configs/cifar_cutmix.py:cifar100,wide_resnet28_10 --config.alpha=2
  python train.py --config=configs/digits.py --config.mixers.cutmix.prob=1

Each method in ``config.methods`` trains in ``workdir/<method>`` (checkpoints,
metrics.jsonl, TensorBoard); a table of final test metrics ends the run. A
method's hyper-parameters are its mixer's fields (``config.mixers.<method>``, and
``--config.alpha``/``prob``/``mix_mode``/``pairing`` for every mixing method at
once); a field a method cannot take stops the run before anything trains.

Several hosts (JAX's multi-controller runtime): run the same command on every
host with a workdir they all share, plus

  --distributed                       # Cloud TPU, SLURM, ...: JAX finds the coordinator
  --coordinator_address=HOST:PORT --num_processes=N --process_id=I   # explicitly

Only process 0 prints and writes metrics.jsonl, summary.json and TensorBoard.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file (configs/*.py[:args]).", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Output directory (default: a new runs/<config name>_<time>).")
_RESUME = flags.DEFINE_bool(
    "resume", False, "Continue from the newest checkpoint in the workdir.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False,
    "Join the other processes with jax.distributed.initialize(), which finds the "
    "coordinator itself (Cloud TPU, SLURM, Open MPI, ...).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0's coordinator (with "
    "--num_processes and --process_id).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0..N-1.")
_INIT_TIMEOUT = flags.DEFINE_integer(
    "initialization_timeout", 300, "Seconds to wait for every process to join.")
_HEARTBEAT_TIMEOUT = flags.DEFINE_integer(
    "heartbeat_timeout", 60,
    "Seconds without a heartbeat after which a process counts as dead and the "
    "others stop with an error.")


def _default_workdir(config_path: str) -> str:
  name = os.path.splitext(os.path.basename(config_path.split(":")[0]))[0]
  suffix = config_path.split(":")[1].replace(",", "_") if ":" in config_path else ""
  stamp = time.strftime("%Y%m%d-%H%M%S")
  return os.path.join("runs", name + (f"_{suffix}" if suffix else "") + f"_{stamp}")


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a clear error for an override of a missing field.

  ml_collections raises ``AttributeError`` (with a traceback) when
  ``--config.a.b=v`` names a field the locked config does not have.
  """
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    missing = str(e).strip("\"'")
    bad = [a.split("=")[0] for a in argv[1:]
           if a.startswith("--config.") and a.split("=")[0].split(".")[-1] == missing]
    if not bad:  # Not an override's fault (e.g. a bug in the config file): as it is.
      raise
    print(f"error: {bad[0]}: the config has no field {missing!r}. Only the fields a "
          "config declares can be set; a method's hyper-parameters are the fields of "
          "config.mixers.<method> (its mixer's), model options the fields of "
          "config.model_kwargs (configs/base.py declares both), and BatchNorm's "
          "cross-device axis is --config.batch_norm=sync|per_device.", file=sys.stderr)
    sys.exit(2)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO.
  from mixjax.training import distributed

  multihost = distributed.DistributedConfig(
      auto=_DISTRIBUTED.value, coordinator_address=_COORDINATOR.value,
      num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value,
      initialization_timeout=_INIT_TIMEOUT.value,
      heartbeat_timeout_seconds=_HEARTBEAT_TIMEOUT.value)
  if _RESUME.value and not _WORKDIR.value:
    print("error: --resume needs the --workdir of the run to continue.", file=sys.stderr)
    return 1
  if multihost.enabled and not _WORKDIR.value:
    print("error: several processes need --workdir, a directory they all share.",
          file=sys.stderr)
    return 1
  try:  # Before anything touches a device.
    distributed.initialize(multihost)
  except (ValueError, RuntimeError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  import jax

  from mixjax.training import NonFiniteLossError, compare, format_table

  config = _CONFIG.value
  primary = distributed.is_primary()
  workdir = _WORKDIR.value or _default_workdir(flags.FLAGS["config"].config_filename)
  if primary:
    processes = (f" in {jax.process_count()} processes" if jax.process_count() > 1 else "")
    print(f"mixjax: {config.dataset} / {config.model} / methods {list(config.methods)} on "
          f"{jax.device_count()} {jax.default_backend()} device(s){processes}; "
          f"workdir {workdir}", flush=True)
  try:
    results = compare(config, workdir, resume=_RESUME.value,
                      log=lambda line: print(line, flush=True))
  except (ValueError, ImportError, FileExistsError, FileNotFoundError,
          NonFiniteLossError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  if not primary:
    return 0
  print()
  print(format_table(results))
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump([{k: v for k, v in r.items() if k not in ("history", "state")}
               for r in results], f, indent=2)
  return 0


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main, flags_parser=_parse_flags)
