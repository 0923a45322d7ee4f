r"""CutMix on CIFAR-10/100, with github.com/clovaai/CutMix-PyTorch's CIFAR settings.

Yun et al., 2019, "CutMix: Regularization Strategy to Train Strong Classifiers
with Localizable Features" (ICCV), Sec. 4.1.2. Every value below is read from that
repository at commit 2d8eb68: its CIFAR command (README.md:45-56, CIFAR-100;
``train.py`` treats CIFAR-10 the same) and ``train.py``:

  field                value          CutMix-PyTorch
  methods              cutmix         train.py:227-240
  mixers.cutmix.alpha  1.0            README.md:54 (--beta 1.0); train.py:230 (λ ~ Beta(β, β))
  mixers.cutmix.prob   0.5            README.md:55 (--cutmix_prob 0.5); train.py:227-228
  mixers.cutmix.mode   "batch"        train.py:227-237 (one draw, λ, box, permutation per batch)
  loss                 "ce"           train.py:171, 240 (CrossEntropyLoss, λ-mixed)
  learning_rate        0.25           README.md:51 (--lr 0.25)
  batch_size           64             README.md:50 (--batch_size 64)
  num_epochs           300            README.md:53 (--epochs 300)
  milestones, gamma    (150, 225),    train.py:369-372 (lr·0.1^(e // 150)·0.1^(e // 225)
                       0.1            for 300 epochs), set before epoch e: train.py:179-181
  schedule, warmup     step, 0        train.py:369-372 (no warm-up)
  momentum, nesterov   0.9, True      train.py:42 (default 0.9), 173-175 (nesterov=True)
  weight_decay         1e-4           train.py:44 (default 1e-4)
  padding, flip        4, True        train.py:80-82 (RandomCrop(32, padding=4), flip)

The reference's CIFAR network is PyramidNet-200 with α = 240 (README.md:46-49),
which mixjax does not have: the recipe keeps the model of its argument
(PreActResNet-18 or WRN-28-10) and the reference's other values. Its command
used 2 GPUs (README.md:43), i.e. BatchNorm statistics over 32 images each.

For the mixup recipe's 200-epoch budget instead:
  python train.py --config=configs/cifar_cutmix.py --config.num_epochs=200 \
    --config.milestones="(100,150)" --config.batch_size=128 --config.learning_rate=0.1
"""

from configs import base


def get_config(arg=None):
  c = base.cifar_recipe(arg, "cutmix")
  c.mixers.cutmix.alpha = 1.0
  c.mixers.cutmix.prob = 0.5
  c.mixers.cutmix.mode = "batch"
  c.loss = "ce"
  c.learning_rate = 0.25
  c.batch_size = 64
  c.num_epochs = 300
  c.schedule = "step"
  c.milestones = (150, 225)
  c.gamma = 0.1
  c.warmup_epochs = 0.0
  c.momentum = 0.9
  c.nesterov = True
  c.weight_decay = 1e-4
  c.padding = 4
  c.flip = True
  return c
