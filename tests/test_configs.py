"""Every recipe config loads, names a known model and method, fits 4 devices, and
sets each field to its reference's value (the table below, with citations)."""

import importlib
import os

import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

import mixjax as mx
from configs import base
from mixjax.losses import LOSSES
from mixjax.models import get_model, list_models
from mixjax.training import (
    MANIFOLD_METHODS,
    check_mixer,
    method_names,
    mixer_from_config,
)
from mixjax.training.methods import check_draw
from mixjax.training.state import make_schedule

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = ["cifar_erm", "cifar_mixup", "cifar_manifold_mixup", "cifar_cutmix", "cifar_fmix",
           "cifar_saliencymix", "cifar_resizemix", "cifar_gridmix", "cifar_smoothmix"]
OPENMIXUP = ("cifar_resizemix", "cifar_gridmix", "cifar_smoothmix")
ARGS = [None, "cifar10,preact_resnet18", "cifar10,wide_resnet28_10",
        "cifar100,preact_resnet18", "cifar100,wide_resnet28_10"]

FROM_ARG = "the recipe's argument"  # dataset and model come from ":dataset,model".


class Per(dict):
  """A value that depends on the case: ``{model or dataset name: value}``."""


# Repositories at the commits read (file:line in each citation).
MC = "facebookresearch/mixup-cifar10@eaff31a/"
MM = "vikasverma1077/manifold_mixup@870ef77/supervised/"
CM = "clovaai/CutMix-PyTorch@2d8eb68/"
FM = "ecs-vlc/FMix@e5991dc/"
SM = "afm-shahab-uddin/SaliencyMix@9ee02b8/SaliencyMix_CIFAR/"
OM = "Westlake-AI/openmixup@37e1372/"
OMB = OM + "configs/classification/cifar100/mixups/basic/r18_mixups_CE_none.py:"
OMD = OM + "configs/classification/_base_/datasets/cifar100/sz32_bs100.py:"
OMDOC = OM + "docs/en/mixup_benchmarks/Mixup_cifar.md:"
OMA = OM + "openmixup/models/augments/"



def openmixup_cifar100_r18(method):
  """The fields every OpenMixup recipe shares, ``method``'s mixer fields among them."""
  return {
    f"mixers.{method}.prob": (
        1.0, OM + "openmixup/models/classifiers/mixup_classification.py:300-311"),
    f"mixers.{method}.mode": (
        "batch", OMA + "{resizemix,gridmix,smoothmix}.py (one λ, mask, permutation)"),
    **OPENMIXUP_CIFAR100_R18,
  }


OPENMIXUP_CIFAR100_R18 = {
    "dataset": (FROM_ARG, OMD + "2 (CIFAR-100); " + OMDOC + "54 (CIFAR-10, same settings)"),
    "model": (FROM_ARG, OMB + "25-31 (CIFAR ResNet-18: not in mixjax, ours kept)"),
    "loss": ("ce", OMB + "32-35 (CrossEntropyLoss)"),
    "learning_rate": (0.1, OMB + "46"),
    "momentum": (0.9, OMB + "46"),
    "nesterov": (False, OMB + "46 (SGD without nesterov)"),
    "weight_decay": (1e-4, OMB + "46"),
    "schedule": ("cosine", OMB + "50 (CosineAnnealing, min_lr 0; by epoch)"),
    "warmup_epochs": (0.0, OMB + "50 (no warm-up)"),
    "num_epochs": (200, OMDOC + "102, 111 (200-epoch column; " + OMB + "53 has 400)"),
    "batch_size": (100, OMD + "18; configs/classification/cifar100/mixups/auto_train_mixups.py:56"),
    "padding": (4, OMD + "7 (reflect padding there; zeros here)"),
    "flip": (True, OMD + "8"),
}

