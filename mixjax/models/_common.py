"""Pieces shared by the mixjax models: input checks, mix layers, norms, blocks.

Every model applies a :class:`~mixjax.MixPlan` at its *eligible layers*: index 0
is the input and index ``i >= 1`` the output of its ``i``-th stage, block group
or hidden layer. ``mix_layers`` picks the subset a model mixes at; it is what a
trainer passes to :func:`mixjax.sample_plan`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import chex
import flax.linen as nn
import jax.numpy as jnp

from mixjax.manifold import MixPlan

Dtype = Any

# He-normal, fan-out: PyTorch's ``kaiming_normal_(mode="fan_out")`` (torchvision
# ResNets) and He et al. (2015).
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def check_float_input(x: chex.Array, min_rank: int, model: str) -> None:
  """Raises ``ValueError`` unless ``x`` is a float array of rank ``>= min_rank``.

  The models never normalise: integer images (e.g. uint8 pixels) must be
  converted and normalised by the caller, ``(x / 255 − mean) / std``.
  """
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(
        f"{model} expects floating inputs that are already normalised, got dtype "
        f"{x.dtype}. Convert and normalise first, e.g. "
        f"(x.astype(jnp.float32) / 255 - mean) / std.")
  if x.ndim < min_rank:
    raise ValueError(
        f"{model} expects inputs of rank >= {min_rank} "
        f"({'[B, H, W, C]' if min_rank == 4 else '[B, ...]'}), got shape "
        f"{tuple(x.shape)}.")


def resolve_mix_layers(
    mix_layers: Sequence[int] | None, num_eligible: int, model: str
) -> tuple[int, ...]:
  """Checks ``mix_layers`` against ``0, …, num_eligible − 1``; None means all."""
  if mix_layers is None:
    return tuple(range(num_eligible))
  layers = tuple(mix_layers)
  if (not layers or len(set(layers)) != len(layers) or
      any(not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < num_eligible
          for i in layers)):
    raise ValueError(
        f"{model}.mix_layers must be distinct indices in 0..{num_eligible - 1} "
        f"(0 = the input), got {mix_layers!r}. Pass plan=None to train without "
        f"mixing.")
  return tuple(sorted(layers))


class MixLayers:
  """Mixin for models whose eligible layers are ``0, …, num_mix_layers − 1``.

  The model defines ``num_mix_layers`` and a ``mix_layers`` field; the field is
  resolved and checked at construction (None means every eligible layer).
  """

  def __post_init__(self) -> None:
    object.__setattr__(self, "mix_layers", resolve_mix_layers(
        self.mix_layers, self.num_mix_layers, type(self).__name__))
    super().__post_init__()

  @property
  def eligible_layers(self) -> tuple[int, ...]:
    """All the indices ``mix_layers`` may hold."""
    return tuple(range(self.num_mix_layers))


def check_plan(plan: MixPlan | None, mix_layers: Sequence[int], model: str) -> None:
  """Raises ``ValueError`` if ``plan`` may draw a layer the model does not mix at.

  Without this check such a draw would mix the labels but not the activations.
  """
  if plan is None or plan.layers is None:
    return
  missing = sorted(set(plan.layers) - set(mix_layers))
  if missing:
    raise ValueError(
        f"the plan may draw layers {missing}, but {model} mixes only at "
        f"mix_layers={tuple(mix_layers)}; draw plans from model.mix_layers or build "
        f"the model with mix_layers covering {tuple(plan.layers)}.")


def maybe_mix(
    plan: MixPlan | None, index: int, hidden: chex.Array, mix_layers: Sequence[int]
) -> chex.Array:
  """``plan.mix_at(index, hidden)`` if ``index`` is one of ``mix_layers``."""
  if plan is None or index not in mix_layers:
    return hidden
  if plan.layers is not None and index not in plan.layers:
    return hidden  # The plan never mixes here: no conditional in the program.
  return plan.mix_at(index, hidden)


def batch_norm(
    train: bool, dtype: Dtype, param_dtype: Dtype, axis_name: str | None,
    name: str | None = None,
) -> nn.BatchNorm:
  """BatchNorm with PyTorch's defaults (momentum 0.1 ≡ Flax 0.9, eps 1e-5)."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      dtype=dtype, param_dtype=param_dtype, axis_name=axis_name,
                      name=name)


def conv(
    features: int, kernel: int, stride: int, dtype: Dtype, param_dtype: Dtype,
    name: str | None = None,
) -> nn.Conv:
  """A bias-free conv with PyTorch's symmetric padding ``(kernel − 1) // 2``."""
  pad = (kernel - 1) // 2
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=False,
                 kernel_init=conv_kernel_init, dtype=dtype, param_dtype=param_dtype,
                 name=name)


class PreActBlock(nn.Module):
  """A pre-activation basic block (He et al., 2016, "Identity Mappings").

  ``a = ReLU(BN(x))``, ``out = conv3x3(ReLU(BN(conv3x3_s(a)))) + shortcut``,
  where ``shortcut = conv1x1_s(a)`` (no bias) when the stride or the width
  changes and ``x`` otherwise: the projection reads the *pre-activated* input,
  as in mixup-cifar10's ``PreActBlock`` and xternalz's WRN ``BasicBlock``.

  Attributes:
    features: output channels.
    stride: stride of the first conv and of the projection.
    dropout_rate: dropout between the two convs (WRN); needs a ``'dropout'``
      RNG when ``train`` and ``> 0``.
    dtype: computation dtype.
    param_dtype: parameter dtype.
    axis_name: BatchNorm cross-device axis, or None.
  """
  features: int
  stride: int = 1
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: chex.Array, train: bool = False) -> chex.Array:
    norm = lambda name: batch_norm(train, self.dtype, self.param_dtype,
                                   self.axis_name, name)
    out = nn.relu(norm("bn1")(x))
    if self.stride != 1 or x.shape[-1] != self.features:
      shortcut = conv(self.features, 1, self.stride, self.dtype, self.param_dtype,
                      "shortcut")(out)
    else:
      shortcut = x
    out = conv(self.features, 3, self.stride, self.dtype, self.param_dtype,
               "conv1")(out)
    out = nn.relu(norm("bn2")(out))
    if self.dropout_rate > 0:
      out = nn.Dropout(self.dropout_rate, deterministic=not train)(out)
    out = conv(self.features, 3, 1, self.dtype, self.param_dtype, "conv2")(out)
    return out + shortcut
