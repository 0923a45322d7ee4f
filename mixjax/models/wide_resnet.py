"""Wide Residual Networks for CIFAR-sized images, with Manifold Mixup layers.

Zagoruyko & Komodakis (2016), "Wide Residual Networks" (arXiv:1605.07146), in
two PyTorch forms (``variant=``). Both: a 3×3 stem conv with 16 channels, 3
groups of ``n = (depth − 4) / 6`` pre-activation wide basic blocks, widths
``16k, 32k, 64k`` (160/320/640 for WRN-28-10), strides 1/2/2, a 1×1 projection
shortcut in the first block of each group (where the width changes) and the
identity elsewhere, then BatchNorm + ReLU, global average pool (the references'
``avg_pool2d(out, 8)`` on 32×32 inputs) and a dense layer with bias.

``"manifold_mixup"`` (default): vikasverma1077/manifold_mixup
  ``supervised/models/wide_resnet.py`` (``wide_basic``, lines 30–49;
  ``Wide_ResNet``, lines 53–81 and 140–160; ``wrn28_10``, lines 169–172), the
  network the Manifold Mixup paper's WRN-28-10 recipe trains
  (``supervised/README.md``: ``--arch wrn28_10``). It follows
  meliketoy/wide-resnet.pytorch ``networks/wide_resnet.py``:

  * **every conv has a bias**, the stem included (lines 19, 34, 36, 41);
  * block: ``out = conv3x3(ReLU(BN(x)))``, ``out = conv3x3_s(ReLU(BN(out)))``:
    **the stride is on the second conv** (line 36);
  * the projection is a 1×1 conv (with bias) of **the raw input ``x``**, not of
    its pre-activation (lines 41, 47);
  * the final BatchNorm has **PyTorch momentum 0.9** (line 70), i.e. its running
    statistics keep 0.1 of their old value per step (the block norms keep
    PyTorch's default 0.1);
  * no dropout ("dropout has been removed in this code", line 1); the optional
    ``dropout_rate`` sits after the first conv, where meliketoy's original puts
    it (``networks/wide_resnet.py`` line 38).

``"xternalz"``: xternalz/WideResNet-pytorch ``wideresnet.py`` (``BasicBlock``,
  lines 7–31; ``WideResNet``, lines 45–83): bias-free convs, the stride on the
  first conv, the projection reads the pre-activated input ``ReLU(BN(x))``,
  PyTorch's default momentum 0.1 everywhere, optional dropout between the convs
  (line 29, default 0).

Trainable parameters for WRN-28-10 with 10 classes, as the references' layer
lists give them (``tests/test_models.py`` derives them):
``"manifold_mixup"`` **36,489,290**, ``"xternalz"`` **36,479,194** (the former's
10,096 conv biases make the difference). Dropout adds none.

Initialisation (``param_init``, ``init=`` in the factory and ``get_model``):
``"he"`` (default) draws He-normal fan-out conv
kernels, zero conv biases and Flax's default dense layer. ``"pytorch"`` is what
each reference ends up with:

* ``"manifold_mixup"``: PyTorch's default ``reset_parameters`` everywhere,
  U(±1/√fan_in) for every weight and bias, BatchNorm scale 1, bias 0. The file
  defines a Xavier ``conv_init`` (lines 21–28) but the repository never applies
  it (meliketoy's ``main.py`` does, line 137; manifold_mixup's ``main.py`` does
  not);
* ``"xternalz"``: the file re-initialises (lines 67–74): He-normal fan-out
  convs (as ``"he"``), BatchNorm 1/0, a zero linear bias, and PyTorch's default
  U(±1/√fan_in) linear weight.

Eligible mix layers: 0 = the input, ``i`` = the output of group ``i`` (1–3,
before the final BN), as in manifold_mixup's ``forward`` (lines 137–155). The
default ``mix_layers=(0, 1, 2)`` follows the paper (``random.randint(0, 2)``,
line 121).
"""

from __future__ import annotations

import functools
from typing import Any

import chex
import flax.linen as nn
import jax.numpy as jnp

from mixjax.manifold import MixPlan
from mixjax.models import _common

__all__ = ["WRN_VARIANTS", "WideBasic", "WideResNet", "wide_resnet28_10"]

#: The reference networks :class:`WideResNet` reproduces (see the module doc).
WRN_VARIANTS = ("manifold_mixup", "xternalz")


