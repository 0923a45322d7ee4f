r"""OpenMixup's CIFAR-100 ResNet-18 benchmark settings, shared by its recipes.

``cifar_resizemix.py``, ``cifar_gridmix.py`` and ``cifar_smoothmix.py`` start
from :func:`cifar_recipe` and add their method's own fields. Every value is read
from github.com/Westlake-AI/openmixup at commit 37e1372 (B:
``configs/classification/cifar100/mixups/basic/r18_mixups_CE_none.py``, the base
of its CIFAR mixup benchmark; D: the ``_base_/datasets/cifar100/sz32_bs100.py``
it inherits; docs: ``docs/en/mixup_benchmarks/Mixup_cifar.md``):

  field                value          OpenMixup
  mixers.<method>.prob 1.0            mixup_classification.py:300-311 (every batch is mixed)
  mixers.<method>.mode "batch"        the augments (one λ, one mask/box, one permutation per batch)
  loss                 "ce"           B:32-35 (CrossEntropyLoss, λ-mixed)
  learning_rate        0.1            B:46
  momentum, nesterov   0.9, False     B:46 (SGD, no nesterov)
  weight_decay         1e-4           B:46
  schedule, warmup     cosine, 0      B:50 (CosineAnnealing to min_lr 0, no warm-up)
  num_epochs           200            docs:102, 111 (the 200-epoch column of the R-18 table)
  batch_size           100            D:18 (100 per GPU), auto_train_mixups.py:56 (1 GPU)
  padding, flip        4, True        D:7-8

Not reproduced: B:53 sets ``max_epochs=400``, a template that auto_train_mixups.py:53
overrides (400/800/1200); the recipes follow the 200-epoch benchmark row of the docs
(``--config.num_epochs=400`` for B's value). OpenMixup's cosine (mmcv's
CosineAnnealingLrUpdaterHook, by epoch) holds the rate within an epoch; mixjax's
``"cosine"`` decays it per step, equal at each epoch's first step. D:7 pads with
``padding_mode="reflect"``; mixjax pads with zeros. B:25-31's network is OpenMixup's
CIFAR ResNet-18 (``ResNet_Mix_CIFAR``, post-activation), which mixjax does not have:
the recipes keep the model of their argument (PreActResNet-18 or WRN-28-10).
"""

import ml_collections

from configs import base


def cifar_recipe(arg: str | None, method: str) -> ml_collections.ConfigDict:
  """The base config for ``method`` with OpenMixup's shared CIFAR settings (above)."""
  c = base.cifar_recipe(arg, method)
  c.mixers[method].prob = 1.0
  c.mixers[method].mode = "batch"
  c.loss = "ce"
  c.learning_rate = 0.1
  c.momentum = 0.9
  c.nesterov = False
  c.weight_decay = 1e-4
  c.schedule = "cosine"
  c.warmup_epochs = 0.0
  c.num_epochs = 200
  c.batch_size = 100
  c.padding = 4
  c.flip = True
  return c
