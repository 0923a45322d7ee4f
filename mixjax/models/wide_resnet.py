"""Wide Residual Networks for CIFAR-sized images, with Manifold Mixup layers.

Zagoruyko & Komodakis (2016), "Wide Residual Networks" (arXiv:1605.07146), in
the form of the common PyTorch reference xternalz/WideResNet-pytorch
(``wideresnet.py``), as used for Manifold Mixup (Verma et al., 2019):

* stem: 3×3 conv, 16 channels, no bias;
* 3 groups of ``(depth − 4) / 6`` pre-activation wide basic blocks, widths
  ``16k, 32k, 64k`` (160/320/640 for WRN-28-10), strides 1/2/2;
  block: ``a = ReLU(BN(x))``, ``conv3x3_s → BN → ReLU → [dropout] → conv3x3``,
  plus a bias-free 1×1 conv projection of ``a`` in the first block of each
  group (where the width changes) and the identity elsewhere;
* final BN + ReLU, global average pool, dense layer with bias.

**All convs are bias-free** and the shortcut is a bias-free 1×1 projection: this
variant (xternalz's) has exactly **36,479,194** trainable parameters for
WRN-28-10 with 10 classes. Dropout adds none; conv biases as in the Manifold
Mixup repo's meliketoy-style ``wide_basic`` would add 10,096 (36,489,290).

Eligible mix layers: 0 = the input, ``i`` = the output of group ``i`` (1–3,
before the final BN). The default ``mix_layers=(0, 1, 2)`` follows the paper.
"""

from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax.numpy as jnp

from mixjax.manifold import MixPlan
from mixjax.models import _common

__all__ = ["WideResNet", "wide_resnet28_10"]


class WideResNet(_common.MixLayers, nn.Module):
  """A CIFAR Wide-ResNet (WRN-depth-k) that applies a :class:`~mixjax.MixPlan`.

  Inputs are float ``[B, H, W, C]`` images already normalised by the caller;
  integer inputs (e.g. uint8) raise ``ValueError``. Calls with ``train=True``
  update BatchNorm statistics (pass ``mutable=['batch_stats']``) and, with
  ``dropout_rate > 0``, need ``rngs={'dropout': key}``.

  Attributes:
    depth: total depth, ``6n + 4`` (28 → 4 blocks per group).
    widen_factor: ``k``; group widths are ``16k, 32k, 64k``.
    num_classes: number of output logits.
    dropout_rate: dropout inside each block (0 in xternalz's default; the WRN
      paper also uses 0.3).
    mix_layers: the eligible layers the model mixes at (0 = input, ``i`` = output
      of group ``i``); pass it to :func:`mixjax.sample_plan`.
    dtype: computation dtype (float32 or bfloat16); logits are float32.
    param_dtype: parameter dtype.
    axis_name: BatchNorm axis for cross-device statistics; None (default) keeps
      per-device statistics.
  """
  depth: int = 28
  widen_factor: int = 10
  num_classes: int = 10
  dropout_rate: float = 0.0
  mix_layers: tuple[int, ...] = (0, 1, 2)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  def __post_init__(self) -> None:
    if self.depth < 10 or (self.depth - 4) % 6:
      raise ValueError(f"WideResNet depth must be 6n + 4 with n >= 1, got {self.depth}.")
    super().__post_init__()

  @property
  def num_mix_layers(self) -> int:
    """The number of eligible layers: the input and one per group (4)."""
    return 4

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
      train: use batch statistics, update the running ones, apply dropout.
      return_hidden: also return the activations at every eligible layer.

    Returns:
      float32 logits ``[B, num_classes]``; with ``return_hidden``,
      ``(logits, hidden)`` where ``hidden[i]`` is the activation at eligible
      layer ``i`` (after mixing there), ``len(hidden) == 4``.
    """
    _common.check_float_input(x, 4, type(self).__name__)
    blocks_per_group = (self.depth - 4) // 6
    hidden = []
    _common.check_plan(plan, self.mix_layers, type(self).__name__)
    x = _common.maybe_mix(plan, 0, x, self.mix_layers)
    hidden.append(x)
    x = _common.conv(16, 3, 1, self.dtype, self.param_dtype, "stem")(x)
    for i, width in enumerate((16, 32, 64)):
      for j in range(blocks_per_group):
        x = _common.PreActBlock(
            width * self.widen_factor, stride=2 if i > 0 and j == 0 else 1,
            dropout_rate=self.dropout_rate, dtype=self.dtype,
            param_dtype=self.param_dtype, axis_name=self.axis_name,
            name=f"group{i + 1}_block{j}")(x, train)
      x = _common.maybe_mix(plan, i + 1, x, self.mix_layers)
      hidden.append(x)
    x = nn.relu(_common.batch_norm(train, self.dtype, self.param_dtype,
                                   self.axis_name, "final_bn")(x))
    x = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(self.num_classes, dtype=self.dtype,
                      param_dtype=self.param_dtype, name="head")(x)
    logits = logits.astype(jnp.float32)
    return (logits, tuple(hidden)) if return_hidden else logits


def wide_resnet28_10(num_classes: int = 10, **kwargs: Any) -> WideResNet:
  """WRN-28-10: 36,479,194 trainable parameters for 10 classes."""
  return WideResNet(depth=28, widen_factor=10, num_classes=num_classes, **kwargs)
