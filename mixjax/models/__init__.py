"""Flax (linen) models that apply a :class:`~mixjax.MixPlan` (Manifold Mixup).

Every model is called as ``model.apply(variables, x, plan=None, train=False)``
and mixes at the plan's drawn layer when it is one of ``model.mix_layers``
(0 = the input, ``i`` = the output of stage / group / hidden layer ``i``).
Draw plans with ``mixjax.sample_plan(key, batch, model.mix_layers, alpha=2.0)``;
the drawn layer is a traced int, so one compiled step serves every layer.
Inputs are float and already normalised (integer images raise ``ValueError``).
"""

from mixjax.models._common import INITS
from mixjax.models.preact_resnet import (
    PREACT_VARIANTS,
    PreActResNet,
    preact_resnet18,
    preact_resnet34,
)
from mixjax.models.registry import MODELS, get_model, list_models
from mixjax.models.resnet import (
    RESNET_BLOCKS,
    BasicBlock,
    Bottleneck,
    ResNet,
    resnet18,
    resnet50,
)
from mixjax.models.small import MLP, SmallCNN, mlp, small_cnn
from mixjax.models.vit import VisionTransformer, vit_s16
from mixjax.models.wide_resnet import WRN_VARIANTS, WideBasic, WideResNet, wide_resnet28_10

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "INITS",
    "MLP",
    "MODELS",
    "PREACT_VARIANTS",
    "RESNET_BLOCKS",
    "PreActResNet",
    "ResNet",
    "SmallCNN",
    "VisionTransformer",
    "WRN_VARIANTS",
    "WideBasic",
    "WideResNet",
    "get_model",
    "list_models",
    "mlp",
    "preact_resnet18",
    "preact_resnet34",
    "resnet18",
    "resnet50",
    "small_cnn",
    "vit_s16",
    "wide_resnet28_10",
]
