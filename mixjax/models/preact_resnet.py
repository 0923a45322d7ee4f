"""Pre-activation ResNets for CIFAR-sized images, with Manifold Mixup layers.

The CIFAR variant of He et al. (2016), "Identity Mappings in Deep Residual
Networks" (arXiv:1603.05027), exactly as in facebookresearch/mixup-cifar10
``models/preactresnet.py`` and the Manifold Mixup paper (Verma et al., 2019,
arXiv:1806.05236):

* stem: 3×3 conv, 64 channels, stride 1, no bias, no norm, no max-pool;
* 4 stages of pre-activation basic blocks, 64/128/256/512 channels, strides
  1/2/2/2 ((2, 2, 2, 2) blocks for -18, (3, 4, 6, 3) for -34), with a bias-free
  1×1 projection of the pre-activated input where the shape changes;
* no final BatchNorm/ReLU (the reference pools straight after ``layer4``);
  ``final_norm=True`` adds them (+2·512 = 1,024 parameters);
* global average pool (the reference's ``avg_pool2d(out, 4)`` on 32×32 inputs),
  then a dense layer with bias.

Trainable parameters (the ``'params'`` collection) for 10 classes:
PreActResNet-18 **11,171,146**, PreActResNet-34 **21,279,306** (each further
class adds 513); ``final_norm=True`` adds 1,024.

Eligible mix layers: 0 = the input, ``i`` = the output of stage ``i`` (1–4). The
default ``mix_layers=(0, 1, 2)`` is the paper's choice for PreActResNets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import chex
import flax.linen as nn
import jax.numpy as jnp

from mixjax.manifold import MixPlan
from mixjax.models import _common

__all__ = ["PreActResNet", "preact_resnet18", "preact_resnet34"]


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
    final_norm: add BatchNorm + ReLU after the last stage (not in the
      mixup-cifar10 reference; +1,024 parameters for 512 channels).
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
  final_norm: bool = False
  mix_layers: tuple[int, ...] = (0, 1, 2)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  def __post_init__(self) -> None:
    object.__setattr__(self, "stage_sizes", tuple(self.stage_sizes))
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
    x = _common.conv(self.num_filters, 3, 1, self.dtype, self.param_dtype,
                     "stem")(x)
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = _common.PreActBlock(
            self.num_filters * 2**i, stride=2 if i > 0 and j == 0 else 1,
            dtype=self.dtype, param_dtype=self.param_dtype,
            axis_name=self.axis_name, name=f"stage{i + 1}_block{j}")(x, train)
      x = _common.maybe_mix(plan, i + 1, x, self.mix_layers)
      hidden.append(x)
    if self.final_norm:
      x = nn.relu(_common.batch_norm(train, self.dtype, self.param_dtype,
                                     self.axis_name, "final_bn")(x))
    x = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(self.num_classes, dtype=self.dtype,
                      param_dtype=self.param_dtype, name="head")(x)
    logits = logits.astype(jnp.float32)
    return (logits, tuple(hidden)) if return_hidden else logits


def preact_resnet18(num_classes: int = 10, **kwargs: Any) -> PreActResNet:
  """PreActResNet-18: 11,171,146 trainable parameters for 10 classes."""
  return PreActResNet(stage_sizes=(2, 2, 2, 2), num_classes=num_classes, **kwargs)


def preact_resnet34(num_classes: int = 10, **kwargs: Any) -> PreActResNet:
  """PreActResNet-34: 21,279,306 trainable parameters for 10 classes."""
  return PreActResNet(stage_sizes=(3, 4, 6, 3), num_classes=num_classes, **kwargs)
