"""Small models for quick runs: a CNN for tiny images and an MLP.

Both mix at *all* their layers by default, as in the Manifold Mixup paper's
small-scale experiments (Verma et al., 2019, arXiv:1806.05236): layer 0 is the
input and layer ``i`` the output of stage / hidden layer ``i``.

* :class:`SmallCNN`: ``len(features)`` stages of conv3×3 → BN → ReLU → 2×2 max
  pool (skipped once the map is 1×1), global average pool, dense. For 8×8×1
  digits, 28×28×1 and 32×32×3 images. With the default ``features=(32, 64)``
  it has ``288·C + 64 + 18,432 + 128 + 65·K`` trainable parameters: 19,562 for
  ``C = 1``, ``K = 10`` (20,138 for ``C = 3``).
* :class:`MLP`: dense → activation per hidden layer, an optional narrow
  ``bottleneck`` layer (linear by default) just before the classifier, dense.
  Takes any ``[B, ...]`` input (flattened after the input mix), e.g. ``[B, 2]``
  toy points or ``[B, 8, 8, 1]`` digits.

Both return their hidden representations with ``return_hidden=True`` (see
:meth:`MLP.__call__`); e.g. the 2-D bottleneck of
``MLP(num_classes=2, features=(64, 64), bottleneck=2)`` is ``hidden[-1]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import chex
import flax.linen as nn
import jax.numpy as jnp

from mixjax.manifold import MixPlan
from mixjax.models import _common

__all__ = ["MLP", "SmallCNN", "mlp", "small_cnn"]


class SmallCNN(_common.MixLayers, nn.Module):
  """A small CNN for tiny images that applies a :class:`~mixjax.MixPlan`.

  Inputs are float ``[B, H, W, C]`` images already normalised by the caller;
  integer inputs raise ``ValueError``. ``train=True`` updates BatchNorm
  statistics: pass ``mutable=['batch_stats']``.

  Attributes:
    num_classes: number of output logits.
    features: channels of each conv stage.
    mix_layers: the eligible layers to mix at (0 = input, ``i`` = output of
      stage ``i``); None (default) means all, ``0, …, len(features)``. Read the
      resolved tuple from the constructed module for :func:`mixjax.sample_plan`.
    dtype: computation dtype; logits are float32.
    param_dtype: parameter dtype.
    axis_name: BatchNorm axis for cross-device statistics, or None.
  """
  num_classes: int = 10
  features: Sequence[int] = (32, 64)
  mix_layers: tuple[int, ...] | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  def __post_init__(self) -> None:
    object.__setattr__(self, "features", tuple(self.features))
    super().__post_init__()

  @property
  def num_mix_layers(self) -> int:
    """The number of eligible layers: the input and one per stage."""
    return len(self.features) + 1

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
      plan: a :class:`~mixjax.MixPlan` or None.
      train: use batch statistics and update the running ones.
      return_hidden: also return the activations at every eligible layer.

    Returns:
      float32 logits ``[B, num_classes]``; with ``return_hidden``,
      ``(logits, hidden)``, ``hidden[i]`` the activation at eligible layer ``i``
      after mixing there (stage outputs after pooling).
    """
    _common.check_float_input(x, 4, type(self).__name__)
    _common.check_plan(plan, self.mix_layers, type(self).__name__)
    x = _common.maybe_mix(plan, 0, x, self.mix_layers)
    hidden = [x]
    for i, width in enumerate(self.features):
      x = nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                  kernel_init=_common.conv_kernel_init, dtype=self.dtype,
                  param_dtype=self.param_dtype, name=f"conv{i + 1}")(x)
      x = nn.relu(_common.batch_norm(train, self.dtype, self.param_dtype,
                                     self.axis_name, f"bn{i + 1}")(x))
      if x.shape[1] >= 2 and x.shape[2] >= 2:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      x = _common.maybe_mix(plan, i + 1, x, self.mix_layers)
      hidden.append(x)
    x = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(self.num_classes, dtype=self.dtype,
                      param_dtype=self.param_dtype, name="head")(x)
    logits = logits.astype(jnp.float32)
    return (logits, tuple(hidden)) if return_hidden else logits


