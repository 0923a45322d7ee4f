r"""Manifold Mixup on CIFAR-10/100, as github.com/vikasverma1077/manifold_mixup trains it.

Verma et al., 2019, "Manifold Mixup: Better Representations by Interpolating
Hidden States" (ICML). Every value below is read from that repository at commit
870ef77 (directory ``supervised/``); README lines are the Manifold Mixup commands
(CIFAR-10: PreActResNet-18 :33, PreActResNet-34 :48, WRN-28-10 :63; CIFAR-100: :81,
:96, :111):

  field                value                  manifold_mixup/supervised
  methods              manifold_mixup         README.md (--train mixup_hidden)
  mixers.manifold_mixup.alpha  2.0            README.md (--mixup_alpha 2.0)
  mix_layers           (0, 1, 2)              models/preresnet.py:106-107, wide_resnet.py:120-121
                                              (random.randint(0, 2): input, after stage 1, 2)
  mixers.manifold_mixup.mode  "batch"         models/preresnet.py:115-118 (one λ per batch),
                                              utils.py:127-131 (one permutation)
  loss                 "softmax_bce"          main.py:184-185, 237 (bce_loss(softmax(output), ...))
  learning_rate        0.1                    README.md (--learning_rate 0.1)
  momentum, nesterov   0.9, True              README.md (--momentum 0.9); main.py:391-392
  weight_decay         1e-4                   README.md (--decay 0.0001); main.py:391-392
  batch_size           100                    main.py:62 (the commands keep the default)
  num_epochs           2000 (PreActResNet),   README.md:33, 48, 81, 96 (--epochs 2000);
                       400 (WRN-28-10)        README.md:63, 111 (--epochs 400)
  milestones, gamma    (500, 1000, 1500),     README.md:33, 48, 81, 96 (--schedule --gammas 0.1);
                       (200, 300) for WRN,    README.md:63, 111. main.py:152-163, 426-427:
                       0.1                    lr·γ from the start of epoch m (0-based), as ours.
  schedule, warmup     step, 0                main.py:152-163 (no warm-up)
  padding, flip        2, True                load_data.py:178-182 (flip, RandomCrop(32,
                                              padding=2)), through main.py:377

The loss is the code's, not the text's: the paper writes a generic loss ℓ; the
code trains ERM, Mixup and Manifold Mixup with BCELoss of the softmax (mean over
B·K; mixjax.softmax_bce), whose gradient at a uniform softmax is 1/(K − 1) of the
cross-entropy's (0.111× for CIFAR-10, 0.0101× for CIFAR-100), so lr 0.1 and
weight decay 1e-4 mean something else with ``--config.loss=ce``. Reported test
error (PreActResNet-18): CIFAR-10 2.89%, CIFAR-100 20.34%. The networks are the
repository's: mixjax's default ``preact_resnet18`` / ``preact_resnet34`` /
``wide_resnet28_10`` (``variant="manifold_mixup"``) follow its
supervised/models/preresnet.py and wide_resnet.py, initialised as its main.py
leaves them, with PyTorch's defaults (``init="pytorch"``; the WRN file's
``conv_init`` is never applied by main.py).

For a 200-epoch budget comparable with the other recipes:
  python train.py --config=configs/cifar_manifold_mixup.py \
    --config.num_epochs=200 --config.milestones="(100,150)" --config.batch_size=128
"""

from configs import base

# num_epochs and milestones per network (README.md lines above).
SCHEDULES = {
    "preact_resnet18": (2000, (500, 1000, 1500)),
    "preact_resnet34": (2000, (500, 1000, 1500)),
    "wide_resnet28_10": (400, (200, 300)),
}


def get_config(arg=None):
  c = base.cifar_recipe(arg, "manifold_mixup")
  if c.model not in SCHEDULES:
    raise ValueError(
        f"the Manifold Mixup README gives schedules for {sorted(SCHEDULES)}, got "
        f"{c.model!r}.")
  c.mixers.manifold_mixup.alpha = 2.0
  c.mix_layers = (0, 1, 2)
  c.mixers.manifold_mixup.mode = "batch"
  c.loss = "softmax_bce"
  c.learning_rate = 0.1
  c.momentum = 0.9
  c.nesterov = True
  c.weight_decay = 1e-4
  c.batch_size = 100
  c.num_epochs, c.milestones = SCHEDULES[c.model]
  c.schedule = "step"
  c.gamma = 0.1
  c.warmup_epochs = 0.0
  c.padding = 2
  c.flip = True
  c.model_kwargs.variant = "manifold_mixup"
  c.model_kwargs.init = "pytorch"
  return c
