"""Pieces shared by the mixjax models: input checks, mix layers, norms, blocks.

Every model applies a :class:`~mixjax.MixPlan` at its *eligible layers*: index 0
is the input and index ``i >= 1`` the output of its ``i``-th stage, block group
or hidden layer. ``mix_layers`` picks the subset a model mixes at; it is what a
trainer passes to :func:`mixjax.sample_plan`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from mixjax.manifold import MixPlan

Dtype = Any

Initializer = Callable[..., chex.Array]

# He-normal, fan-out: PyTorch's ``kaiming_normal_(mode="fan_out")`` (torchvision
# ResNets) and He et al. (2015).
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

# PyTorch's default ``reset_parameters`` of ``nn.Conv2d`` / ``nn.Linear``:
# ``kaiming_uniform_(w, a=√5)``, i.e. U(±gain·√(3 / fan_in)) with
# gain = √(2 / (1 + a²)) = √(1/3): U(±1/√fan_in), fan_in = C_in·k_h·k_w. Flax's
# variance_scaling "uniform" draws U(±√(3·scale / fan_in)), so scale = 1/3.
torch_default_kernel_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")

# Flax's default dense kernel (``nn.Dense``), kept for ``init="he"``.
lecun_normal = nn.initializers.lecun_normal()

#: The initialisations every ResNet takes as ``param_init`` (``init=`` in its
#: factory and :func:`~mixjax.models.get_model`): ``"he"`` (He-normal fan-out
#: conv kernels, Flax's default dense layer, zero biases) and ``"pytorch"``
#: (what the reference PyTorch code ends up with: PyTorch's default layer
#: initialisation unless the reference re-initialises).
INITS = ("he", "pytorch")


def with_param_init(init: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
  """``kwargs`` with the factories' ``init=`` stored as the ``param_init`` field.

  The field cannot be called ``init``: that is Flax's ``Module.init``.
  """
  if init is None:
    return kwargs
  if "param_init" in kwargs:
    raise ValueError(f"pass init= or param_init=, not both; got init={init!r} and "
                     f"param_init={kwargs['param_init']!r}.")
  return {**kwargs, "param_init": init}


def check_choice(value: str, known: Sequence[str], field: str, model: str) -> None:
  """Raises ``ValueError`` unless ``value`` is one of ``known``."""
  if value not in known:
    raise ValueError(
        f"{model}.{field} must be one of {', '.join(map(repr, known))}, got {value!r}.")


def torch_default_bias_init(fan_in: int) -> Initializer:
  """PyTorch's default bias initialisation: U(±1/√fan_in).

  ``nn.Conv2d`` and ``nn.Linear`` draw their bias from this bound, with the
  fan-in of their weight (``C_in·k_h·k_w`` for a conv, ``in_features`` for a
  linear layer).
  """
  bound = 1 / math.sqrt(fan_in)

  def init(key: chex.PRNGKey, shape: Sequence[int], dtype: Dtype = jnp.float32
           ) -> chex.Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def kernel_init(init: str) -> Initializer:
  """The conv kernel initialiser for ``init`` (``"he"`` or ``"pytorch"``)."""
  return conv_kernel_init if init == "he" else torch_default_kernel_init


def dense_kernel_init(init: str) -> Initializer:
  """The dense kernel initialiser: Flax's LeCun-normal default, or PyTorch's."""
  return lecun_normal if init == "he" else torch_default_kernel_init


def bias_init(init: str, fan_in: int) -> Initializer:
  """The bias initialiser: zeros for ``"he"``, U(±1/√fan_in) for ``"pytorch"``."""
  return nn.initializers.zeros if init == "he" else torch_default_bias_init(fan_in)


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
    name: str | None = None, torch_momentum: float = 0.1,
) -> nn.BatchNorm:
  """BatchNorm with PyTorch's defaults (eps 1e-5, scale 1, bias 0).

  ``torch_momentum`` is PyTorch's convention, ``running ← (1 − m)·running +
  m·batch`` (default 0.1); Flax's ``momentum`` weighs the running value, so it
  is ``1 − torch_momentum``.
  """
  return nn.BatchNorm(use_running_average=not train, momentum=1 - torch_momentum,
                      epsilon=1e-5, dtype=dtype, param_dtype=param_dtype,
                      axis_name=axis_name, name=name)


def conv(
    features: int, kernel: int, stride: int, dtype: Dtype, param_dtype: Dtype,
    name: str | None = None, *, init: str = "he", in_features: int | None = None,
) -> nn.Conv:
  """A conv with PyTorch's symmetric padding ``(kernel − 1) // 2``.

  Bias-free unless ``in_features`` (the input channels) is given: the bias is
  then initialised for ``init`` with fan-in ``in_features·kernel²``.
  """
  pad = (kernel - 1) // 2
  use_bias = in_features is not None
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=use_bias,
                 kernel_init=kernel_init(init),
                 bias_init=bias_init(init, in_features * kernel**2) if use_bias
                 else nn.initializers.zeros,
                 dtype=dtype, param_dtype=param_dtype, name=name)


def dense(
    features: int, in_features: int, dtype: Dtype, param_dtype: Dtype,
    name: str | None = None, *, init: str = "he", bias: str | None = None,
) -> nn.Dense:
  """A dense layer with bias, initialised for ``init`` (bias for ``bias or init``)."""
  return nn.Dense(features, kernel_init=dense_kernel_init(init),
                  bias_init=bias_init(bias or init, in_features), dtype=dtype,
                  param_dtype=param_dtype, name=name)


class PreActBlock(nn.Module):
  """A pre-activation basic block (He et al., 2016, "Identity Mappings").

  ``a = ReLU(BN(x))``, ``out = conv3x3(ReLU(BN(conv3x3_s(a)))) + shortcut``.
  Where the stride or the width changes, ``shortcut = conv1x1_s(a)`` (no bias):
  the projection reads the *pre-activated* input in every reference below. The
  identity shortcut differs between them:

  * ``x`` (``preact_identity=False``): vikasverma1077/manifold_mixup
    ``supervised/models/preresnet.py`` (``PreActBlock``, lines 13–35: ``x`` when
    there is no ``shortcut`` attribute) and xternalz/WideResNet-pytorch
    ``wideresnet.py`` (``BasicBlock``, lines 22–31);
  * ``a`` (``preact_identity=True``): facebookresearch/mixup-cifar10
    ``models/resnet.py`` (``PreActBlock``, lines 47–70: ``self.shortcut(out)``
    with an empty ``nn.Sequential``, i.e. ``a`` itself).

  Attributes:
    features: output channels.
    stride: stride of the first conv and of the projection.
    dropout_rate: dropout between the two convs (xternalz's WRN); needs a
      ``'dropout'`` RNG when ``train`` and ``> 0``.
    preact_identity: the identity shortcut carries ``a = ReLU(BN(x))`` instead
      of ``x``.
    param_init: ``"he"`` or ``"pytorch"`` conv kernels (see :data:`INITS`).
    dtype: computation dtype.
    param_dtype: parameter dtype.
    axis_name: BatchNorm cross-device axis, or None.
  """
  features: int
  stride: int = 1
  dropout_rate: float = 0.0
  preact_identity: bool = False
  param_init: str = "he"
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
                      "shortcut", init=self.param_init)(out)
    else:
      shortcut = out if self.preact_identity else x
    out = conv(self.features, 3, self.stride, self.dtype, self.param_dtype,
               "conv1", init=self.param_init)(out)
    out = nn.relu(norm("bn2")(out))
    if self.dropout_rate > 0:
      out = nn.Dropout(self.dropout_rate, deterministic=not train)(out)
    out = conv(self.features, 3, 1, self.dtype, self.param_dtype, "conv2",
               init=self.param_init)(out)
    return out + shortcut
