r"""Mixup on CIFAR-10/100, as github.com/facebookresearch/mixup-cifar10 trains it.

Zhang et al., 2018, "mixup: Beyond Empirical Risk Minimization" (ICLR), Sec. 3.2.
Every value below is read from that repository at commit eaff31a (``train.py``):

  field                  value            mixup-cifar10
  methods                mixup            train.py:152-157
  mixers.mixup.alpha     1.0              train.py:39-40 (--alpha default 1)
  mixers.mixup.mode      "batch"          train.py:119-134 (one λ, one permutation per batch)
  loss                   "ce"             train.py:114, 137-138 (CrossEntropyLoss, λ-mixed)
  learning_rate          0.1              train.py:26
  momentum, nesterov     0.9, False       train.py:115-116 (optim.SGD, nesterov not set)
  weight_decay           1e-4             train.py:38; README.md:41 (--decay=1e-4)
  batch_size             128              train.py:33
  num_epochs             200              train.py:34
  schedule, gamma        step, 0.1        train.py:220-226 (lr /= 10 for epoch >= 100, >= 150)
  milestones             (101, 151)       train.py:237-240: adjust_learning_rate(epoch) runs
                                          *after* train(epoch), so epochs 0-100 train at 0.1,
                                          101-150 at 0.01, 151-199 at 0.001. Our milestone m
                                          is the first 0-based epoch at the lower rate.
  warmup_epochs          0                train.py:220-229 (no warm-up)
  padding, flip          4, True          train.py:55-56 (RandomCrop(32, padding=4), flip)
  model_kwargs (PreActResNet-18 only)
    variant              "mixup_cifar10"  models/resnet.py:47-70, 130-173 (ResNet18 =
                                          PreActBlock ResNet, conv-BN-ReLU stem, no final BN)
    init                 "pytorch"        models/resnet.py (no init code: PyTorch defaults)

We follow the code where a summary of it would differ: "lr ÷10 at epochs 100 and
150" read as milestones (100, 150) drops one epoch early; the code's
adjust_learning_rate drops it after epochs 100 and 150 (above).
The repository trains CIFAR-10 with its ResNet18 only (train.py:74, 100); for
CIFAR-100 and WRN-28-10 (the paper's other settings) the same optimiser and
schedule apply, and WRN-28-10 keeps our network's defaults (the repository has none).
Reported test error (PreActResNet-18): CIFAR-10 4.2% (ERM 5.6%), CIFAR-100
21.1% (ERM 25.6%).

  python train.py --config=configs/cifar_mixup.py                       # cifar10, PreActResNet-18
  python train.py --config=configs/cifar_mixup.py:cifar100,wide_resnet28_10
"""

import ml_collections

from configs import base


def mixup_cifar10(arg: str | None, method: str) -> ml_collections.ConfigDict:
  """The mixup-cifar10 recipe for ``method`` (shared with configs/cifar_erm.py)."""
  c = base.cifar_recipe(arg, method)
  c.loss = "ce"
  c.learning_rate = 0.1
  c.momentum = 0.9
  c.nesterov = False
  c.weight_decay = 1e-4
  c.batch_size = 128
  c.num_epochs = 200
  c.schedule = "step"
  c.milestones = (101, 151)
  c.gamma = 0.1
  c.warmup_epochs = 0.0
  c.padding = 4
  c.flip = True
  if c.model == "preact_resnet18":
    c.model_kwargs.variant = "mixup_cifar10"
    c.model_kwargs.init = "pytorch"
  return c


def get_config(arg=None):
  c = mixup_cifar10(arg, "mixup")
  c.mixers.mixup.alpha = 1.0
  c.mixers.mixup.mode = "batch"
  return c
