r"""ERM baseline for the mixup recipes on CIFAR.

Zhang et al., 2018, "mixup: Beyond Empirical Risk Minimization" (ICLR),
Sec. 3.2 and github.com/facebookresearch/mixup-cifar10: PreActResNet-18,
200 epochs, batch 128, SGD lr 0.1 divided by 10 at epochs 100 and 150,
momentum 0.9, weight decay 1e-4, pad-4 crop + flip.

  python train.py --config=configs/cifar_erm.py:cifar100,wide_resnet28_10
"""

from configs import base


def get_config(arg=None):
  return base.cifar_recipe(arg, "erm")
