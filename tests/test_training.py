"""The train step, its device mapping, checkpoints and the loop (digits, CPU)."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import digits
from mixjax import training
from mixjax.data import train_batches
from mixjax.models import get_model
from tests.digits_training import digits_setup, method_step, parallel_setup
from tests.tolerances import STEP_ULPS, assert_trees_close_in_ulps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**overrides):
  c = digits.get_config()
  c.tensorboard = False
  c.num_epochs = 2
  c.log_every_epochs = 100
  for k, v in overrides.items():
    setattr(c, k, v)
  return c


@pytest.mark.parametrize("method", ["manifold_mixup"])  # Mixes hidden states: every collective.
def test_shard_map_and_pmap_give_the_same_result(method):
  assert jax.local_device_count() == 4
  params = {}
  for backend in training.BACKENDS:
    # XLA's default compiler options for both backends (pmap takes no others). The MLP:
    # the backends' collectives are the same for any model, and it compiles in a fraction
    # of the CNN's time (BatchNorm over devices: test_device_count, shard_map).
    _, state, parallel, batches = parallel_setup(method, backend, compiler_options={},
                                                 model="mlp")
    state = parallel.put_state(state)
    for i, batch in enumerate(batches):
      state, metrics = parallel.train_step(state, batch, jax.random.key(i))
    params[backend] = jax.device_get(parallel.get_state(state).params)
    assert np.isfinite(float(metrics["loss"]))
  assert_trees_close_in_ulps(params["shard_map"], params["pmap"], STEP_ULPS)


def test_pmap_is_refused_with_several_processes(monkeypatch):
  """jax.pmap maps over one process's devices: with 2 processes the trainer refuses it
  (before any step compiles) and names shard_map."""
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  with pytest.raises(ValueError, match="with 2 processes use backend='shard_map'"):
    training.DataParallel(lambda *a: a, lambda *a: a, backend="pmap")


def test_manifold_step_compiles_once_for_every_layer():
  ds, model, state, augment = digits_setup()
  mixer = training.mixer_from_config(digits.get_config(), "manifold_mixup")
  traces = []
  step = training.make_train_step(model, mixer, ds.num_classes, augment, manifold=True)

  def counted(state, batch, key):
    traces.append(1)
    return step(state, batch, key)

  parallel = training.DataParallel(counted, training.make_eval_step(model, augment),
                                   devices=jax.local_devices()[:1])
  state = parallel.put_state(state)
  batch = next(train_batches(ds.train_images, ds.train_labels, 32, 0, 0))
  layers = set()
  for i in range(12):
    key = jax.random.fold_in(jax.random.key(0), i)
    plan_key = jax.random.split(key, 3)[1]  # The step's mix key (batch mode).
    plan = training.draw_plan(plan_key, 32, (8, 8), mixer, tuple(model.mix_layers))
    layers.add(int(plan.layer))
    state, _ = parallel.train_step(state, batch, key)
  assert len(layers) > 1, "the keys should draw several layers"
  assert len(traces) == 1


def test_digits_learns_and_loss_decreases(tmp_path):
  result = training.train_and_evaluate(
      _config(num_epochs=8, eval_every_epochs=100), str(tmp_path), "mixup")
  history = result["history"]
  assert history[-1]["train_loss"] < history[0]["train_loss"]
  # Measured (jax 0.10.2, 2-core CPU): Mixup reaches 0.964 test accuracy and a
  # train loss of 0.93 after 8 epochs (ERM: 0.958). A Mixup that mixed the images
  # but forgot to mix the labels reached 0.839 and 1.56: both bounds catch it.
  assert result["accuracy"] > 0.93
  assert history[-1]["train_loss"] < 1.2
  assert len(history) == 8 and "test_accuracy" in history[-1]
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == 8


def test_softmax_bce_loss_trains_and_decreases(tmp_path):
  """config.loss = "softmax_bce" reaches the step: its loss starts near the BCE of a
  uniform softmax, (ln K + (K − 1)·ln(K/(K − 1)))/K = 0.325 for K = 10 (CE: ln 10 = 2.3)."""
  result = training.train_and_evaluate(
      _config(num_epochs=4, eval_every_epochs=100, loss="softmax_bce"), str(tmp_path),
      "manifold_mixup")
  history = result["history"]
  assert history[0]["train_loss"] < 0.4
  assert history[-1]["train_loss"] < history[0]["train_loss"]
  assert result["accuracy"] > 0.5


@pytest.fixture(scope="module")
def erm_run(tmp_path_factory):
  """One epoch of ERM with the digits config as it is (BatchNorm "sync" by default) and
  evaluation in batches of 64; several tests read it."""
  workdir = str(tmp_path_factory.mktemp("erm"))
  return workdir, training.train_and_evaluate(
      _config(num_epochs=1, eval_batch_size=64), workdir, "erm")


def test_eval_covers_every_test_example_once(erm_run):
  _, result = erm_run
  # 360 test examples in batches of 64: 6 batches, the last one padded and masked.
  assert result["history"][-1]["test_count"] == 360


@pytest.mark.parametrize("field, value, match", [
    ("dataset", "no_such_dataset", "no_such_dataset"),
    ("model", "resnet9000", "resnet9000"),
    ("batch_size", 30, "divisible by the number of devices"),
    ("eval_batch_size", 90, "divisible by the number of devices"),
    ("loss", "mse", r"unknown loss 'mse'; known losses: \['ce', 'sigmoid_bce', 'softmax_bce'\]"),
    ("batch_norm", "global", r"batch_norm must be one of \('sync', 'per_device'\)"),
    ("model_kwargs", {"final_norm": True},
     r"model 'small_cnn' does not take the options \['final_norm'\]"),
    ("nan_check_every", 0, r"nan_check_every must be an int >= 1 .*, got 0"),
])
def test_bad_config_raises(tmp_path, field, value, match):
  with pytest.raises(ValueError, match=match):
    training.train_and_evaluate(_config(**{field: value}), str(tmp_path), "erm")


def test_unknown_method_raises(tmp_path):
  with pytest.raises(ValueError, match="method must be one of"):
    training.train_and_evaluate(_config(), str(tmp_path), "mixdown")


def test_missing_tfds_data_says_how_to_prepare_it(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  config = _config(dataset="cifar10", data_dir=str(tmp_path / "empty"))
  with pytest.raises((ValueError, FileNotFoundError), match="download_and_prepare|tfds build"):
    training.train_and_evaluate(config, str(tmp_path / "run"), "erm")


def test_existing_checkpoints_are_not_overwritten(erm_run):
  workdir, _ = erm_run
  before = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  with pytest.raises(FileExistsError, match="--resume"):
    training.train_and_evaluate(_config(num_epochs=1), workdir, "erm")
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == before


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  config = _config(num_epochs=3, learning_rate=1e12, schedule="constant",
                   checkpoint_every_steps=1)
  with pytest.raises(training.NonFiniteLossError, match="last good checkpoint") as error:
    training.train_and_evaluate(config, str(tmp_path), "erm")
  ckpt_dir = tmp_path / "checkpoints"
  steps = sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit())
  assert steps, "at least one good step was saved before the blow-up"
  # Every checkpoint precedes the first bad step, and the check before each save
  # stopped the run at that step.
  assert steps[-1] < error.value.step == error.value.stopped_at
  assert f"at step {error.value.step} (epoch 1)" in str(error.value)
  state = ocp.StandardCheckpointer().restore(ckpt_dir / str(steps[-1]) / "state")
  for leaf in jax.tree.leaves(state["params"]):
    assert np.all(np.isfinite(leaf))


def test_nan_loss_stops_within_two_check_intervals(tmp_path, monkeypatch):
  """A NaN loss injected from step 5 on (of 22 per epoch, no checkpoint before the end)
  stops the run within 2·nan_check_every steps of it, long before the epoch ends,
  and the error names step 5, although the flags are read only every 3 steps."""
  every, bad, calls = 3, 5, []

  class Injecting(training.DataParallel):
    def train_step(self, state, batch, key):
      state, metrics = super().train_step(state, batch, key)
      calls.append(key)
      if len(calls) >= bad:
        metrics = dict(metrics, loss=metrics["loss"] * jnp.nan)
      return state, metrics

  monkeypatch.setattr("mixjax.training.loop.DataParallel", Injecting)
  config = _config(num_epochs=2, nan_check_every=every, checkpoint_every_steps=10 ** 6)
  with pytest.raises(training.NonFiniteLossError, match=(
      r"NaN/Inf at step 5 \(epoch 1\); noticed after step 9 .*nan_check_every = 3 .*"
      "no checkpoint was written")) as error:
    training.train_and_evaluate(config, str(tmp_path), "erm")
  assert (error.value.step, error.value.stopped_at) == (bad, len(calls))
  assert len(calls) - bad < 2 * every
  assert not (tmp_path / "checkpoints").exists() or not any(
      p.name.isdigit() for p in (tmp_path / "checkpoints").iterdir())


def _final_params(workdir):
  ckpt_dir = os.path.join(workdir, "checkpoints")
  step = max(int(p) for p in os.listdir(ckpt_dir) if p.isdigit())
  state = ocp.StandardCheckpointer().restore(os.path.join(ckpt_dir, str(step), "state"))
  return step, state


SIGKILL_EPOCHS = 2  # Killed once a checkpoint at step >= 10 is complete: mid-epoch 1 or 2.


def _train_cmd(workdir, *extra):
  return [sys.executable, os.path.join(ROOT, "train.py"), "--config=configs/digits.py",
          f"--workdir={workdir}", "--config.methods=('manifold_mixup',)",
          f"--config.num_epochs={SIGKILL_EPOCHS}", "--config.checkpoint_every_steps=10",
          "--config.tensorboard=False", *extra]


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
  full = tmp_path / "full"
  subprocess.run(_train_cmd(full), cwd=ROOT, env=env, check=True, capture_output=True)

  killed = tmp_path / "killed"
  proc = subprocess.Popen(_train_cmd(killed), cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  ckpt_dir = killed / "manifold_mixup" / "checkpoints"
  deadline = time.time() + 120
  while time.time() < deadline:
    done = [p for p in (ckpt_dir.iterdir() if ckpt_dir.exists() else []) if p.name.isdigit()]
    if any(int(p.name) >= 10 for p in done):
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = max(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit())
  assert killed_at < SIGKILL_EPOCHS * 22, "the run must be killed before it finished"
  subprocess.run(_train_cmd(killed, "--resume"), cwd=ROOT, env=env, check=True,
                 capture_output=True)

  step_a, a = _final_params(full / "manifold_mixup")
  step_b, b = _final_params(killed / "manifold_mixup")
  assert step_a == step_b == SIGKILL_EPOCHS * 22
  jax.tree.map(np.testing.assert_array_equal, a, b)
  # The metrics log is whole and equal too (throughput aside).
  rows = lambda run: [{k: v for k, v in json.loads(line).items()
                       if k not in training.TIMING_FIELDS}
                      for line in (run / "manifold_mixup" / "metrics.jsonl").open()]
  assert len(rows(full)) == SIGKILL_EPOCHS
  assert rows(killed) == rows(full)


def test_ece_from_bins_is_exact():
  logits = jnp.log(jnp.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]]))
  labels = jnp.array([0, 1, 1, 0])
  mask = jnp.array([True, True, True, False])
  sums = training.eval_sums(logits, labels, mask, num_bins=10)
  metrics = training.summarize(jax.tree.map(np.asarray, sums))
  # Confidences 0.9 (right), 0.6 (wrong), 0.7 (right); each alone in its bin.
  assert metrics["accuracy"] == pytest.approx(2 / 3)
  assert metrics["ece"] == pytest.approx((0.1 + 0.6 + 0.3) / 3, abs=1e-6)
  assert metrics["nll"] == pytest.approx(-(np.log(0.9) + np.log(0.4) + np.log(0.7)) / 3, 1e-5)


def test_per_device_batch_norm_steps_differ_between_one_and_four_devices():
  """The negative control of test_device_count's epoch test (BatchNorm over the global
  batch: 1 and 4 devices take the same steps to STEP_ULPS): ERM with crops and flips,
  4 shards of 8 against one batch of 32, with per-device BatchNorm statistics, part by
  more than STEP_ULPS, so that comparison can fail."""
  ds, model, state, _ = digits_setup(get_model("small_cnn", 10, axis_name=None))
  augment = training.Augment(1, True, tuple(ds.mean), tuple(ds.std))
  batches = list(train_batches(ds.train_images, ds.train_labels, 32, 0, 0))[:3]
  results = []
  for n in (1, 4):
    parallel = training.DataParallel(
        training.make_train_step(model, None, ds.num_classes, augment),
        training.make_eval_step(model, augment), devices=jax.local_devices()[:n])
    new_state = parallel.put_state(state)
    for i, batch in enumerate(batches):
      new_state, _ = parallel.train_step(new_state, batch, jax.random.key(i))
    new_state = parallel.get_state(new_state)
    results.append(jax.device_get((new_state.params, new_state.batch_stats)))
  with pytest.raises(AssertionError):
    assert_trees_close_in_ulps(*results, STEP_ULPS)


# The two with trainer-specific paths: GridMix's holes must fit 8×8, SaliencyMix reads
# the global batch's images. (Every method's mix in the train step is pinned bit for bit
# in test_device_count.py, and a newly registered mixer trains in test_methods.py.)
@pytest.mark.parametrize("method", ["gridmix", "saliencymix"])
def test_mask_methods_train_on_digits_from_config_methods(tmp_path, method, monkeypatch):
  """The method trains from ``config.methods`` with the digits config (its paper's
  defaults, GridMix with the 2 holes that fit 8×8): one epoch, finite loss. The dataset
  is opened once (an image folder's scan is not repeated per method)."""
  from mixjax.training import loop
  opened = []
  monkeypatch.setattr(loop, "open_source", lambda *a, _open=loop.open_source, **k:
                      opened.append(a) or _open(*a, **k))
  config = _config(methods=(method,), num_epochs=1, eval_every_epochs=100)
  (result,) = training.compare(config, str(tmp_path), log=lambda line: None)
  assert len(opened) == 1
  assert result["method"] == method and result["epochs"] == 1
  assert np.isfinite(result["train_loss"]) and result["accuracy"] > 0.3
  assert (tmp_path / method / "metrics.jsonl").exists()


def test_gridmix_defaults_do_not_fit_digits_and_say_so(tmp_path):
  config = _config(methods=("erm", "gridmix"), num_epochs=1)
  config.mixers.gridmix.n_holes = None  # GridMix's CIFAR default, 2-6 holes.
  with pytest.raises(ValueError, match=r"so n_holes <= 2, got \(2, 6\)"):
    training.compare(config, str(tmp_path), log=lambda line: None)
  assert not (tmp_path / "erm").exists(), "checked before the first method trains"


def test_compare_checks_every_method_before_training(tmp_path):
  config = _config(methods=("erm", "mixdown"))
  with pytest.raises(ValueError, match="mixdown"):
    training.compare(config, str(tmp_path))
  assert not (tmp_path / "erm").exists(), "nothing trains when a later method is bad"


@pytest.mark.parametrize("overrides, says", [
    (["--config.model=resnet9000"], ["resnet9000"]),
    # An override a method cannot take is an error naming both, before anything trains.
    (["--config.methods=('erm','resizemix')", "--config.alpha=0.5"],
     ["config.alpha=0.5", "resizemix takes no 'alpha'"]),
])
def test_train_py_reports_bad_input_and_exits_nonzero(tmp_path, overrides, says):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "train.py"), "--config=configs/digits.py",
       f"--workdir={tmp_path}", *overrides],
      cwd=ROOT, capture_output=True, text=True)
  assert result.returncode == 1
  assert "error:" in result.stderr and all(s in result.stderr for s in says), result.stderr
  assert not (tmp_path / "erm").exists()


