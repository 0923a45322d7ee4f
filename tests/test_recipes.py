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
    setattr(c, k, v)
  return training.train_and_evaluate(c, str(workdir))


def _finite(tree):
  return all(np.isfinite(np.asarray(x, np.float32)).all() for x in jax.tree.leaves(tree))


def test_the_cutmix_recipe_trains_resnet50_for_an_epoch(folder, tmp_path):
  result = _run("imagenet_cutmix", folder, tmp_path)
  assert result["steps"] == 18 // 16
  assert np.isfinite(result["train_loss"]) and 0 <= result["accuracy"] <= 1
  assert _finite(result["state"].params)
  assert result["state"].ema is None and "ema_accuracy" not in result


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
  assert result["state"].params["pos_embed"].dtype == np.float32
