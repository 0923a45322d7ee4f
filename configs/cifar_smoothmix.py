r"""SmoothMix on CIFAR-10/100, with OpenMixup's CIFAR-100 ResNet-18 benchmark settings.

Lee et al., 2020, "SmoothMix: a Simple Yet Effective Data Augmentation to
Train Robust Classifiers" (CVPR Workshops).
Every value below is read from github.com/Westlake-AI/openmixup at commit 37e1372 (B:
``configs/classification/cifar100/mixups/basic/r18_mixups_CE_none.py``, the base of its
CIFAR mixup benchmark; D: the ``_base_/datasets/cifar100/sz32_bs100.py`` it inherits;
A: ``openmixup/models/augments/smoothmix.py``; docs: ``docs/en/mixup_benchmarks/Mixup_cifar.md``):

  field (mixers.smoothmix.) value     OpenMixup
  methods              smoothmix      B:11 (mix_mode, set per method by auto_train_mixups.py:42-43)
  sigma                (0.25, 0.5)    A:71 (σ = (U[0, 1)/4 + 0.25)·H: σ/H ~ U[0.25, 0.5))

The settings every OpenMixup recipe shares (optimiser, schedule, epochs, batch,
augmentation) and what is not reproduced of them: ``configs/openmixup.py``.

The α of the docs' table (docs:116, 0.2) has no effect in the code: A:53 draws λ from it
and A:74 overwrites it with the mask's mean. The SmoothMix mixer takes no ``alpha``
(``--config.alpha`` is an error with this recipe).
"""

from configs import openmixup


def get_config(arg=None):
  c = openmixup.cifar_recipe(arg, "smoothmix")
  c.mixers.smoothmix.sigma = (0.25, 0.5)
  return c
