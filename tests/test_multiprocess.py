"""train.py on several processes joined by jax.distributed (127.0.0.1, gloo).

Every run here is real: separate Python processes, each with its own forced CPU
devices, on a free loopback port. Device splits are compared with one process
that also joined through ``jax.distributed`` (``--num_processes=1``), so both
sides reduce with the same (gloo) collectives: then N processes × M devices are
bit-for-bit 1 process × N·M devices. Against XLA:CPU's in-process collectives
(no ``jax.distributed``) the all-reduce sums in another order: ≤ 7 ulps apart
after a step, as ``test_training`` allows between device counts.

The training runs read an image folder made on the fly: each process decodes and crops
only its rows of every global batch, and the runs still match bit for bit.
"""

import json
import os
import shutil
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mixjax.training import TIMING_FIELDS
from tests.image_folders import make_folder
from tests.processes import Run, free_port

# The training runs read an image folder (tests/image_folders.py: 384 JPEGs and PNGs of
# varied sizes in 3 class folders); the refusals below are set up on digits.
DIGITS = ["--config=configs/digits.py", "--config.tensorboard=False",
          "--config.log_every_epochs=1"]
FOLDER = [*DIGITS, "--config.dataset=imagefolder", "--config.image_size=12",
          "--config.batch_size=32", "--config.eval_batch_size=24"]
# Mixes hidden states across the global batch (its partners come over gloo from the other
# process); every method's mix is pinned bit for bit across device counts in
# test_device_count.py, in one process.
METHODS = ("manifold_mixup",)
EPOCHS = 3
STEPS_PER_EPOCH = 12  # 384 training images in global batches of 32.


def _args(workdir, *extra, base=DIGITS):
  return [*base, f"--workdir={workdir}", *extra]


