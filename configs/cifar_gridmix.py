r"""GridMix on CIFAR-10/100, with OpenMixup's CIFAR-100 ResNet-18 benchmark settings.

Baek et al., 2021, "GridMix: Strong regularization through local context
mapping" (Pattern Recognition).
Every value below is read from github.com/Westlake-AI/openmixup at commit 37e1372 (B:
``configs/classification/cifar100/mixups/basic/r18_mixups_CE_none.py``, the base of its
CIFAR mixup benchmark; D: the ``_base_/datasets/cifar100/sz32_bs100.py`` it inherits;
A: ``openmixup/models/augments/gridmix.py``; docs: ``docs/en/mixup_benchmarks/Mixup_cifar.md``):

  field (mixers.gridmix.) value       OpenMixup
  methods              gridmix        B:11 (mix_mode, set per method by auto_train_mixups.py:42-43)
  alpha                0.2            docs:122 (GridMix α = 0.2; B:10's alpha=1 is the template's,
                                      auto_train_mixups.py:48 generates 0.2 and 1); A:100-101
  n_holes              (2, 6)         B:17; A:103, 108
  hole_aspect_ratio    (1.0, 1.0)     B:17 (1.); A:104, 109
  cut_area_ratio       (0.5, 1.0)     B:18; A:105, 110
  cut_aspect_ratio     (0.5, 2.0)     B:18; A:106, 111

The settings every OpenMixup recipe shares (optimiser, schedule, epochs, batch,
augmentation) and what is not reproduced of them: ``configs/openmixup.py``.
"""

from configs import openmixup


def get_config(arg=None):
  c = openmixup.cifar_recipe(arg, "gridmix")
  grid = c.mixers.gridmix
  grid.alpha = 0.2
  grid.n_holes = (2, 6)
  grid.hole_aspect_ratio = (1.0, 1.0)
  grid.cut_area_ratio = (0.5, 1.0)
  grid.cut_aspect_ratio = (0.5, 2.0)
  return c