MIXUP_CIFAR10 = {
    "dataset": (FROM_ARG, MC + "train.py:74 (CIFAR-10; CIFAR-100 in the paper, Sec. 3.2)"),
    "model": (FROM_ARG, MC + "train.py:29-30, 100; models/resnet.py:172-173 (PreActResNet-18)"),
    "loss": ("ce", MC + "train.py:114, 137-138"),
    "learning_rate": (0.1, MC + "train.py:26"),
    "momentum": (0.9, MC + "train.py:115"),
    "nesterov": (False, MC + "train.py:115-116 (optim.SGD without nesterov)"),
    "weight_decay": (1e-4, MC + "train.py:38; README.md:41"),
    "batch_size": (128, MC + "train.py:33"),
    "num_epochs": (200, MC + "train.py:34"),
    "schedule": ("step", MC + "train.py:220-226"),
    "milestones": ((101, 151), MC + "train.py:220-226 run after train(epoch), 237-240"),
    "gamma": (0.1, MC + "train.py:223-226 (lr /= 10)"),
    "warmup_epochs": (0.0, MC + "train.py:220-228 (no warm-up)"),
    "padding": (4, MC + "train.py:55"),
    "flip": (True, MC + "train.py:56"),
    "model_kwargs.variant": (
        Per(preact_resnet18="mixup_cifar10", wide_resnet28_10=None),
        MC + "models/resnet.py:47-70, 130-173 (no WRN in the repository)"),
    "model_kwargs.init": (
        Per(preact_resnet18="pytorch", wide_resnet28_10=None),
        MC + "models/resnet.py (no init code: PyTorch's defaults)"),
}