def _rows(workdir, method):
  """metrics.jsonl without the timings."""
  with open(os.path.join(workdir, method, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rows]


def _final_state(workdir, method):
  """The newest checkpoint's state as saved (nested dicts of numpy arrays)."""
  manager = ocp.CheckpointManager(os.path.join(workdir, method, "checkpoints"),
                                  item_names=("state", "meta"))
  restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
      state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
  manager.close()
  return restored["state"]


def _ok(results):
  for r in results:
    assert r.returncode == 0, r.stderr[-3000:]
  return results


def _complete_checkpoints(directory):
  """The step folders orbax finalised (it renames a step's folder to the bare step number
  when the save is complete)."""
  if not os.path.isdir(directory):
    return []
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """On an image folder, 1 × 4 for three epochs, uninterrupted; beside it 2 × 2 (two
  decode threads per process; resumed with one), one of whose processes is
  SIGKILLed once an epoch is logged and checkpointed; the killed run then resumed from
  its last complete checkpoint twice: as 2 × 2 ("two") and as 1 × 4 ("resumed").

  Both resumed runs must end where the uninterrupted one does, bit for bit: so 2 × 2
  trains as 1 × 4, a kill loses nothing that was checkpointed, and a run saved by 2
  processes continues in 1.
  """
  root = tmp_path_factory.mktemp("multiprocess")
  data_dir = make_folder(root / "data", train_per_class=128, val_per_class=8)
  methods = f"--config.methods={METHODS!r}"
  dirs = {name: str(root / name) for name in ("one", "two", "resumed")}
  args = {name: _args(dirs[name], methods, f"--config.num_epochs={EPOCHS}",
                      f"--config.data_dir={data_dir}", base=FOLDER)
          for name in dirs}
  one = Run(args["one"], 1, 4)
  # Two decode threads per process here, one in the 1-process run: the same batches.
  two = Run([*args["two"], "--config.data_threads=2"], 2, 2, heartbeat_timeout=5)
  [method] = METHODS
  metrics = os.path.join(dirs["two"], method, "metrics.jsonl")
  checkpoints = os.path.join(dirs["two"], method, "checkpoints")
  try:
    # A kill during the save of the first checkpoint would leave nothing to resume from.
    while not (os.path.exists(metrics) and open(metrics).read().count("\n") >= 1
               and _complete_checkpoints(checkpoints)):
      assert time.monotonic() - two.started < 240, "no epoch finished"
      assert two.procs[0].poll() is None, two.procs[0].communicate()
      time.sleep(0.1)
    two.kill(1)
    killed = time.monotonic()
    _, stderr = two.procs[0].communicate(timeout=150)
    kill = {"returncode": two.procs[0].returncode, "stderr": stderr,
            "waited": time.monotonic() - killed,
            "checkpoints": _complete_checkpoints(checkpoints)}
  except BaseException:
    one.close()
    raise
  finally:
    two.close()
  out = {"one": _ok(one.wait(300))}
  shutil.copytree(dirs["two"], dirs["resumed"])
  two = Run([*args["two"], "--resume"], 2, 2)
  resumed = Run([*args["resumed"], "--resume"], 1, 4)
  finished = two.wait(300), resumed.wait(300)
  out["two"], out["resumed"] = _ok(finished[0]), _ok(finished[1])
  return dirs, out, kill


def test_a_killed_process_ends_the_other_in_bounded_time(runs):
  _, _, kill = runs
  assert kill["returncode"] != 0, "the survivor must fail, not finish"
  assert kill["waited"] < 120, f"the survivor took {kill['waited']:.0f} s to stop"
  assert "another task died" in kill["stderr"] or "unhealthy" in kill["stderr"], (
      kill["stderr"][-3000:])
  assert kill["checkpoints"] and kill["checkpoints"][-1] < EPOCHS * STEPS_PER_EPOCH


@pytest.mark.parametrize("method", METHODS)
def test_two_processes_of_two_devices_are_one_process_of_four(runs, method):
  """2 × 2, killed after an epoch and resumed as 2 × 2, ends bit for bit where 1 × 4
  ends without interruption."""
  dirs, out, kill = runs
  assert f"[{method}] resumed from step {kill['checkpoints'][-1]}" in out["two"][0].stdout
  assert _rows(dirs["two"], method) == _rows(dirs["one"], method)
  assert len(_rows(dirs["one"], method)) == EPOCHS
  a, b = _final_state(dirs["one"], method), _final_state(dirs["two"], method)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert int(a["step"]) == EPOCHS * STEPS_PER_EPOCH
  # Each process saved its Grain position; process 0 logged the input's rate per epoch.
  saved = os.path.join(dirs["two"], method, "checkpoints", str(int(a["step"])), "input")
  assert sorted(f for f in os.listdir(saved) if f.endswith(".json")) == [
      "process_0-of-2.json", "process_1-of-2.json"]
  with open(os.path.join(dirs["two"], method, "metrics.jsonl")) as f:
    for row in map(json.loads, f):
      assert row["input_images_per_sec"] > 0 and 0 <= row["data_wait"] <= 1, row


def test_only_process_zero_reports(runs):
  dirs, out, _ = runs
  first, second = out["two"]
  assert f"[manifold_mixup] epoch   {EPOCHS}" in first.stdout and "method" in first.stdout
  assert "in 2 processes" in first.stdout
  # gloo's own connection lines aside (C++ prints them from several threads, so two can
  # share a line and leave their newlines on an empty one), process 1 says nothing.
  quiet = [line for line in second.stdout.splitlines()
           if line.strip() and not line.startswith("[Gloo]")]
  assert quiet == [], second.stdout
  summary = json.load(open(os.path.join(dirs["two"], "summary.json")))
  assert [r["method"] for r in summary] == list(METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_resume_with_another_process_count_continues_exactly(runs, method):
  """Saved by 2 processes × 2 devices, resumed by 1 × 4: the same global devices."""
  dirs, out, kill = runs
  assert f"[{method}] resumed from step {kill['checkpoints'][-1]}" in out["resumed"][0].stdout
  assert _rows(dirs["resumed"], method) == _rows(dirs["one"], method)
  jax.tree.map(np.testing.assert_array_equal, _final_state(dirs["resumed"], method),
               _final_state(dirs["one"], method))


def test_process_id_out_of_range_is_refused_before_joining(tmp_path):
  [result] = Run(_args(tmp_path), 2, 1, process_ids=[2]).wait(60)
  assert result.returncode == 1
  assert "--process_id must be in [0, 2)" in result.stderr


def test_a_missing_coordinator_is_an_error_in_bounded_time(tmp_path):
  # Process 1 alone: nobody serves the coordinator's port.
  [result] = Run(_args(tmp_path), 2, 1, process_ids=[1], initialization_timeout=5).wait(90)
  assert result.returncode == 1
  assert "no coordinator answered at 127.0.0.1:" in result.stderr
  assert result.seconds < 60


# Config errors are refused before anything trains, on every process alike: a workdir that is
# not shared below; pmap with several processes (test_training, in one process with a
# patched process count) and a batch the devices do not divide (test_bad_config_raises).
def test_a_workdir_that_is_not_shared_is_detected(tmp_path):
  port = free_port()
  runs = [Run(_args(tmp_path / f"host{i}", "--config.methods=('erm',)"), 2, 2, port=port,
              process_ids=[i]) for i in (0, 1)]
  results = [r.wait(180)[0] for r in runs]
  for r in results:
    assert r.returncode == 1, r.stderr[-2000:]
    assert "is not shared by every process: processes [1]" in r.stderr

