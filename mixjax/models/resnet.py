"""ImageNet ResNets in torchvision's layout, with Manifold Mixup layers.

He et al. (2016), "Deep Residual Learning for Image Recognition"
(arXiv:1512.03385), as pytorch/vision ``torchvision/models/resnet.py`` builds
it (classes ``BasicBlock``, ``Bottleneck``, ``ResNet`` and its ``_make_layer``;
``resnet18`` / ``resnet50`` are ``_resnet(BasicBlock, [2, 2, 2, 2])`` /
``_resnet(Bottleneck, [3, 4, 6, 3])``; cited by name, since the line numbers
move between torchvision releases):

* stem: 7×7 conv, 64 channels, stride 2, padding 3, no bias → BatchNorm → ReLU
  → 3×3 max-pool, stride 2, padding 1 (``conv1``, ``bn1``, ``relu``,
  ``maxpool``);
* 4 stages (``layer1``–``layer4``) of 64/128/256/512 "planes", strides
  1/2/2/2:

  - ``block="basic"`` (``BasicBlock``, expansion 1): ``conv3x3_s → BN → ReLU →
    conv3x3 → BN``;
  - ``block="bottleneck"`` (``Bottleneck``, expansion 4): ``conv1x1 → BN →
    ReLU → conv3x3_s → BN → ReLU → conv1x1 (4·planes) → BN``, the stride on the
    **3×3** conv (torchvision's "ResNet V1.5"; the paper strides the first
    1×1);

  every block adds its shortcut and applies ReLU, ``ReLU(out + shortcut)``;
  the shortcut is the input, or ``BN(conv1x1_s(x))`` (``downsample``, no
  bias) where the stride or the channel count changes;
* global average pool (``AdaptiveAvgPool2d((1, 1))``), a dense layer with bias
  (``fc``).

All convs are bias-free; every BatchNorm has PyTorch's defaults (eps 1e-5,
momentum 0.1). Inputs may be any size the strides allow (224×224 on ImageNet:
the map is 7×7 before the pool; 32×32 leaves 1×1).

Trainable parameters (the ``'params'`` collection), as torchvision's layer list
gives them (``tests/test_resnet.py`` derives them; torchvision's model zoo
states the same numbers): for 1,000 classes, **ResNet-18 11,689,512** and
**ResNet-50 25,557,032** (each further class adds 513 resp. 2,049).

Initialisation (``param_init``, ``init=`` in the factories and ``get_model``).
torchvision re-initialises (the ``self.modules()`` loop at the end of
``ResNet.__init__``): He-normal fan-out convs
(``kaiming_normal_(mode="fan_out", nonlinearity="relu")``), BatchNorm scale 1
and bias 0, and leaves the ``fc`` layer at PyTorch's default U(±1/√fan_in)
for weight and bias. So the convs are He-normal fan-out under both options,
and ``init`` only picks the head: ``"pytorch"`` is torchvision's exactly,
``"he"`` (default, as every mixjax ResNet) Flax's default dense kernel with a
zero bias. ``zero_init_residual=True`` (torchvision's option, Goyal et al.
2017, arXiv:1706.02677) zeroes the scale of each block's last BatchNorm
(``bn2`` of a basic block, ``bn3`` of a bottleneck), so that
every block starts as ``ReLU(shortcut)``.

Eligible mix layers: 0 = the input, ``i`` = the output of stage ``i``
(``layer1``–``layer4``, after its last block's ReLU). The stem and its max-pool
belong to stage 1: nothing mixes between them and ``layer1``. The default
``mix_layers=(0, 1, 2)`` is the Manifold Mixup paper's choice for its ResNets
(vikasverma1077/manifold_mixup ``supervised/models/preresnet.py``,
``random.randint(0, 2)``, line 107), as for :class:`~mixjax.models.PreActResNet`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import chex
import flax.linen as nn
import jax.numpy as jnp

from mixjax.manifold import MixPlan
from mixjax.models import _common

__all__ = ["RESNET_BLOCKS", "BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet50"]

#: The residual blocks :class:`ResNet` builds its stages from.
RESNET_BLOCKS = ("basic", "bottleneck")


def _batch_norm(train: bool, dtype: Any, param_dtype: Any, axis_name: str | None,
                name: str, zero_scale: bool = False) -> nn.BatchNorm:
  """:func:`_common.batch_norm` (PyTorch's defaults), with scale 0 if ``zero_scale``."""
  if not zero_scale:
    return _common.batch_norm(train, dtype, param_dtype, axis_name, name)
  # The same BatchNorm as _common.batch_norm's (PyTorch's eps 1e-5, momentum 0.1),
  # but for scale_init, which that helper does not take.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      dtype=dtype, param_dtype=param_dtype, axis_name=axis_name,
                      scale_init=nn.initializers.zeros, name=name)


