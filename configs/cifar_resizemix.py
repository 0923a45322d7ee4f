r"""ResizeMix on CIFAR-10/100, with OpenMixup's CIFAR-100 ResNet-18 benchmark settings.

Qin et al., 2020, "ResizeMix: Mixing Data with Preserved Object
Information and True Labels" (arXiv:2012.11101).
Every value below is read from github.com/Westlake-AI/openmixup at commit 37e1372 (B:
``configs/classification/cifar100/mixups/basic/r18_mixups_CE_none.py``, the base of its
CIFAR mixup benchmark; D: the ``_base_/datasets/cifar100/sz32_bs100.py`` it inherits;
A: ``openmixup/models/augments/resizemix.py``; docs: ``docs/en/mixup_benchmarks/Mixup_cifar.md``):

  field (mixers.resizemix.) value     OpenMixup
  methods              resizemix      B:11 (mix_mode, set per method by auto_train_mixups.py:42-43)
  scope                (0.1, 0.8)     B:22; A:69, 86-95
  tau_alpha            1.0            B:22 (use_alpha=True) with B:10 (alpha=1; docs:123 α = 1):
                                      τ ~ Beta(1, 1), redrawn from U(scope) outside it (A:87-90)

The settings every OpenMixup recipe shares (optimiser, schedule, epochs, batch,
augmentation) and what is not reproduced of them: ``configs/openmixup.py``.

The ResizeMix mixer takes no ``alpha`` (its ``τ`` comes from ``scope`` and ``tau_alpha``):
``--config.alpha`` is an error with this recipe.
"""

from configs import openmixup


def get_config(arg=None):
  c = openmixup.cifar_recipe(arg, "resizemix")
  c.mixers.resizemix.scope = (0.1, 0.8)
  c.mixers.resizemix.tau_alpha = 1.0
  return c
