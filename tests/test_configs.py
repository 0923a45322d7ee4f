"""Every recipe config loads, names a known model and method, and fits 4 devices."""

import importlib

import pytest

from mixjax.models import list_models
from mixjax.training import METHODS, method_from_config

RECIPES = ["cifar_erm", "cifar_mixup", "cifar_manifold_mixup", "cifar_cutmix"]


@pytest.mark.parametrize("name", RECIPES)
@pytest.mark.parametrize("arg", [None, "cifar10,preact_resnet18", "cifar100,wide_resnet28_10"])
def test_recipe_configs(name, arg):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  assert config.model in list_models()
  assert config.dataset in ("cifar10", "cifar100")
  for method in config.methods:
    assert method in METHODS
    method_from_config(config, method).validate()
  assert config.batch_size % 4 == 0 and config.eval_batch_size % 4 == 0
  if arg:
    assert (config.dataset, config.model) == tuple(arg.split(","))


def test_recipes_use_each_papers_hyper_parameters():
  get = lambda name: importlib.import_module(f"configs.{name}").get_config()
  assert method_from_config(get("cifar_mixup"), "mixup").alpha == 1.0
  manifold = method_from_config(get("cifar_manifold_mixup"), "manifold_mixup")
  assert (manifold.alpha, manifold.layers) == (2.0, (0, 1, 2))
  cutmix = method_from_config(get("cifar_cutmix"), "cutmix")
  assert (cutmix.alpha, cutmix.prob) == (1.0, 0.5)
  base = get("cifar_erm")
  assert (base.learning_rate, base.weight_decay, base.batch_size, base.num_epochs) == (
      0.1, 1e-4, 128, 200)


def test_recipe_rejects_other_datasets():
  with pytest.raises(ValueError, match="cifar10 or cifar100"):
    importlib.import_module("configs.cifar_mixup").get_config("mnist,preact_resnet18")


def test_digits_config_compares_four_methods():
  config = importlib.import_module("configs.digits").get_config()
  assert config.dataset == "digits"
  assert tuple(config.methods) == ("erm", "mixup", "manifold_mixup", "cutmix")