class WideBasic(nn.Module):
  """manifold_mixup's (and meliketoy's) ``wide_basic`` block.

  ``out = conv3x3_s(ReLU(BN(dropout(conv3x3(ReLU(BN(x))))))) + shortcut``, where
  both convs have biases, the stride sits on the *second* conv, and
  ``shortcut = conv1x1_s(x)`` (with bias) of the raw input where the stride or
  the width changes, ``x`` otherwise (manifold_mixup
  ``supervised/models/wide_resnet.py`` lines 30–49).

  Attributes:
    features: output channels.
    stride: stride of the second conv and of the projection.
    dropout_rate: dropout after the first conv (meliketoy's place; 0 in
      manifold_mixup); needs a ``'dropout'`` RNG when ``train`` and ``> 0``.
    param_init: ``"he"`` or ``"pytorch"`` (see the module doc).
    dtype: computation dtype.
    param_dtype: parameter dtype.
    axis_name: BatchNorm cross-device axis, or None.
  """
  features: int
  stride: int = 1
  dropout_rate: float = 0.0
  param_init: str = "he"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: chex.Array, train: bool = False) -> chex.Array:
    norm = lambda name: _common.batch_norm(train, self.dtype, self.param_dtype,
                                           self.axis_name, name)
    conv = lambda kernel, stride, in_features, name: _common.conv(
        self.features, kernel, stride, self.dtype, self.param_dtype, name,
        init=self.param_init, in_features=in_features)
    out = conv(3, 1, x.shape[-1], "conv1")(nn.relu(norm("bn1")(x)))
    if self.dropout_rate > 0:
      out = nn.Dropout(self.dropout_rate, deterministic=not train)(out)
    out = conv(3, self.stride, self.features, "conv2")(nn.relu(norm("bn2")(out)))
    if self.stride != 1 or x.shape[-1] != self.features:
      shortcut = conv(1, self.stride, x.shape[-1], "shortcut")(x)
    else:
      shortcut = x
    return out + shortcut


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
    variant: ``"manifold_mixup"`` (conv biases, stride on the second conv,
      raw-input projection, final BN momentum 0.9) or ``"xternalz"``; see
      :data:`WRN_VARIANTS` and the module doc.
    dropout_rate: dropout inside each block (0 in both references; the WRN
      paper also uses 0.3).
    param_init: ``"he"`` or ``"pytorch"`` (what the reference ends up with; see
      the module doc); the factory and ``get_model`` take it as ``init=``.
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
  variant: str = "manifold_mixup"
  dropout_rate: float = 0.0
  param_init: str = "he"
  mix_layers: tuple[int, ...] = (0, 1, 2)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  def __post_init__(self) -> None:
    if self.depth < 10 or (self.depth - 4) % 6:
      raise ValueError(f"WideResNet depth must be 6n + 4 with n >= 1, got {self.depth}.")
    _common.check_choice(self.variant, WRN_VARIANTS, "variant", type(self).__name__)
    _common.check_choice(self.param_init, _common.INITS, "param_init",
                         type(self).__name__)
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
    manifold = self.variant == "manifold_mixup"
    # xternalz re-initialises its convs He-normal fan-out and zeroes the linear
    # bias (wideresnet.py:67-74); manifold_mixup keeps PyTorch's defaults.
    conv_init = self.param_init if manifold else "he"
    x = _common.conv(16, 3, 1, self.dtype, self.param_dtype, "stem", init=conv_init,
                     in_features=x.shape[-1] if manifold else None)(x)
    for i, width in enumerate((16, 32, 64)):
      for j in range(blocks_per_group):
        block = WideBasic if manifold else functools.partial(
            _common.PreActBlock, preact_identity=False)
        x = block(
            width * self.widen_factor, stride=2 if i > 0 and j == 0 else 1,
            dropout_rate=self.dropout_rate, param_init=conv_init, dtype=self.dtype,
            param_dtype=self.param_dtype, axis_name=self.axis_name,
            name=f"group{i + 1}_block{j}")(x, train)
      x = _common.maybe_mix(plan, i + 1, x, self.mix_layers)
      hidden.append(x)
    x = nn.relu(_common.batch_norm(
        train, self.dtype, self.param_dtype, self.axis_name, "final_bn",
        torch_momentum=0.9 if manifold else 0.1)(x))  # manifold_mixup line 70.
    x = jnp.mean(x, axis=(1, 2))
    logits = _common.dense(self.num_classes, x.shape[-1], self.dtype,
                           self.param_dtype, "head", init=self.param_init,
                           bias=self.param_init if manifold else "he")(x)
    logits = logits.astype(jnp.float32)
    return (logits, tuple(hidden)) if return_hidden else logits


def wide_resnet28_10(
    num_classes: int = 10, variant: str = "manifold_mixup", init: str | None = None,
    **kwargs: Any,
) -> WideResNet:
  """WRN-28-10 (see the module doc for the two references).

  Trainable parameters for 10 classes: 36,489,290 (``"manifold_mixup"``,
  manifold_mixup ``supervised/models/wide_resnet.py`` ``wrn28_10``) or
  36,479,194 (``"xternalz"``, xternalz ``wideresnet.py``).
  """
  return WideResNet(depth=28, widen_factor=10, num_classes=num_classes,
                    variant=variant, **_common.with_param_init(init, kwargs))
