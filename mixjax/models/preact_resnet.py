"""Pre-activation ResNets for CIFAR-sized images, with Manifold Mixup layers.

The CIFAR variant of He et al. (2016), "Identity Mappings in Deep Residual
Networks" (arXiv:1603.05027), in the two forms the papers' code uses
(``variant=``):

``"manifold_mixup"`` (default): vikasverma1077/manifold_mixup
  ``supervised/models/preresnet.py`` (``PreActResNet``, lines 66–86 and
  126–145; ``preactresnet18/34``, lines 153–157), the network of the Manifold
  Mixup paper (Verma et al., 2019, arXiv:1806.05236):

  * stem: 3×3 conv, 64 channels, stride 1, no bias, **no norm**, no max-pool
    (line 73);
  * 4 stages of pre-activation basic blocks (``PreActBlock``, lines 13–35),
    64/128/256/512 channels, strides 1/2/2/2 ((2, 2, 2, 2) blocks for -18,
    (3, 4, 6, 3) for -34), a bias-free 1×1 projection of the pre-activated
    input where the shape changes, and **the raw input ``x``** as the identity
    shortcut (line 31).

``"mixup_cifar10"``: facebookresearch/mixup-cifar10 ``models/resnet.py``
  (``ResNet``, lines 130–169, with ``PreActBlock``, lines 47–70; ``ResNet18 =
  ResNet(PreActBlock, [2, 2, 2, 2])``, line 173), the network of the mixup
  paper's CIFAR experiments (Zhang et al., 2018, arXiv:1710.09412):

  * stem: 3×3 conv, 64 channels, no bias, **then BatchNorm + ReLU** (lines
    135–136, 154–156);
  * the same stages, but the identity shortcut carries **the pre-activation
    ``ReLU(BN(x))``** (line 66: ``self.shortcut(out)`` with an empty
    ``nn.Sequential``).

  That file's ``ResNet34`` (line 176) is a *post*-activation ``BasicBlock``
  network; ``preact_resnet34(variant="mixup_cifar10")`` is
  ``ResNet(PreActBlock, [3, 4, 6, 3])`` built from the same file's classes.

Both: no final BatchNorm/ReLU (the references pool straight after ``layer4``;
``final_norm=True`` adds them, +2·512 = 1,024 parameters), global average pool
(the references' ``avg_pool2d(out, 4)`` on 32×32 inputs), a dense layer with
bias.

Trainable parameters (the ``'params'`` collection) for 10 classes, as the
references' layer lists give them (``tests/test_models.py`` derives them):

=====================  ===============  ===============
network                manifold_mixup   mixup_cifar10
=====================  ===============  ===============
PreActResNet-18        11,171,146       11,171,274
PreActResNet-34        21,279,306       21,279,434
=====================  ===============  ===============

(the stem BatchNorm adds 2·64 = 128; each further class adds 513).

Initialisation (``param_init``, ``init=`` in the factories and ``get_model``):
``"he"`` (default) draws He-normal fan-out conv
kernels and Flax's default dense layer; ``"pytorch"`` is what both references
use, since neither re-initialises: PyTorch's default ``reset_parameters``,
U(±1/√fan_in) for conv/linear weights and the linear bias, BatchNorm scale 1,
bias 0.

Eligible mix layers (both variants): 0 = the input, ``i`` = the output of stage
``i`` (1–4), as in the Manifold Mixup reference (lines 123–140). The default
``mix_layers=(0, 1, 2)`` is the paper's choice for PreActResNets
(``random.randint(0, 2)``, line 107).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import chex
import flax.linen as nn
import jax.numpy as jnp

from mixjax.manifold import MixPlan
from mixjax.models import _common

__all__ = ["PREACT_VARIANTS", "PreActResNet", "preact_resnet18", "preact_resnet34"]

#: The reference networks :class:`PreActResNet` reproduces (see the module doc).
PREACT_VARIANTS = ("manifold_mixup", "mixup_cifar10")


class PreActResNet(_common.MixLayers, nn.Module):
  """A CIFAR pre-activation ResNet that applies a :class:`~mixjax.MixPlan`.

  Inputs are float ``[B, H, W, C]`` images already normalised by the caller;
  integer inputs (e.g. uint8) raise ``ValueError``. Calls with ``train=True``
  update BatchNorm statistics, so pass ``mutable=['batch_stats']`` to
  ``apply``.

  Attributes:
    stage_sizes: blocks per stage, e.g. ``(2, 2, 2, 2)`` for PreActResNet-18.
    num_classes: number of output logits.
    num_filters: width of the stem and the first stage (doubled per stage).
    variant: ``"manifold_mixup"`` (raw-input identity shortcuts, bare stem) or
      ``"mixup_cifar10"`` (stem BatchNorm + ReLU, pre-activated identity
      shortcuts); see :data:`PREACT_VARIANTS` and the module doc.
    final_norm: add BatchNorm + ReLU after the last stage (in neither
      reference; +1,024 parameters for 512 channels).
    param_init: ``"he"`` (He-normal fan-out convs, Flax's default dense layer)
      or ``"pytorch"`` (PyTorch's default layer initialisation, as both
      references); the factories and ``get_model`` take it as ``init=``.
    mix_layers: the eligible layers the model mixes at (0 = input, ``i`` = output
      of stage ``i``); pass it to :func:`mixjax.sample_plan`.
    dtype: computation dtype (float32 or bfloat16); logits are float32.
    param_dtype: parameter dtype.
    axis_name: BatchNorm axis for cross-device statistics; None (default) keeps
      per-device statistics.
  """
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  num_classes: int = 10
  num_filters: int = 64
  variant: str = "manifold_mixup"
  final_norm: bool = False
  param_init: str = "he"
  mix_layers: tuple[int, ...] = (0, 1, 2)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  def __post_init__(self) -> None:
    object.__setattr__(self, "stage_sizes", tuple(self.stage_sizes))
    _common.check_choice(self.variant, PREACT_VARIANTS, "variant", type(self).__name__)
    _common.check_choice(self.param_init, _common.INITS, "param_init",
                         type(self).__name__)
    super().__post_init__()

  @property
  def num_mix_layers(self) -> int:
    """The number of eligible layers: the input and one per stage."""
    return len(self.stage_sizes) + 1

  @nn.compact
  def __call__(
      self,
      x: chex.Array,
      plan: MixPlan | None = None,
      train: bool = False,
      return_hidden: bool = False,
  ) -> chex.Array | tuple[chex.Array, tuple[chex.Array, ...]]:
    """Runs the network, mixing at the plan's layer if it is in ``mix_layers``.

    Args:
      x: float ``[B, H, W, C]``, normalised.
      plan: a :class:`~mixjax.MixPlan` (its layer may be traced) or None.
      train: use batch statistics and update the running ones.
      return_hidden: also return the activations at every eligible layer.

    Returns:
      float32 logits ``[B, num_classes]``; with ``return_hidden``,
      ``(logits, hidden)`` where ``hidden[i]`` is the activation at eligible
      layer ``i`` (after mixing there), ``len(hidden) == num_mix_layers``.
    """
    _common.check_float_input(x, 4, type(self).__name__)
    hidden = []
    _common.check_plan(plan, self.mix_layers, type(self).__name__)
    x = _common.maybe_mix(plan, 0, x, self.mix_layers)
    hidden.append(x)
    mixup_cifar10 = self.variant == "mixup_cifar10"
    x = _common.conv(self.num_filters, 3, 1, self.dtype, self.param_dtype,
                     "stem", init=self.param_init)(x)
    if mixup_cifar10:  # mixup-cifar10 models/resnet.py:154-156.
      x = nn.relu(_common.batch_norm(train, self.dtype, self.param_dtype,
                                     self.axis_name, "stem_bn")(x))
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = _common.PreActBlock(
            self.num_filters * 2**i, stride=2 if i > 0 and j == 0 else 1,
            preact_identity=mixup_cifar10, param_init=self.param_init,
            dtype=self.dtype, param_dtype=self.param_dtype, axis_name=self.axis_name,
            name=f"stage{i + 1}_block{j}")(x, train)
      x = _common.maybe_mix(plan, i + 1, x, self.mix_layers)
      hidden.append(x)
    if self.final_norm:
      x = nn.relu(_common.batch_norm(train, self.dtype, self.param_dtype,
                                     self.axis_name, "final_bn")(x))
    x = jnp.mean(x, axis=(1, 2))
    logits = _common.dense(self.num_classes, x.shape[-1], self.dtype,
                           self.param_dtype, "head", init=self.param_init)(x)
    logits = logits.astype(jnp.float32)
    return (logits, tuple(hidden)) if return_hidden else logits


def preact_resnet18(
    num_classes: int = 10, variant: str = "manifold_mixup", init: str | None = None,
    **kwargs: Any,
) -> PreActResNet:
  """PreActResNet-18 (see the module doc for the two references).

  Trainable parameters for 10 classes: 11,171,146 (``"manifold_mixup"``,
  manifold_mixup ``preresnet.py`` ``preactresnet18``) or 11,171,274
  (``"mixup_cifar10"``, mixup-cifar10 ``models/resnet.py`` ``ResNet18``).
  """
  return PreActResNet(stage_sizes=(2, 2, 2, 2), num_classes=num_classes,
                      variant=variant, **_common.with_param_init(init, kwargs))


def preact_resnet34(
    num_classes: int = 10, variant: str = "manifold_mixup", init: str | None = None,
    **kwargs: Any,
) -> PreActResNet:
  """PreActResNet-34 (see the module doc for the two references).

  Trainable parameters for 10 classes: 21,279,306 (``"manifold_mixup"``,
  manifold_mixup ``preresnet.py`` ``preactresnet34``) or 21,279,434
  (``"mixup_cifar10"``: mixup-cifar10's ``ResNet(PreActBlock, [3, 4, 6, 3])``;
  that file's own ``ResNet34`` is a post-activation network).
  """
  return PreActResNet(stage_sizes=(3, 4, 6, 3), num_classes=num_classes,
                      variant=variant, **_common.with_param_init(init, kwargs))