REFERENCE = {
    "cifar_erm": {
        **MIXUP_CIFAR10,
        "methods": (("erm",), MC + "train.py:121-124 (--alpha=0: λ = 1)"),
    },
    "cifar_mixup": {
        **MIXUP_CIFAR10,
        "methods": (("mixup",), MC + "train.py:152-157"),
        "mixers.mixup.alpha": (1.0, MC + "train.py:39-40"),
        "mixers.mixup.mode": ("batch", MC + "train.py:119-134 (one λ, one permutation)"),
    },
    "cifar_manifold_mixup": {
        "dataset": (FROM_ARG, MM + "README.md:33, 81 (cifar10, cifar100)"),
        "model": (FROM_ARG, MM + "README.md:33, 63 (preactresnet18, wrn28_10)"),
        "methods": (("manifold_mixup",), MM + "README.md:33, 63, 81, 111 (--train mixup_hidden)"),
        "mixers.manifold_mixup.alpha": (2.0, MM + "README.md:33, 63, 81, 111 (--mixup_alpha 2.0)"),
        "mix_layers": ((0, 1, 2),
                       MM + "models/preresnet.py:106-107; models/wide_resnet.py:120-121"),
        "mixers.manifold_mixup.mode": ("batch",
                                       MM + "models/preresnet.py:115-118; utils.py:127-131"),
        "loss": ("softmax_bce", MM + "main.py:184-185, 237"),
        "learning_rate": (0.1, MM + "README.md:33, 63, 81, 111 (--learning_rate 0.1)"),
        "momentum": (0.9, MM + "README.md:33, 63, 81, 111 (--momentum 0.9)"),
        "nesterov": (True, MM + "main.py:391-392"),
        "weight_decay": (1e-4, MM + "README.md:33, 63, 81, 111 (--decay 0.0001)"),
        "batch_size": (100, MM + "main.py:62 (default; the commands do not set it)"),
        "num_epochs": (Per(preact_resnet18=2000, wide_resnet28_10=400),
                       MM + "README.md:33, 81 (2000); 63, 111 (400)"),
        "milestones": (Per(preact_resnet18=(500, 1000, 1500), wide_resnet28_10=(200, 300)),
                       MM + "README.md:33, 81; 63, 111 (--schedule); main.py:152-163, 426-427"),
        "gamma": (0.1, MM + "README.md:33, 63, 81, 111 (--gammas 0.1 ...)"),
        "schedule": ("step", MM + "main.py:152-163"),
        "warmup_epochs": (0.0, MM + "main.py:152-163 (no warm-up)"),
        "padding": (2, MM + "load_data.py:180 (RandomCrop(32, padding=2)), via main.py:377"),
        "flip": (True, MM + "load_data.py:179"),
        "model_kwargs.variant": ("manifold_mixup",
                                 MM + "supervised/models/preresnet.py, wide_resnet.py"),
        "model_kwargs.init": ("pytorch", MM + "main.py (no init applied: PyTorch's defaults; "
                              "wide_resnet.py:21-28 conv_init is never called)"),
    },
    "cifar_cutmix": {
        "dataset": (FROM_ARG, CM + "README.md:47; train.py:76, 92-100 (cifar10, cifar100)"),
        "model": (FROM_ARG, CM + "README.md:46-49 (PyramidNet-200: not in mixjax, ours kept)"),
        "methods": (("cutmix",), CM + "train.py:227-240"),
        "mixers.cutmix.alpha": (1.0, CM + "README.md:54 (--beta 1.0); train.py:230"),
        "mixers.cutmix.prob": (0.5, CM + "README.md:55 (--cutmix_prob 0.5); train.py:227-228"),
        "mixers.cutmix.mode": ("batch",
                               CM + "train.py:227-237 (one λ, box, permutation per batch)"),
        "loss": ("ce", CM + "train.py:171, 240"),
        "learning_rate": (0.25, CM + "README.md:51"),
        "batch_size": (64, CM + "README.md:50"),
        "num_epochs": (300, CM + "README.md:53"),
        "schedule": ("step", CM + "train.py:369-372"),
        "milestones": ((150, 225), CM + "train.py:369-372, set before each epoch: 179-181"),
        "gamma": (0.1, CM + "train.py:372"),
        "warmup_epochs": (0.0, CM + "train.py:369-372 (no warm-up)"),
        "momentum": (0.9, CM + "train.py:42"),
        "nesterov": (True, CM + "train.py:173-175"),
        "weight_decay": (1e-4, CM + "train.py:44"),
        "padding": (4, CM + "train.py:81"),
        "flip": (True, CM + "train.py:82"),
    },
    "cifar_fmix": {
        "dataset": (FROM_ARG, FM + "trainer.py:21-22; experiments/cifar_experiment.sh:4, 9-16"),
        "model": (FROM_ARG, FM + "experiments/cifar_experiment.sh:18-34; models/resnet.py:176-177 "
                  "(PreActResNet-18); models/models.py:17-18 (WRN-28-10)"),
        "methods": (("fmix",), FM + "trainer.py:110-111, 134"),
        "mixers.fmix.alpha": (1.0, FM + "trainer.py:50"),
        "mixers.fmix.decay_power": (3.0, FM + "trainer.py:51"),
        "mixers.fmix.max_soft": (0.0, FM + "trainer.py:111"),
        "mixers.fmix.spectrum": ("reference", FM + "fmix.py:36-53 (get_spectrum)"),
        "mixers.fmix.prob": (1.0, FM + "trainer.py:134 (every batch)"),
        "mixers.fmix.mode": ("batch",
                             FM + "implementations/torchbearer_implementation.py:72-73"),
        "loss": ("ce", FM + "implementations/torchbearer_implementation.py:18-22; trainer.py:145"),
        "learning_rate": (0.1, FM + "experiments/cifar_experiment.sh:54"),
        "batch_size": (128, FM + "experiments/cifar_experiment.sh:23, 32, 54"),
        "num_epochs": (200, FM + "experiments/cifar_experiment.sh:21, 30"),
        "schedule": ("step", FM + "experiments/cifar_experiment.sh:24, 33; trainer.py:138"),
        "milestones": ((100, 150), FM + "experiments/cifar_experiment.sh:22, 31; trainer.py:138"),
        "gamma": (0.1, FM + "trainer.py:138 (torchbearer MultiStepLR default)"),
        "warmup_epochs": (0.0, FM + "trainer.py:31, 139 (--lr-warmup False)"),
        "momentum": (0.9, FM + "trainer.py:90"),
        "nesterov": (False, FM + "trainer.py:90 (optim.SGD without nesterov)"),
        "weight_decay": (1e-4, FM + "trainer.py:90"),
        "padding": (4, FM + "datasets/datasets.py:22"),
        "flip": (True, FM + "datasets/datasets.py:22"),
    },
    "cifar_saliencymix": {
        "dataset": (FROM_ARG, SM + "command.sh:4, 19 (cifar10, cifar100)"),
        "model": (FROM_ARG, SM + "saliencymix.py:138-150 (post-activation ResNet-18: not in "
                  "mixjax, ours kept; WRN-28-10)"),
        "methods": (("saliencymix",), SM + "saliencymix.py:234-248"),
        "mixers.saliencymix.alpha": (1.0, SM + "command.sh:4, 19 (--beta 1.0); saliencymix.py:237"),
        "mixers.saliencymix.prob": (
            0.5, SM + "command.sh:4, 19 (--salmix_prob 0.5); saliencymix.py:234-235"),
        "mixers.saliencymix.mode": (
            "batch", SM + "saliencymix.py:237-243 (one λ, one box, one permutation)"),
        # The code's detector; the text was read as spectral residual: the code decides.
        "mixers.saliencymix.saliency": (
            "fine_grained", SM + "saliencymix.py:202 (cv2.saliency.StaticSaliencyFineGrained)"),
        "loss": ("ce", SM + "saliencymix.py:154, 248"),
        "learning_rate": (0.1, SM + "command.sh:4, 19"),
        "batch_size": (128, SM + "command.sh:4, 19"),
        "num_epochs": (200, SM + "saliencymix.py:33 (default; the commands do not set it)"),
        "schedule": ("step", SM + "saliencymix.py:161"),
        "milestones": ((61, 121, 161), SM + "saliencymix.py:161, stepped after each epoch: 272"),
        "gamma": (0.2, SM + "saliencymix.py:161"),
        "warmup_epochs": (0.0, SM + "saliencymix.py:158-161 (no warm-up)"),
        "momentum": (0.9, SM + "saliencymix.py:155"),
        "nesterov": (True, SM + "saliencymix.py:156"),
        "weight_decay": (5e-4, SM + "saliencymix.py:156"),
        "padding": (4, SM + "saliencymix.py:70 (--data_augmentation)"),
        "flip": (True, SM + "saliencymix.py:71"),
        "model_kwargs.dropout_rate": (Per(preact_resnet18=None, wide_resnet28_10=0.3),
                                      SM + "saliencymix.py:148-150 (dropRate=0.3)"),
    },
    "cifar_resizemix": {
        **openmixup_cifar100_r18("resizemix"),
        "methods": (("resizemix",), OMB + "11; auto_train_mixups.py:42-43"),
        "mixers.resizemix.scope": ((0.1, 0.8), OMB + "22; " + OMA + "resizemix.py:86-95"),
        "mixers.resizemix.tau_alpha": (1.0, OMB + "10, 22 (use_alpha=True); " + OMDOC + "123; "
                                       + OMA + "resizemix.py:87-90"),
    },
    "cifar_gridmix": {
        **openmixup_cifar100_r18("gridmix"),
        "methods": (("gridmix",), OMB + "11; auto_train_mixups.py:42-43"),
        "mixers.gridmix.alpha": (
            0.2, OMDOC + "122; auto_train_mixups.py:48; " + OMA + "gridmix.py:100-101"),
        "mixers.gridmix.n_holes": ((2, 6), OMB + "17; " + OMA + "gridmix.py:103, 108"),
        "mixers.gridmix.hole_aspect_ratio": (
            (1.0, 1.0), OMB + "17; " + OMA + "gridmix.py:104, 109"),
        "mixers.gridmix.cut_area_ratio": ((0.5, 1.0), OMB + "18; " + OMA + "gridmix.py:105, 110"),
        "mixers.gridmix.cut_aspect_ratio": (
            (0.5, 2.0), OMB + "18; " + OMA + "gridmix.py:106, 111"),
    },
    "cifar_smoothmix": {
        **openmixup_cifar100_r18("smoothmix"),
        "methods": (("smoothmix",), OMB + "11; auto_train_mixups.py:42-43"),
        "mixers.smoothmix.sigma": ((0.25, 0.5), OMA + "smoothmix.py:71"),
    },
}


