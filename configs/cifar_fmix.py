r"""FMix on CIFAR-10/100, with github.com/ecs-vlc/FMix's CIFAR settings.

Harris et al., 2020, "FMix: Enhancing Mixed Sample Data Augmentation" (arXiv:2002.12047).
Every value below is read from that repository at commit e5991dc: its CIFAR script
(``experiments/cifar_experiment.sh``, README.md:48-51 runs it), ``trainer.py`` and the
torchbearer callback it uses (``implementations/torchbearer_implementation.py``):

  field (mixers.fmix.) value         FMix
  methods              fmix           trainer.py:110-111, 134 (--msda-mode fmix)
  alpha                1.0            trainer.py:50 (default; the script does not set it)
  decay_power          3.0            trainer.py:51 (--f-decay default 3.0)
  max_soft             0.0            trainer.py:111 (max_soft=0)
  spectrum             "reference"    fmix.py:36-53 (get_spectrum, as the code draws it)
  prob                 1.0            trainer.py:134 (the callback mixes every batch)
  mode                 "batch"        torchbearer_implementation.py:72-73 (one λ, mask,
                                      permutation per batch)
  loss                 "ce"           torchbearer_implementation.py:18-22; trainer.py:145
  learning_rate        0.1            cifar_experiment.sh:54 (--lr=0.1)
  batch_size           128            cifar_experiment.sh:23, 32 (bs=128), 54
  num_epochs           200            cifar_experiment.sh:21, 30 (epoch=200)
  milestones, gamma    (100, 150),    cifar_experiment.sh:22, 31; trainer.py:138 (torchbearer
                       0.1            MultiStepLR, gamma 0.1: lr·0.1 from epoch 100 on)
  schedule, warmup     step, 0        cifar_experiment.sh:24, 33 (cosine=False); trainer.py:31
  momentum, nesterov   0.9, False     trainer.py:90 (optim.SGD without nesterov)
  weight_decay         1e-4           trainer.py:90
  padding, flip        4, True        datasets/datasets.py:22

The script's ``resnet`` is ``ResNet18`` = PreActResNet-18 (models/resnet.py:176-177,
PreActBlock) and its ``wrn`` is WRN-28-10 (models/models.py:17-18): the recipe's argument
picks mixjax's own preact_resnet18 or wide_resnet28_10 with their defaults (the
reference's init and layer details are not reproduced). Note that the script maps
``cifar100`` to ``ds=cifar10`` (cifar_experiment.sh:13-16); ``trainer.py`` takes
``--dataset cifar100`` (trainer.py:21-22), which is what ``:cifar100,...`` means here.
"""

from configs import base


def get_config(arg=None):
  c = base.cifar_recipe(arg, "fmix")
  fmix = c.mixers.fmix
  fmix.alpha = 1.0
  fmix.decay_power = 3.0
  fmix.max_soft = 0.0
  fmix.spectrum = "reference"
  fmix.prob = 1.0
  fmix.mode = "batch"
  c.loss = "ce"
  c.learning_rate = 0.1
  c.batch_size = 128
  c.num_epochs = 200
  c.schedule = "step"
  c.milestones = (100, 150)
  c.gamma = 0.1
  c.warmup_epochs = 0.0
  c.momentum = 0.9
  c.nesterov = False
  c.weight_decay = 1e-4
  c.padding = 4
  c.flip = True
  return c
