"""The XLA options the mapped steps are compiled with (CPU: convolutions off YNNPACK)."""

import functools
import os
import types

import jax
import numpy as np
import pytest

from configs import digits
from mixjax import training
from mixjax.data import load_dataset, train_batches
from mixjax.models import get_model
from mixjax.training import compiler_options
from tests.digits_training import method_step
from tests.tolerances import STEP_ULPS, assert_close_in_ulps, assert_trees_close_in_ulps

# The options apply only on a measured jaxlib and when XLA_FLAGS leaves them alone
# (XLA parsed XLA_FLAGS at start-up, so a test cannot unset it).
applies = pytest.mark.skipif(
    not compiler_options.measured_jaxlib()
    or compiler_options.YNN_FUSION_TYPE in os.environ.get("XLA_FLAGS", ""),
    reason="mixjax's CPU compiler options do not apply on this jaxlib / with these XLA_FLAGS")


@functools.cache
def _digits(model_name: str, abstract: bool):
  """Digits, ``model_name``'s model, augmentation, 3 batches of 32 and a fresh state.

  What ``tests.digits_training.parallel_setup`` builds, made once per module (use
  :func:`_fresh` before ``put_state``). ``abstract``: the state's shapes and dtypes
  only (``jax.eval_shape``), for tests that compile but never run a step.
  """
  ds = load_dataset("digits")
  model = get_model(model_name, ds.num_classes)
  init = functools.partial(training.create_train_state, model, jax.random.key(0),
                           ds.image_shape, training.make_optimizer(0.05))
  state = jax.eval_shape(init) if abstract else init()
  augment = training.Augment(1, False, tuple(ds.mean), tuple(ds.std))
  batches = list(train_batches(ds.train_images, ds.train_labels, 32, 0, 0))[:3]
  return ds, model, augment, state, batches


def _parallel_setup(method_name, num_devices, model="small_cnn", compiler_options=None,
                    abstract=False):
  """``(state, DataParallel, batches)`` as ``parallel_setup`` returns them, with the
  module's one state per model (an abstract one with ``abstract``)."""
  ds, model, augment, state, batches = _digits(model, abstract)
  parallel = training.DataParallel(
      method_step(model, method_name, ds, augment),
      training.make_eval_step(model, augment), backend="shard_map",
      devices=jax.local_devices()[:num_devices], compiler_options=compiler_options)
  return state, parallel, batches


def _entry_ops(compiled):
  """Convolutions run as XLA ops (not inside a YNNPACK fusion), and YNNPACK fusions."""
  hlo = compiled.as_text()
  entry = hlo[hlo.index("\nENTRY"):]
  return entry.count(" convolution("), entry.count("ynn_fusion")


def _compiled_step(parallel, state, batch, which):
  """The ``which`` ("train" or "eval") step compiled for ``state``'s shapes, placed as
  ``put_state`` places it (the state's shapes suffice: nothing is initialised or run)."""
  state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(
      a.shape, a.dtype, weak_type=a.weak_type, sharding=parallel._replicated), state)
  if which == "eval":
    batch = parallel.put_batch(dict(batch, mask=np.ones(len(batch["label"]), bool)))
    return parallel._eval.lower(state, batch).compile()
  return parallel._train.lower(state, parallel.put_batch(batch), jax.random.key(0)).compile()


@applies
@pytest.mark.parametrize("model, which, more_convs", [
    # PreAct ResNet-18's forward pass (20 convolutions): XLA's defaults put 13 of them
    # into YNNPACK fusions (measured, jax 0.10.2: 7 XLA convolutions and 45 fusions with
    # the defaults, 20 and 5 with the options).
    ("preact_resnet18", "eval", 10),
    # The train step gets the options too (SmallCNN, forward and backward: 0 XLA
    # convolutions and 97 fusions with the defaults, 5 and 72 with the options).
    ("small_cnn", "train", 3),
])
def test_cpu_default_keeps_convolutions_off_ynnpack(model, which, more_convs):
  """With the options a step runs more convolutions as XLA's own (Eigen) ops and fewer
  YNNPACK fusions than with XLA's defaults, which wrap most convolutions in one."""
  ops = {}
  for options in (None, {}):
    state, parallel, batches = _parallel_setup(
        "mixup", num_devices=1, model=model, compiler_options=options, abstract=True)
    ops[options is None] = _entry_ops(_compiled_step(parallel, state, batches[0], which))
  assert parallel.compiler_options == {}
  (convs, ynn), (default_convs, default_ynn) = ops[True], ops[False]
  assert convs >= default_convs + more_convs and 1 <= ynn < default_ynn, ops