class _Block(nn.Module):
  """Fields and the shortcut shared by :class:`BasicBlock` and :class:`Bottleneck`."""
  features: int
  stride: int = 1
  zero_init_residual: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  expansion: ClassVar[int] = 1

  def _conv(self, features: int, kernel: int, stride: int, name: str) -> nn.Conv:
    # torchvision's convs: bias-free, He-normal fan-out under either init.
    return _common.conv(features, kernel, stride, self.dtype, self.param_dtype, name,
                        init="he")

  def _norm(self, train: bool, name: str, last: bool = False) -> nn.BatchNorm:
    return _batch_norm(train, self.dtype, self.param_dtype, self.axis_name, name,
                       zero_scale=last and self.zero_init_residual)

  def _shortcut(self, x: chex.Array, train: bool) -> chex.Array:
    """``x``, or ``BN(conv1x1_s(x))`` where the stride or the width changes."""
    out_features = self.features * self.expansion
    if self.stride == 1 and x.shape[-1] == out_features:
      return x
    x = self._conv(out_features, 1, self.stride, "shortcut")(x)
    return self._norm(train, "shortcut_bn")(x)


class BasicBlock(_Block):
  """torchvision's ``BasicBlock`` (``torchvision/models/resnet.py``).

  ``ReLU(BN(conv3x3(ReLU(BN(conv3x3_s(x))))) + shortcut)``, where ``shortcut =
  BN(conv1x1_s(x))`` if the stride or the width changes, ``x`` otherwise.

  Attributes:
    features: output channels ("planes"; expansion 1).
    stride: stride of the first conv and of the projection.
    zero_init_residual: initialise ``bn2``'s scale to 0 (the block starts as
      ``ReLU(shortcut)``).
    dtype: computation dtype.
    param_dtype: parameter dtype.
    axis_name: BatchNorm cross-device axis, or None.
  """

  @nn.compact
  def __call__(self, x: chex.Array, train: bool = False) -> chex.Array:
    out = self._conv(self.features, 3, self.stride, "conv1")(x)
    out = nn.relu(self._norm(train, "bn1")(out))
    out = self._conv(self.features, 3, 1, "conv2")(out)
    out = self._norm(train, "bn2", last=True)(out)
    return nn.relu(out + self._shortcut(x, train))