def test_train_py_refuses_model_options_the_config_does_not_declare(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "train.py"), "--config=configs/digits.py",
       f"--workdir={tmp_path}", "--config.model_kwargs.axis_name=data"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert "error: --config.model_kwargs.axis_name: the config has no field 'axis_name'" in (
      result.stderr)
  assert "--config.batch_norm=sync|per_device" in result.stderr and "Traceback" not in (
      result.stderr)


def test_trainer_synchronises_batch_norm_by_default(erm_run, tmp_path):
  # "sync" is the default: erm_run leaves the config as it is.
  _, result = erm_run
  assert result["state"].apply_fn.__self__.axis_name == "data"
  result = training.train_and_evaluate(
      _config(num_epochs=1, batch_norm="per_device"), str(tmp_path), "erm")
  assert result["state"].apply_fn.__self__.axis_name is None


def test_model_kwargs_axis_name_is_refused(tmp_path):
  config = _config()
  with config.unlocked():
    config.model_kwargs.axis_name = "data"
  with pytest.raises(ValueError, match="model_kwargs.axis_name is set by the trainer"):
    training.train_and_evaluate(config, str(tmp_path), "erm")


def test_dropout_models_train():
  """A WRN with dropout gets its 'dropout' RNG from the step key.

  An "rbg" step key, as in test_models: threefry's unrolled hashes for the dropout
  masks take most of the compile time otherwise; the step derives the dropout key from
  its key either way.
  """
  from mixjax.models import WideResNet

  ds, model, state, augment = digits_setup(
      WideResNet(depth=10, widen_factor=1, dropout_rate=0.3, num_classes=10))
  parallel = training.DataParallel(
      method_step(model, "erm", ds, augment),
      training.make_eval_step(model, augment), devices=jax.local_devices()[:1])
  batch = next(train_batches(ds.train_images, ds.train_labels, 16, 0, 0))
  _, metrics = parallel.train_step(parallel.put_state(state), batch,
                                   jax.random.key(1, impl="rbg"))
  assert np.isfinite(float(metrics["loss"]))
