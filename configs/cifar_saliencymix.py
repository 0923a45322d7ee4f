r"""SaliencyMix on CIFAR-10/100, with github.com/afm-shahab-uddin/SaliencyMix's CIFAR settings.

Uddin et al., 2021, "SaliencyMix: A Saliency Guided Data Augmentation Strategy for Better
Regularization" (ICLR). Every value below is read from that repository at commit 9ee02b8:
the CIFAR commands (``SaliencyMix_CIFAR/command.sh``:4-28, the same as README.md:24-33)
and ``SaliencyMix_CIFAR/saliencymix.py``:

  field                value            SaliencyMix_CIFAR
  methods              saliencymix      saliencymix.py:234-248
  mixers.saliencymix.
    alpha              1.0              command.sh:4, 19 (--beta 1.0); saliencymix.py:237
    prob               0.5              command.sh:4, 19 (--salmix_prob 0.5); saliencymix.py:234-235
    mode               "batch"          saliencymix.py:237-243 (one λ, one box from the
                                        saliency of images[rand_index[0]], one permutation)
    saliency           "fine_grained"   saliencymix.py:202 (cv2.saliency.
                                        StaticSaliencyFineGrained_create(); see below)
  loss                 "ce"             saliencymix.py:154, 248 (CrossEntropyLoss, λ-mixed)
  learning_rate        0.1              command.sh:4, 19 (--learning_rate 0.1)
  batch_size           128              command.sh:4, 19 (--batch_size 128)
  num_epochs           200              saliencymix.py:33 (default; the commands do not set it)
  milestones, gamma    (61, 121, 161),  saliencymix.py:161 (MultiStepLR [60, 120, 160], 0.2),
                       0.2              stepped after each epoch's training with
                                        scheduler.step(epoch) (272): epoch e trains at
                                        0.1·0.2^#{m <= e - 1}
  schedule, warmup     step, 0          saliencymix.py:158-161 (no warm-up)
  momentum, nesterov   0.9, True        saliencymix.py:155-156
  weight_decay         5e-4             saliencymix.py:156
  padding, flip        4, True          saliencymix.py:69-71 (--data_augmentation)
  WRN dropout          0.3              saliencymix.py:148-150 (WideResNet-28-10, dropRate=0.3)

The saliency detector follows the code, not the text. This recipe used to draw its boxes
from spectral-residual saliency (Hou & Zhang, 2007; the mixer's default), which an
earlier reading of the paper took as its detector; the code the paper cites runs OpenCV's
``StaticSaliencyFineGrained`` (Montabone & Soto, 2010; saliencymix.py:202, and so does
OpenMixup's copy). Where the text and the code differ the code decides:
``saliency="fine_grained"`` is that detector, bit for bit (mixjax.saliency_fine_grained).

The reference's ``resnet18`` (model/resnet.py) is the post-activation CIFAR ResNet-18,
which mixjax does not have: ``preact_resnet18`` is kept for it. Its ``wideresnet`` on
CIFAR is WRN-28-10 with dropout 0.3, which ``wide_resnet28_10`` gets through
``model_kwargs.dropout_rate``. The commands ran on 2 GPUs with DataParallel
(command.sh:4; saliencymix.py:153), i.e. BatchNorm statistics over 64 images each.
"""

from configs import base


def get_config(arg=None):
  c = base.cifar_recipe(arg, "saliencymix")
  salmix = c.mixers.saliencymix
  salmix.alpha = 1.0
  salmix.prob = 0.5
  salmix.mode = "batch"
  # The code's detector (saliencymix.py:202), not the text's: see the docstring.
  salmix.saliency = "fine_grained"
  c.loss = "ce"
  c.learning_rate = 0.1
  c.batch_size = 128
  c.num_epochs = 200
  c.schedule = "step"
  c.milestones = (61, 121, 161)
  c.gamma = 0.2
  c.warmup_epochs = 0.0
  c.momentum = 0.9
  c.nesterov = True
  c.weight_decay = 5e-4
  c.padding = 4
  c.flip = True
  if c.model == "wide_resnet28_10":
    c.model_kwargs.dropout_rate = 0.3
  return c