class Bottleneck(_Block):
  """torchvision's ``Bottleneck`` (``torchvision/models/resnet.py``).

  ``ReLU(BN(conv1x1(ReLU(BN(conv3x3_s(ReLU(BN(conv1x1(x)))))))) + shortcut)``
  with ``features`` channels inside and ``4·features`` out; the stride is on the
  3×3 conv (ResNet V1.5). ``shortcut = BN(conv1x1_s(x))`` where the stride or
  the width changes, ``x`` otherwise.

  Attributes:
    features: inner channels ("planes"); the block outputs ``4·features``.
    stride: stride of the 3×3 conv and of the projection.
    zero_init_residual: initialise ``bn3``'s scale to 0 (the block starts as
      ``ReLU(shortcut)``).
    dtype: computation dtype.
    param_dtype: parameter dtype.
    axis_name: BatchNorm cross-device axis, or None.
  """

  expansion: ClassVar[int] = 4

  @nn.compact
  def __call__(self, x: chex.Array, train: bool = False) -> chex.Array:
    out = self._conv(self.features, 1, 1, "conv1")(x)
    out = nn.relu(self._norm(train, "bn1")(out))
    out = self._conv(self.features, 3, self.stride, "conv2")(out)
    out = nn.relu(self._norm(train, "bn2")(out))
    out = self._conv(self.features * self.expansion, 1, 1, "conv3")(out)
    out = self._norm(train, "bn3", last=True)(out)
    return nn.relu(out + self._shortcut(x, train))


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(_common.MixLayers, nn.Module):
  """A torchvision-layout ResNet that applies a :class:`~mixjax.MixPlan`.

  Inputs are float ``[B, H, W, C]`` images already normalised by the caller;
  integer inputs (e.g. uint8) raise ``ValueError``. Calls with ``train=True``
  update BatchNorm statistics, so pass ``mutable=['batch_stats']`` to
  ``apply``.

  Attributes:
    stage_sizes: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18,
      ``(3, 4, 6, 3)`` for ResNet-50.
    block: ``"basic"`` (:class:`BasicBlock`) or ``"bottleneck"``
      (:class:`Bottleneck`); see :data:`RESNET_BLOCKS`.
    num_classes: number of output logits.
    num_filters: width of the stem and of the first stage's planes (doubled per
      stage); 64 in torchvision.
    zero_init_residual: initialise the last BatchNorm scale of every block to 0
      (torchvision's option; Goyal et al., 2017).
    param_init: ``"he"`` (Flax's default dense head, zero bias) or
      ``"pytorch"`` (torchvision's: PyTorch's default ``fc``); the convs are
      He-normal fan-out under both (see the module doc). The factories and
      ``get_model`` take it as ``init=``.
    mix_layers: the eligible layers the model mixes at (0 = input, ``i`` = output
      of stage ``i``); pass it to :func:`mixjax.sample_plan`.
    dtype: computation dtype (float32 or bfloat16); logits are float32.
    param_dtype: parameter dtype.
    axis_name: BatchNorm axis for cross-device statistics; None (default) keeps
      per-device statistics.
  """
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  block: str = "basic"
  num_classes: int = 1000
  num_filters: int = 64
  zero_init_residual: bool = False
  param_init: str = "he"
  mix_layers: tuple[int, ...] = (0, 1, 2)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  def __post_init__(self) -> None:
    object.__setattr__(self, "stage_sizes", tuple(self.stage_sizes))
    _common.check_choice(self.block, RESNET_BLOCKS, "block", type(self).__name__)
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
    x = _common.conv(self.num_filters, 7, 2, self.dtype, self.param_dtype, "stem",
                     init="he")(x)
    x = nn.relu(_batch_norm(train, self.dtype, self.param_dtype, self.axis_name,
                            "stem_bn")(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    block = _BLOCKS[self.block]
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = block(
            self.num_filters * 2**i, stride=2 if i > 0 and j == 0 else 1,
            zero_init_residual=self.zero_init_residual, dtype=self.dtype,
            param_dtype=self.param_dtype, axis_name=self.axis_name,
            name=f"stage{i + 1}_block{j}")(x, train)
      x = _common.maybe_mix(plan, i + 1, x, self.mix_layers)
      hidden.append(x)
    x = jnp.mean(x, axis=(1, 2))
    logits = _common.dense(self.num_classes, x.shape[-1], self.dtype,
                           self.param_dtype, "head", init=self.param_init)(x)
    logits = logits.astype(jnp.float32)
    return (logits, tuple(hidden)) if return_hidden else logits


def resnet18(num_classes: int = 1000, init: str | None = None, **kwargs: Any) -> ResNet:
  """ResNet-18: torchvision's ``resnet18`` (``BasicBlock``, ``[2, 2, 2, 2]``).

  Trainable parameters: 11,689,512 for 1,000 classes (torchvision's number).
  """
  return ResNet(stage_sizes=(2, 2, 2, 2), block="basic", num_classes=num_classes,
                **_common.with_param_init(init, kwargs))


def resnet50(num_classes: int = 1000, init: str | None = None, **kwargs: Any) -> ResNet:
  """ResNet-50: torchvision's ``resnet50`` (``Bottleneck``, ``[3, 4, 6, 3]``, V1.5).

  Trainable parameters: 25,557,032 for 1,000 classes (torchvision's number).
  """
  return ResNet(stage_sizes=(3, 4, 6, 3), block="bottleneck", num_classes=num_classes,
                **_common.with_param_init(init, kwargs))
