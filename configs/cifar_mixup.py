r"""Mixup on CIFAR-10/100.

Zhang et al., 2018, "mixup: Beyond Empirical Risk Minimization" (ICLR), Sec. 3.2
and github.com/facebookresearch/mixup-cifar10: α = 1, one λ per batch,
PreActResNet-18, 200 epochs, batch 128, lr 0.1 ÷10 at epochs 100 and 150,
weight decay 1e-4. Reported test error (PreActResNet-18): CIFAR-10 4.2%
(ERM 5.6%), CIFAR-100 21.1% (ERM 25.6%).

  python train.py --config=configs/cifar_mixup.py                       # cifar10, PreActResNet-18
  python train.py --config=configs/cifar_mixup.py:cifar100,wide_resnet28_10
"""

from configs import base


def get_config(arg=None):
  c = base.cifar_recipe(arg, "mixup")
  c.alpha = 1.0
  return c