def test_cpu_default_is_the_measured_options():
  _, parallel, _ = _parallel_setup("mixup", num_devices=1, abstract=True)
  expected = (dict(training.CPU_COMPILER_OPTIONS) if compiler_options.measured_jaxlib()
              and compiler_options.YNN_FUSION_TYPE not in os.environ.get("XLA_FLAGS", "")
              else {})
  assert parallel.compiler_options == expected


@applies
@pytest.mark.parametrize("num_devices", [4])   # (1 device compiles the same kernels.)
def test_options_change_the_kernels_not_the_result(num_devices):
  """Each step, from the same state, lands on the same parameters and loss with
  either set of options, to reduction order. (Whole runs are compared step by
  step: after a step whose values differ by rounding, a near-tie in a max-pool
  can route a gradient elsewhere and the runs part for good, as any two float
  orders eventually do.)"""
  setups = [_parallel_setup("mixup", num_devices=num_devices, compiler_options=options)
            for options in (None, {})]
  (state, parallel, batches), (_, other, _) = setups
  host = jax.device_get(state)
  for i, batch in enumerate(batches):
    results = []
    for p in (parallel, other):
      # put_state copies from host numpy: the donating step never consumes ``host``.
      new_state, metrics = p.train_step(p.put_state(host), batch, jax.random.key(i))
      results.append((jax.device_get(p.get_state(new_state)), float(metrics["loss"])))
    (state_a, loss_a), (state_b, loss_b) = results
    assert_close_in_ulps(loss_b, loss_a, STEP_ULPS)
    assert_trees_close_in_ulps(state_a.params, state_b.params, STEP_ULPS)
    host = state_a


@applies
def test_xla_flags_setting_the_option_wins(monkeypatch):
  devices = jax.local_devices()[:1]
  assert compiler_options.default_compiler_options(devices)
  monkeypatch.setenv(
      "XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT")
  assert compiler_options.default_compiler_options(devices) == {}


@applies
def test_options_this_jaxlib_rejects_are_dropped(monkeypatch):
  devices = jax.local_devices()[:1]
  assert compiler_options.default_compiler_options(devices)  # The real ones are kept.
  for bad in ({"xla_no_such_option": "1"},
              {compiler_options.YNN_FUSION_TYPE: "LIBRARY_FUSION_TYPE_NO_SUCH"}):
    monkeypatch.setattr(compiler_options, "CPU_COMPILER_OPTIONS", bad)
    assert compiler_options.default_compiler_options(devices) == {}


def test_no_options_off_cpu_or_on_other_jaxlibs(monkeypatch):
  gpu = types.SimpleNamespace(platform="gpu")
  assert compiler_options.default_compiler_options([gpu]) == {}
  assert compiler_options.default_compiler_options([]) == {}
  assert compiler_options.measured_jaxlib("0.10.2")
  assert not compiler_options.measured_jaxlib("0.9.1")
  assert not compiler_options.measured_jaxlib("0.11.0")
  monkeypatch.setattr(compiler_options, "MEASURED_JAXLIB", ())
  assert compiler_options.default_compiler_options(jax.local_devices()[:1]) == {}


def test_pmap_takes_no_options():
  with pytest.raises(ValueError, match="compiler_options need backend='shard_map'"):
    training.DataParallel(lambda s, b, k: (s, {}), lambda s, b: {}, backend="pmap",
                          compiler_options=training.CPU_COMPILER_OPTIONS)
  parallel = training.DataParallel(lambda s, b, k: (s, {}), lambda s, b: {},
                                   backend="pmap")
  assert parallel.compiler_options == {}


@pytest.mark.parametrize("xla_defaults, expected", [(False, None), (True, {})])
def test_config_xla_defaults_reaches_data_parallel(monkeypatch, tmp_path, xla_defaults,
                                                   expected):
  seen = {}

  class Stop(Exception):
    pass

  def capture(*args, **kwargs):
    seen.update(kwargs)
    raise Stop

  monkeypatch.setattr(training.loop, "DataParallel", capture)
  # The trainer builds its state before the DataParallel: its shapes are enough here.
  create = training.loop.create_train_state
  monkeypatch.setattr(training.loop, "create_train_state",
                      lambda *args, **kw: jax.eval_shape(lambda: create(*args, **kw)))
  config = digits.get_config()
  config.xla_defaults = xla_defaults
  with pytest.raises(Stop):
    training.train_and_evaluate(config, str(tmp_path), "erm")
  assert seen["compiler_options"] == expected