def _get(name, arg=None):
  return importlib.import_module(f"configs.{name}").get_config(arg)


def _flat(config, prefix=""):
  """``{"a.b": value}`` for every leaf of a ConfigDict (tuples as tuples)."""
  out = {}
  for key, value in config.items():
    if hasattr(value, "items"):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = tuple(value) if isinstance(value, (list, tuple)) else value
  return out


def _expected(field, value, dataset, model):
  if value is FROM_ARG:
    return {"dataset": dataset, "model": model}[field]
  if isinstance(value, Per):
    return value[model] if model in value else value[dataset]
  return value


@pytest.mark.parametrize("name", RECIPES)
@pytest.mark.parametrize("arg", ARGS)
def test_recipe_configs(name, arg):
  config = _get(name, arg)
  assert config.model in list_models()
  assert config.dataset in ("cifar10", "cifar100")
  assert config.loss in LOSSES
  for method in config.methods:
    assert method in method_names()
    mixer = mixer_from_config(config, method)
    check_mixer(mixer, manifold=method in MANIFOLD_METHODS)
    if arg is None:  # The draw fits CIFAR's images (the mixers do not depend on arg).
      check_draw(mixer, (32, 32, 3))
  assert config.batch_size % 4 == 0 and config.eval_batch_size % 4 == 0
  if arg:
    assert (config.dataset, config.model) == tuple(arg.split(","))
  # The model builds with the recipe's options, as the trainer passes them.
  kwargs = {k: v for k, v in config.model_kwargs.items() if v is not None}
  model = get_model(config.model, 10, **kwargs)
  for key, value in kwargs.items():
    assert getattr(model, "param_init" if key == "init" else key) == value


