"""The ImageNet recipes (issue 22) end to end: an epoch of each, as its config file sets it
(model, optimiser, schedule, mixing, EMA, random erasing), on a tiny image folder at 32 px."""

import importlib

import jax
import numpy as np
import pytest

from mixjax import training
from tests.image_folders import make_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return make_folder(tmp_path_factory.mktemp("recipes"), train_per_class=6)


def _run(name, folder, workdir, **overrides):
  c = importlib.import_module(f"configs.{name}").get_config()
  c.data_dir, c.image_size, c.num_epochs = folder, 32, 1
  c.batch_size, c.eval_batch_size = 16, 8
  c.data_threads, c.tensorboard, c.log_every_epochs = 2, False, 100
  for k, v in overrides.items():
    if k == "model_kwargs":
      for option, value in v.items():
        c.model_kwargs[option] = value
    else:
      setattr(c, k, v)
  return training.train_and_evaluate(c, str(workdir))


def _assert_float32(state):
  """Parameters, BatchNorm statistics, optimiser state and EMA: float32 throughout."""
  floats = {x.dtype for x in jax.tree.leaves((state.params, state.batch_stats, state.opt_state,
                                             state.ema))
            if np.issubdtype(x.dtype, np.floating)}
  assert floats == {np.dtype(np.float32)}, floats


def _finite(tree):
  return all(np.isfinite(np.asarray(x, np.float32)).all() for x in jax.tree.leaves(tree))


def test_the_cutmix_recipe_trains_for_an_epoch(folder, tmp_path):
  """With the small CNN in place of its ResNet-50 (``--config.model``), which would add a
  13-s compile to CI: what is under test is the recipe (SGD, its step schedule, CutMix
  with probability 1, the image-folder input); ResNet-50's bottlenecks take a step under
  every method in test_model_methods, and test_resnet pins its layout and count."""
  result = _run("imagenet_cutmix", folder, tmp_path, model="small_cnn", dtype="bfloat16",
                model_kwargs={"init": None})
  assert result["steps"] == 18 // 16
  assert np.isfinite(result["train_loss"]) and 0 <= result["accuracy"] <= 1
  assert _finite(result["state"].params)
  assert result["state"].ema is None and "ema_accuracy" not in result
  _assert_float32(result["state"])  # bfloat16 compute; BatchNorm statistics float32.


def test_the_deit_recipe_trains_vit_s16_for_an_epoch_with_accumulation(folder, tmp_path):
  """DeiT-S with its AdamW, timm mask, schedule, Mixup/CutMix policy, random erasing,
  drop path, bfloat16 and EMA; the global batch of 16 as 2 micro-batches of 8."""
  result = _run("imagenet_deit", folder, tmp_path, grad_accum_steps=2)
  assert result["steps"] == 2
  row = result["history"][-1]
  # DeiT's first epoch trains at warmup_lr (the scheduler's initial rate).
  assert row["learning_rate"] == pytest.approx(1e-6, rel=1e-6)
  assert np.isfinite(result["train_loss"]) and 0 <= result["ema_accuracy"] <= 1
  assert _finite(result["state"].params) and _finite(result["state"].ema)
  _assert_float32(result["state"])  # bfloat16 compute: parameters, Adam, EMA float32.
