"""Models by name: :func:`get_model`.

Trainable parameters for 10 classes unless stated (1,000 for the ImageNet
ResNets and the ViT, at 224×224), per ``variant=`` (``*`` = the default; each
module's doc cites the reference file and lines):

====================  ================  ================================================  ==========
name                  variant           reference                                         params
====================  ================  ================================================  ==========
``preact_resnet18``   manifold_mixup *  manifold_mixup supervised/models/preresnet.py     11,171,146
``preact_resnet18``   mixup_cifar10     mixup-cifar10 models/resnet.py ``ResNet18``       11,171,274
``preact_resnet34``   manifold_mixup *  manifold_mixup supervised/models/preresnet.py     21,279,306
``preact_resnet34``   mixup_cifar10     mixup-cifar10 ResNet(PreActBlock, [3,4,6,3])      21,279,434
``wide_resnet28_10``  manifold_mixup *  manifold_mixup supervised/models/wide_resnet.py   36,489,290
``wide_resnet28_10``  xternalz          xternalz/WideResNet-pytorch wideresnet.py         36,479,194
``resnet18``          —                 torchvision models/resnet.py, 1,000 classes       11,689,512
``resnet50``          —                 torchvision models/resnet.py, 1,000 classes       25,557,032
``vit_s16``           —                 timm vision_transformer.py vit_small_patch16_224  22,050,664
``small_cnn``         —                 2 conv stages, for quick runs                     19,562 C=1
``mlp``               —                 optional linear bottleneck                        depends
====================  ================  ================================================  ==========

The ResNets also take ``init="he"`` (default) or ``init="pytorch"`` (the
reference's own initialisation; see each module's doc). ``resnet18`` and
``resnet50`` also take ``zero_init_residual=True`` (torchvision's option).
``vit_s16`` takes timm's initialisation only, and ``drop_path_rate``,
``dropout_rate``, ``attention_dropout_rate`` (see :mod:`mixjax.models.vit`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn

from mixjax.models.preact_resnet import preact_resnet18, preact_resnet34
from mixjax.models.resnet import resnet18, resnet50
from mixjax.models.small import mlp, small_cnn
from mixjax.models.vit import vit_s16
from mixjax.models.wide_resnet import wide_resnet28_10

__all__ = ["MODELS", "get_model", "list_models"]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "preact_resnet18": preact_resnet18,
    "preact_resnet34": preact_resnet34,
    "wide_resnet28_10": wide_resnet28_10,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vit_s16": vit_s16,
    "small_cnn": small_cnn,
    "mlp": mlp,
}


def list_models() -> tuple[str, ...]:
  """The names :func:`get_model` knows."""
  return tuple(MODELS)


def get_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
  """Builds a model by name.

  Args:
    name: one of :func:`list_models`: ``"preact_resnet18"``,
      ``"preact_resnet34"``, ``"wide_resnet28_10"``, ``"resnet18"``,
      ``"resnet50"``, ``"vit_s16"``, ``"small_cnn"``, ``"mlp"``.
    num_classes: number of output logits.
    **kwargs: further attributes of the model (``variant``, ``init``,
      ``mix_layers``, ``dtype``, ``axis_name``, ``final_norm``,
      ``zero_init_residual``, ``features``, ``drop_path_rate``, ...); an
      unknown ``variant`` or ``init`` raises ``ValueError`` listing the known
      ones.

  Returns:
    The (unbound) Flax module; ``model.mix_layers`` is what to pass to
    :func:`mixjax.sample_plan`.

  Raises:
    ValueError: for an unknown name (the message lists the known ones).
  """
  if name not in MODELS:
    raise ValueError(
        f"Unknown model {name!r}; known models: {', '.join(MODELS)}.")
  return MODELS[name](num_classes=num_classes, **kwargs)
