r"""CutMix on CIFAR-10/100.

Yun et al., 2019, "CutMix: Regularization Strategy to Train Strong Classifiers
with Localizable Features" (ICCV), Sec. 4.1.2 and github.com/clovaai/CutMix-PyTorch:
α = 1 and CutMix applied with probability 0.5 (``cutmix_prob``). The paper's
CIFAR model is PyramidNet-200 (300 epochs, batch 64, lr 0.25); for the
PreActResNet-18 / WRN-28-10 comparison we keep the mixup recipe's schedule:
200 epochs, batch 128, lr 0.1 ÷10 at epochs 100 and 150, weight decay 1e-4.

  python train.py --config=configs/cifar_cutmix.py:cifar100,preact_resnet18
"""

from configs import base


def get_config(arg=None):
  c = base.cifar_recipe(arg, "cutmix")
  c.alpha = 1.0
  c.prob = 0.5
  return c
