r"""ERM baseline for the mixup recipe on CIFAR-10/100 (mixup-cifar10's settings).

Zhang et al., 2018, "mixup: Beyond Empirical Risk Minimization" (ICLR), Sec. 3.2.
github.com/facebookresearch/mixup-cifar10 (commit eaff31a) trains ERM with the
same script at ``--alpha=0``: ``mixup_data`` then sets λ = 1 (train.py:121-124),
i.e. plain cross-entropy on the unmixed batch, our method ``erm``. Every other
field is the mixup recipe's, traced in configs/cifar_mixup.py: SGD lr 0.1,
momentum 0.9 without Nesterov, weight decay 1e-4, batch 128, 200 epochs, lr ÷10
after epochs 100 and 150 (milestones (101, 151)), pad-4 crop + flip, and for
PreActResNet-18 the repository's network (variant "mixup_cifar10", PyTorch init).

  python train.py --config=configs/cifar_erm.py:cifar100,wide_resnet28_10
"""

from configs import cifar_mixup


def get_config(arg=None):
  return cifar_mixup.mixup_cifar10(arg, "erm")