@pytest.mark.parametrize("name", RECIPES)
@pytest.mark.parametrize("arg", ARGS)
def test_every_recipe_field_equals_its_reference(name, arg):
  config = _flat(_get(name, arg))
  dataset, model = (arg or "cifar10,preact_resnet18").split(",")
  for field, (value, citation) in REFERENCE[name].items():
    assert citation.split("/")[0] in ("facebookresearch", "vikasverma1077", "clovaai",
                                      "ecs-vlc", "afm-shahab-uddin", "Westlake-AI")
    expected = _expected(field, value, dataset, model)
    assert field in config, f"{name}: no field {field}"
    assert config[field] == expected, (
        f"{name}:{arg} {field} = {config[field]!r}, the reference says {expected!r} "
        f"({citation})")


@pytest.mark.parametrize("name", RECIPES)
@pytest.mark.parametrize("arg", ARGS)
def test_every_field_a_recipe_changes_is_traced(name, arg):
  defaults, config = _flat(base.get_config()), _flat(_get(name, arg))
  assert set(config) == set(defaults), "recipes add no fields of their own"
  changed = {k for k in config if config[k] != defaults[k]}
  untraced = changed - set(REFERENCE[name])
  assert not untraced, f"{name}:{arg} sets {sorted(untraced)} without a reference"