class MLP(_common.MixLayers, nn.Module):
  """A multi-layer perceptron that applies a :class:`~mixjax.MixPlan`.

  Layers: ``Dense(features[0]) → activation``, …, then, if ``bottleneck`` is
  set, ``Dense(bottleneck)`` (followed by the activation only if
  ``bottleneck_activation``), then ``Dense(num_classes)``. Eligible mix layers:
  0 = the input, ``i`` = the output of hidden layer ``i`` (the bottleneck is the
  last one). ``train`` is accepted for a uniform interface and changes nothing.

  Attributes:
    num_classes: number of output logits.
    features: widths of the hidden layers before the bottleneck.
    bottleneck: width of an optional narrow last hidden layer (e.g. 2 to plot
      the learned representation), or None.
    bottleneck_activation: apply ``activation`` after the bottleneck too
      (default False: a linear bottleneck, so no unit of a 2-D one can die).
    activation: the nonlinearity, ``nn.relu`` by default.
    mix_layers: the eligible layers to mix at; None (default) means all.
    dtype: computation dtype; logits are float32.
    param_dtype: parameter dtype.
  """
  num_classes: int = 10
  features: Sequence[int] = (128, 128)
  bottleneck: int | None = None
  bottleneck_activation: bool = False
  activation: Callable[[chex.Array], chex.Array] = nn.relu
  mix_layers: tuple[int, ...] | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def __post_init__(self) -> None:
    object.__setattr__(self, "features", tuple(self.features))
    super().__post_init__()

  @property
  def num_mix_layers(self) -> int:
    """The number of eligible layers: the input and each hidden layer."""
    return 1 + len(self.features) + (self.bottleneck is not None)

  @nn.compact
  def __call__(
      self,
      x: chex.Array,
      plan: MixPlan | None = None,
      train: bool = False,
      return_hidden: bool = False,
  ) -> chex.Array | tuple[chex.Array, tuple[chex.Array, ...]]:
    """Runs the MLP, mixing at the plan's layer if it is in ``mix_layers``.

    Args:
      x: float ``[B, ...]``, normalised; flattened to ``[B, D]`` after the input
        mix (so a CutMix plan on ``[B, H, W, C]`` images works at layer 0).
      plan: a :class:`~mixjax.MixPlan` or None.
      train: unused (no dropout or norm).
      return_hidden: also return the activations at every eligible layer.

    Returns:
      float32 logits ``[B, num_classes]``; with ``return_hidden``,
      ``(logits, hidden)`` where ``hidden[0]`` is the (mixed) input as given and
      ``hidden[i]`` the ``[B, width]`` output of hidden layer ``i`` after mixing
      there; the bottleneck is ``hidden[-1]``.
    """
    del train
    _common.check_float_input(x, 2, type(self).__name__)
    _common.check_plan(plan, self.mix_layers, type(self).__name__)
    x = _common.maybe_mix(plan, 0, x, self.mix_layers)
    hidden = [x]
    x = x.reshape((x.shape[0], -1))
    widths = list(self.features)
    if self.bottleneck is not None:
      widths.append(self.bottleneck)
    for i, width in enumerate(widths):
      x = nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype,
                   name=f"dense{i + 1}")(x)
      is_bottleneck = self.bottleneck is not None and i == len(widths) - 1
      if not is_bottleneck or self.bottleneck_activation:
        x = self.activation(x)
      x = _common.maybe_mix(plan, i + 1, x, self.mix_layers)
      hidden.append(x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype,
                      param_dtype=self.param_dtype, name="head")(x)
    logits = logits.astype(jnp.float32)
    return (logits, tuple(hidden)) if return_hidden else logits


def small_cnn(num_classes: int = 10, **kwargs: Any) -> SmallCNN:
  """A :class:`SmallCNN`; ``kwargs`` set its other attributes."""
  return SmallCNN(num_classes=num_classes, **kwargs)


def mlp(num_classes: int = 10, **kwargs: Any) -> MLP:
  """An :class:`MLP`; ``kwargs`` set its other attributes (``features``, …)."""
  return MLP(num_classes=num_classes, **kwargs)