def _reference_lr(name, epoch, config):
  """The learning rate of 0-based ``epoch`` as the reference code computes it."""
  lr = config.learning_rate
  if name in ("cifar_erm", "cifar_mixup"):
    # mixup-cifar10 train.py:220-226, 237-240: set after train(epoch - 1).
    last = int(epoch) - 1
    if last >= 100:
      lr /= 10
    if last >= 150:
      lr /= 10
    return lr
  if name == "cifar_manifold_mixup":
    # manifold_mixup main.py:152-163, called at the start of the epoch (426-427).
    for step in config.milestones:
      if epoch >= step:
        lr *= 0.1
      else:
        break
    return lr
  if name == "cifar_fmix":
    # FMix trainer.py:138: torchbearer's MultiStepLR, lr·0.1 from epoch 100 and from 150.
    return lr * 0.1 ** sum(epoch >= m for m in (100, 150))
  if name == "cifar_saliencymix":
    # SaliencyMix saliencymix.py:161, 272: MultiStepLR([60, 120, 160], 0.2).step(epoch)
    # after training epoch `epoch`, so epoch e trains at the rate set after e - 1.
    return lr * 0.2 ** sum(epoch - 1 >= m for m in (60, 120, 160)) if epoch else lr
  if name in OPENMIXUP:
    # mmcv's CosineAnnealingLrUpdaterHook (OpenMixup B:50), by epoch, min_lr 0.
    return lr * (1 + np.cos(np.pi * epoch / config.num_epochs)) / 2
  # CutMix-PyTorch train.py:369-372, called at the start of the epoch (179-181).
  n = config.num_epochs
  return lr * 0.1 ** (epoch // (n * 0.5)) * 0.1 ** (epoch // (n * 0.75))


@pytest.mark.parametrize("name", RECIPES)
@pytest.mark.parametrize("arg", ["cifar10,preact_resnet18", "cifar100,wide_resnet28_10"])
def test_recipe_schedule_equals_the_reference_code_epoch_by_epoch(name, arg):
  config = _get(name, arg)
  steps_per_epoch = 3
  schedule = make_schedule(
      config.learning_rate, config.num_epochs * steps_per_epoch, steps_per_epoch,
      config.schedule, config.warmup_epochs, config.milestones, config.gamma)
  steps = np.arange(config.num_epochs * steps_per_epoch)
  if name in OPENMIXUP:
    # mmcv holds the cosine rate within an epoch; ours decays per step: compare each
    # epoch's first step, where the two are the same formula.
    steps = steps[::steps_per_epoch]
  ours = np.asarray(schedule(jnp.asarray(steps)), np.float64)
  expected = np.array([_reference_lr(name, int(s) // steps_per_epoch, config) for s in steps])
  if name in OPENMIXUP:  # optax's float32 cosine: its error is absolute, not relative.
    np.testing.assert_allclose(ours, expected, rtol=0, atol=config.learning_rate * 2 ** -22)
  else:
    np.testing.assert_allclose(ours, expected, rtol=2 ** -22)  # float32 rate vs float64.


# Each recipe's mixer, as the trainer builds it (the same before the trainer took
# mixers, when a Method with presets built it, except SaliencyMix's detector, which
# now follows the reference code: "fine_grained").
RECIPE_MIXERS = {
    "cifar_erm": None,
    "cifar_mixup": mx.Mixup(alpha=1.0),
    "cifar_manifold_mixup": mx.Mixup(alpha=2.0),
    "cifar_cutmix": mx.CutMix(alpha=1.0, prob=0.5),
    "cifar_fmix": mx.FMix(alpha=1.0, decay_power=3.0, max_soft=0.0, spectrum="reference"),
    "cifar_saliencymix": mx.SaliencyMix(alpha=1.0, prob=0.5, saliency="fine_grained"),
    "cifar_resizemix": mx.ResizeMix(scope=(0.1, 0.8), tau_alpha=1.0),
    "cifar_gridmix": mx.GridMix(alpha=0.2, n_holes=(2, 6), hole_aspect_ratio=(1.0, 1.0),
                                cut_area_ratio=(0.5, 1.0), cut_aspect_ratio=(0.5, 2.0)),
    "cifar_smoothmix": mx.SmoothMix(sigma=(0.25, 0.5)),
}


def test_recipes_train_each_papers_mixer():
  for name, expected in RECIPE_MIXERS.items():
    for arg in ARGS:
      config = _get(name, arg)
      (method,) = config.methods
      assert mixer_from_config(config, method) == expected, (name, arg)
  assert tuple(_get("cifar_manifold_mixup").mix_layers) == (0, 1, 2)


def test_digits_and_base_configs_keep_the_papers_values():
  """What the trainer's presets gave every config (mixup α = 1, Manifold Mixup α = 2,
  CutMix α = 1 with prob 0.5, timm's policy), now the base config's sections."""
  for config in (base.get_config(), importlib.import_module("configs.digits").get_config()):
    get = lambda name, config=config: mixer_from_config(config, name)
    assert get("erm") is None
    assert get("mixup") == mx.Mixup(alpha=1.0)
    assert get("manifold_mixup") == mx.Mixup(alpha=2.0)
    assert get("cutmix") == mx.CutMix(alpha=1.0, prob=0.5)
    assert get("policy") == mx.Policy(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5)
    for name in ("fmix", "resizemix", "saliencymix", "smoothmix", "identity"):
      assert get(name) == mx.get_mixer(name), name  # The mixers' (papers') defaults.
  assert get("gridmix") == mx.GridMix(n_holes=(2, 2))  # digits: 8x8 fits 2 holes.
  assert mixer_from_config(base.get_config(), "gridmix") == mx.GridMix()


def _parse(config_file, *overrides):
  """The config ``train.py`` gets for ``--config=config_file`` and ``overrides``."""
  argv = ["train.py", f"--config={ROOT}/configs/{config_file}", *overrides]
  values = flags.FlagValues()
  # As train.py defines it (the overrides are read from sys_argv when it is defined).
  config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True,
                                  sys_argv=argv)
  values(argv)
  return values.config


def test_documented_mixer_overrides_reach_the_mixers():
  """README's --config.alpha=2 for the CutMix recipe, the shared fields, the sections."""
  config = _parse("cifar_cutmix.py", "--config.alpha=2")
  assert mixer_from_config(config, "cutmix") == mx.CutMix(alpha=2.0, prob=0.5)
  config = _parse("cifar_cutmix.py", "--config.mixers.cutmix.prob=1", "--config.mix_mode=elem",
                  "--config.pairing=roll", "--config.nan_check_every=5")
  assert mixer_from_config(config, "cutmix") == mx.CutMix(prob=1.0, mode="elem", pairing="roll")
  assert config.nan_check_every == 5
  config = _parse("digits.py", "--config.methods=('mixup','manifold_mixup')",
                  "--config.alpha=0.4", "--config.prob=0.5", "--config.mixers.mixup.n=3",
                  "--config.mix_layers=(0,1)")
  assert mixer_from_config(config, "mixup") == mx.Mixup(alpha=0.4, prob=0.5, n=3)
  assert mixer_from_config(config, "manifold_mixup") == mx.Mixup(alpha=0.4, prob=0.5)
  assert tuple(config.mix_layers) == (0, 1)
  config = _parse("cifar_resizemix.py", "--config.mixers.resizemix.scope=(0.2,0.6)",
                  "--config.mixers.policy.mixup_alpha=0.3")
  assert mixer_from_config(config, "resizemix") == mx.ResizeMix(scope=(0.2, 0.6), tau_alpha=1.0)
  assert mixer_from_config(config, "policy").mixup_alpha == 0.3


def test_recipe_rejects_other_datasets_and_unreferenced_models():
  with pytest.raises(ValueError, match="cifar10 or cifar100"):
    _get("cifar_mixup", "mnist,preact_resnet18")
  with pytest.raises(ValueError, match="Manifold Mixup README gives schedules"):
    _get("cifar_manifold_mixup", "cifar10,small_cnn")


def test_locked_config_takes_model_kwargs_and_loss_from_the_command_line():
  config = _parse("cifar_erm.py:cifar10,wide_resnet28_10", "--config.model_kwargs.init=pytorch",
                  "--config.model_kwargs.variant=mixup_cifar10", "--config.loss=softmax_bce")
  assert (config.model_kwargs.init, config.model_kwargs.variant) == ("pytorch", "mixup_cifar10")
  assert config.loss == "softmax_bce"
  defaults = base.get_config()
  assert (defaults.loss, defaults.model_kwargs.init, defaults.model_kwargs.variant) == (
      "ce", None, None)


def test_digits_config_compares_four_methods():
  config = importlib.import_module("configs.digits").get_config()
  assert config.dataset == "digits"
  assert tuple(config.methods) == ("erm", "mixup", "manifold_mixup", "cutmix")


# The ImageNet recipes (issue 22), each field against its reference (file:line).
CMI = "clovaai/CutMix-PyTorch@2d8eb68/"
DT = "facebookresearch/deit@7e160fe/"
IMAGENET_REFERENCE = {
    "imagenet_cutmix": {
        "dataset": ("imagefolder", CMI + "train.py:111-113, 125-126 (ImageFolder)"),
        "image_size": (224, CMI + "train.py:128, 144-145"),
        "padding": (0, CMI + "train.py:127-134 (RandomResizedCrop, no pad-and-crop)"),
        "flip": (True, CMI + "train.py:129"),
        "model": ("resnet50", CMI + "README.md:61, 65; resnet.py:106-121"),
        "model_kwargs.init": ("pytorch", CMI + "resnet.py:123-129 (fc: PyTorch's default)"),
        "methods": (("cutmix",), CMI + "train.py:227-240"),
        "mixers.cutmix.alpha": (1.0, CMI + "README.md:69; train.py:230"),
        "mixers.cutmix.prob": (1.0, CMI + "README.md:70; train.py:227-228"),
        "mixers.cutmix.mode": ("batch", CMI + "train.py:227-237"),
        "loss": ("ce", CMI + "train.py:171, 240"),
        "batch_size": (256, CMI + "README.md:63"),
        "eval_batch_size": (256, CMI + "train.py:149"),
        "learning_rate": (0.1, CMI + "README.md:64"),
        "num_epochs": (300, CMI + "README.md:66"),
        "schedule": ("step_every", CMI + "train.py:369-377"),
        "step_epochs": (75, CMI + "train.py:374-375 (lr·0.1^(e // 75) for 300 epochs)"),
        "gamma": (0.1, CMI + "train.py:375"),
        "warmup_epochs": (0.0, CMI + "train.py:369-377 (no warm-up)"),
        "momentum": (0.9, CMI + "train.py:42"),
        "nesterov": (True, CMI + "train.py:173-175"),
        "weight_decay": (1e-4, CMI + "train.py:44"),
        "weight_decay_mask": ("all", CMI + "train.py:173 (model.parameters())"),
        "data_threads": (8, "ours: input speed only"),
    },
    "imagenet_deit": {
        "dataset": ("imagefolder", DT + "datasets.py:82-90"),
        "image_size": (224, DT + "main.py:42"),
        "padding": (0, DT + "datasets.py:82-90"),
        "flip": (True, DT + "datasets.py:82-90 (timm's hflip 0.5)"),
        "model": ("vit_s16", DT + "README_deit.md:216; models.py:78-81"),
        "model_kwargs.drop_path_rate": (0.1, DT + "main.py:46"),
        "methods": (("policy",), DT + "main.py:255-260"),
        "mixers.policy.mixup_alpha": (0.8, DT + "main.py:128"),
        "mixers.policy.cutmix_alpha": (1.0, DT + "main.py:130"),
        "mixers.policy.switch_prob": (0.5, DT + "main.py:136"),
        "mixers.policy.prob": (1.0, DT + "main.py:134"),
        "mixers.policy.mode": ("batch", DT + "main.py:138"),
        "mixers.policy.pairing": ("flip", "timm mixup.py _mix_batch (x.flip(0))"),
        "label_smoothing": (0.1, DT + "main.py:101, 260"),
        "loss": ("ce", DT + "main.py:359-361"),
        "random_erasing": (0.25, DT + "main.py:118-123; datasets.py:88-90"),
        "optimizer": ("adamw", DT + "main.py:56, 352"),
        "eps": (1e-8, DT + "main.py:58"),
        "weight_decay": (0.05, DT + "main.py:66"),
        "weight_decay_mask": ("timm", DT + "main.py:352 (timm create_optimizer)"),
        "batch_size": (1024, DT + "README_deit.md:216 (4 × 256)"),
        "eval_batch_size": (1024, "ours: no effect on the numbers"),
        "learning_rate": (1e-3, DT + "main.py:71, 349-351 (5e-4 · 1024 / 512)"),
        "num_epochs": (300, DT + "main.py:35"),
        "schedule": ("deit_cosine", DT + "main.py:69, 355, 432"),
        "warmup_epochs": (5.0, DT + "main.py:86"),
        "warmup_lr": (1e-6, DT + "main.py:79"),
        "min_lr": (1e-5, DT + "main.py:81"),
        "ema_decay": (0.99996, DT + "main.py:49-52, 337-341; engine.py:71-72"),
        "dtype": ("bfloat16", DT + "engine.py:46 (autocast)"),
        "data_threads": (8, "ours: input speed only"),
    },
}


@pytest.mark.parametrize("name", sorted(IMAGENET_REFERENCE))
def test_imagenet_recipes_equal_their_references_and_trace_every_change(name):
  config = importlib.import_module(f"configs.{name}").get_config()
  flat, defaults = _flat(config), _flat(base.get_config())
  assert set(flat) == set(defaults), "recipes add no fields of their own"
  for field, (value, citation) in IMAGENET_REFERENCE[name].items():
    assert flat[field] == value, f"{name} {field} = {flat[field]!r}, {citation} says {value!r}"
  untraced = {k for k in flat if flat[k] != defaults[k]} - set(IMAGENET_REFERENCE[name])
  assert not untraced, f"{name} sets {sorted(untraced)} without a reference"
  assert config.model in list_models()
  (method,) = config.methods
  check_draw(mixer_from_config(config, method), (config.image_size,) * 2 + (3,))


def test_the_deit_learning_rate_follows_the_batch_size_unless_set():
  """main.py:349-351: 5e-4 per 512 images of the global batch."""
  assert _parse("imagenet_deit.py", "--config.batch_size=256").learning_rate == 2.5e-4
  config = _parse("imagenet_deit.py", "--config.batch_size=256", "--config.learning_rate=0.1")
  assert config.learning_rate == 0.1


def _timm_cosine(epoch, lr, epochs=300, warmup=5, warmup_lr=1e-6, min_lr=1e-5):
  """timm's CosineLRScheduler._get_lr(epoch) (t_in_epochs, one cycle, no noise)."""
  if epoch < warmup:
    return warmup_lr + epoch * (lr - warmup_lr) / warmup
  return min_lr + 0.5 * (lr - min_lr) * (1 + np.cos(np.pi * epoch / epochs))


@pytest.mark.parametrize("name", sorted(IMAGENET_REFERENCE))
def test_imagenet_schedules_equal_the_reference_code_epoch_by_epoch(name):
  """CutMix: lr·0.1^(e // 75) set at the start of epoch e (train.py:179-181, 369-375).
  DeiT: timm's cosine, stepped *after* each epoch (main.py:420-432) from warmup_lr
  (the scheduler's initial value), so epoch e ≥ 1 trains at the rate of e − 1."""
  config = importlib.import_module(f"configs.{name}").get_config()
  spe = 3
  schedule = make_schedule(config.learning_rate, config.num_epochs * spe, spe,
                           config.schedule, config.warmup_epochs, config.milestones,
                           config.gamma, config.warmup_lr, config.min_lr, config.step_epochs)
  steps = np.arange(config.num_epochs * spe)
  ours = np.asarray(schedule(jnp.asarray(steps)), np.float64)
  epochs = steps // spe
  if name == "imagenet_cutmix":
    expected = config.learning_rate * 0.1 ** (epochs // 75)
    # Any other length decays every 30 epochs (train.py:376-377), as the field follows.
    assert [_parse("imagenet_cutmix.py", f"--config.num_epochs={n}").step_epochs
            for n in (90, 299, 300, 301)] == [30, 30, 75, 30]
  else:
    expected = np.array([_timm_cosine(max(e - 1, 0), config.learning_rate) for e in epochs])
  # float32 rates against float64 (the cosine's error is absolute: 2⁻²² of lr).
  np.testing.assert_allclose(ours, expected, rtol=2 ** -22,
                             atol=config.learning_rate * 2 ** -22)
