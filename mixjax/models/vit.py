"""Vision Transformers in timm's layout (ViT-S/16 = DeiT-S), with Manifold Mixup layers.

Dosovitskiy et al. (2021), "An Image is Worth 16x16 Words" (arXiv:2010.11929),
and Touvron et al. (2021), "Training data-efficient image transformers"
(DeiT, arXiv:2012.12877), as huggingface/pytorch-image-models builds them in
``timm/models/vision_transformer.py`` (read at commit aa4b585; cited by class
and function, since the line numbers move between timm releases).
:func:`vit_s16` is timm's ``vit_small_patch16_224`` (``patch_size=16,
embed_dim=384, depth=12, num_heads=6``; DeiT-S has the same layout) with the
``VisionTransformer`` defaults it keeps (``global_pool="token"``,
``class_token=True``, ``qkv_bias=True``, ``mlp_ratio=4``, ``no_embed_class=False``,
``pre_norm=False``, ``final_norm=True``, no layer scale, ``weight_init=""``):

* ``patch_embed``: a ``P×P`` conv with stride ``P`` and bias, ``C → D``
  (``timm/layers/patch_embed.py`` ``PatchEmbed.proj``), flattened row-major to
  ``N = (H/P)·(W/P)`` tokens;
* ``VisionTransformer._pos_embed``: the class token is prepended, then a learned
  position embedding of ``1 + N`` rows is added (it covers the class token),
  then ``pos_drop``;
* ``depth`` pre-norm blocks (``Block``): ``x + drop_path(attn(norm1(x)))``, then
  ``x + drop_path(mlp(norm2(x)))``. LayerNorm eps 1e-6 (``timm/layers/norm.py``
  ``LayerNorm``). Attention (``timm/layers/attention.py`` ``Attention``): one
  fused ``qkv`` linear ``D → 3D`` with bias, ``num_heads`` heads of ``D /
  num_heads``, ``softmax(q·d_h^{-1/2} kᵀ)`` over all ``1 + N`` keys,
  ``attn_drop``, ``proj`` ``D → D``, ``proj_drop``. MLP (``timm/layers/mlp.py``
  ``Mlp``): ``fc1`` ``D → mlp_ratio·D``, exact (erf) GELU as ``torch.nn.GELU``,
  dropout, ``fc2``, dropout;
* drop path (stochastic depth, ``timm/layers/drop.py`` ``drop_path``): per
  example, the residual branch is zeroed with probability ``p`` and scaled by
  ``1/(1 − p)`` otherwise; block ``i`` of ``depth`` has ``p_i = drop_path_rate ·
  i/(depth − 1)`` (``calculate_drop_path_rates``: ``torch.linspace(0, rate,
  depth)``), see :func:`drop_path_rates`;
* a final LayerNorm (``norm``) and a linear ``head`` on the class token
  (``forward_head`` with ``global_pool="token"``).

Trainable parameters for 1,000 classes at 224×224 (``tests/test_vit.py``
derives them from this layer list): **ViT-S/16 22,050,664** (each further class
adds 385). The position embedding is sized at ``init`` from the input's patch
grid (``1 + N`` rows), so a 32×32 input gives 5 rows and 73,728 fewer
parameters; a model is then applied to images of that size only (timm's
``dynamic_img_size`` resampling is not implemented). ``H`` and ``W`` must be
multiples of ``patch_size``.

Initialisation: timm's default ``weight_init=""`` (``VisionTransformer.init_weights``
and ``init_weights_vit_timm``): ``pos_embed`` ``trunc_normal_(std=.02)``
(``timm/layers/weight_init.py``: N(0, .02²) clamped to ``[a, b] = [−2, 2]``,
absolute bounds, i.e. ±100σ: :func:`timm_trunc_normal`, not Flax's
``truncated_normal``, which cuts at ±2σ); ``cls_token`` ``normal_(std=1e-6)``
(``cls_token_std``; DeiT, on timm 0.3, drew it with ``trunc_normal_(std=.02)``:
pass ``cls_token_std=0.02`` for that);
every ``nn.Linear`` (``qkv``, ``proj``, ``fc1``, ``fc2``, ``head``) weight
``trunc_normal_(std=.02)`` and bias 0; LayerNorm weight 1, bias 0. The
patch-embedding conv is not an ``nn.Linear``, and timm's default mode leaves it
as PyTorch's ``nn.Conv2d`` made it (``reset_parameters``: weight and bias
U(±1/√fan_in), ``fan_in = C·P²``). (timm's ``weight_init="jax"`` mode,
``init_weights_vit_jax``, would use ``lecun_normal_`` and a zero bias there;
it is not implemented.)

Dropout: ``dropout_rate`` is ``drop_rate`` as timm before 0.9 (and so DeiT's
``--drop``) applies it: after the position embedding (``pos_drop``), after the
attention projection (``proj_drop``) and in the MLP (``drop1``, ``drop2``);
``attention_dropout_rate`` is ``attn_drop_rate``. timm 0.9 split ``drop_rate``
into ``pos_drop_rate`` / ``proj_drop_rate`` and now uses ``drop_rate`` for a
dropout before the head, which this module does not have. All default to 0, as
timm's; DeiT trains ViT-S with ``drop_path_rate=0.1``.

Precision (``dtype=jnp.bfloat16``, ``param_dtype`` float32): the convs, dense
layers, attention products, GELU and the residual stream run in ``dtype``;
LayerNorm statistics and normalisation run in float32 (Flax's
``force_float32_reductions``) and are cast to ``dtype``; the attention softmax
runs in float32 and its weights are cast to ``dtype`` for ``attn @ v``; the
logits are float32.

Eligible mix layers (``num_mix_layers = depth + 2``):

* 0: the input image (pixels; every method mixes here);
* 1: the patch embedding's output, the patch tokens as a grid ``[B, H/P, W/P,
  D]`` (the layout of a conv feature map), before the class token is prepended
  and before the position embedding is added. The position embedding is the
  same for every example, so for a blend it makes no difference (up to rounding)
  whether it is added before or after mixing: ``λ(t_i + e) + (1 − λ)(t_j + e) =
  λt_i + (1 − λ)t_j + e``. The class token is never mixed here;
* ``b + 2``: the output of block ``b`` (0-based), ``[B, 1 + N, D]``, class token
  included.

Plans with CutMix boxes or masks mix only at layer 0, as in every mixjax model:
:meth:`mixjax.MixPlan.mix_at` passes every other layer through unchanged,
since their boxes are in input pixels (and the trainer refuses spatial mixers
for Manifold Mixup). That holds at layer 1 too, although the tokens are laid
out there as a ``[B, H/P, W/P, D]`` grid; a hand-made box plan drawn at a layer
``≥ 1`` therefore mixes the labels but no activation (build such plans with
:meth:`mixjax.MixPlan.at_input`). The patch embedding is affine, so a Mixup blend
at layer 1 equals the same blend at layer 0 up to rounding: the default
``mix_layers`` of :func:`vit_s16` leaves it out and mixes at the input and the
outputs of the first half of the blocks, ``(0, 2, 3, 4, 5, 6, 7)``, as the
mixjax ResNets mix at the input and after the first half of their stages (the
Manifold Mixup paper's ``(0, 1, 2)``). :class:`VisionTransformer` itself mixes at
every eligible layer unless told (``mix_layers=None``, as the small models).

The last block's attention of the class token to the patch tokens, float32
``[B, num_heads, N]``, is sown as ``intermediates/cls_attention`` (pass
``mutable="intermediates"`` to ``apply``): the patch part of the class token's
softmax row, whose ``1 + N`` entries (the class token's weight on itself
first) sum to 1; so these rows sum to 1 minus that self weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from mixjax.manifold import MixPlan
from mixjax.models import _common

__all__ = ["VIT_S16_MIX_LAYERS", "Attention", "DropPath", "EncoderBlock", "Mlp",
           "VisionTransformer", "drop_path_rates", "timm_trunc_normal", "vit_s16"]

# LayerNorm epsilon of timm's ViTs (timm/layers/norm.py, LayerNorm).
LAYER_NORM_EPS = 1e-6


def drop_path_rates(drop_path_rate: float, depth: int) -> tuple[float, ...]:
  """Per-block drop path rates, linear from 0 to ``drop_path_rate``.

  timm's ``calculate_drop_path_rates(drop_path_rate, depth)``
  (``timm/layers/drop.py``), ``torch.linspace(0, drop_path_rate, depth)``: block
  ``i`` drops with probability ``drop_path_rate·i/(depth − 1)`` (0 for a single
  block).
  """
  if depth == 1:
    return (0.0,)
  return tuple(drop_path_rate * i / (depth - 1) for i in range(depth))


def timm_trunc_normal(std: float = 0.02, a: float = -2.0, b: float = 2.0
                      ) -> _common.Initializer:
  """timm's ``trunc_normal_(tensor, std=std, a=a, b=b)`` (``timm/layers/weight_init.py``).

  N(0, std²) clamped to ``[a, b]``; the bounds are absolute values, not
  multiples of ``std``, so with timm's defaults (std .02, ±2) the truncation is
  at ±100σ and the draw is a plain N(0, .02²). Flax's
  ``nn.initializers.truncated_normal`` would cut at ±2σ instead.
  """

  def init(key: chex.PRNGKey, shape: Sequence[int], dtype: Any = jnp.float32
           ) -> chex.Array:
    values = std * jax.random.normal(key, shape, jnp.promote_types(dtype, jnp.float32))
    return jnp.clip(values, a, b).astype(dtype)

  return init


_linear_init = timm_trunc_normal(0.02)


def _dense(features: int, dtype: Any, param_dtype: Any, name: str,
           use_bias: bool = True) -> nn.Dense:
  """An ``nn.Linear`` as ``init_weights_vit_timm`` leaves it: trunc_normal .02, zero bias."""
  return nn.Dense(features, use_bias=use_bias, kernel_init=_linear_init,
                  bias_init=nn.initializers.zeros, dtype=dtype, param_dtype=param_dtype,
                  name=name)


def _layer_norm(dtype: Any, param_dtype: Any, name: str) -> nn.LayerNorm:
  """timm's LayerNorm (eps 1e-6, weight 1, bias 0), statistics in float32.

  ``use_fast_variance=False``: the variance is ``E[(x − μ)²]``, as PyTorch's
  ``layer_norm``, not ``E[x²] − μ²``.
  """
  return nn.LayerNorm(epsilon=LAYER_NORM_EPS, use_fast_variance=False, dtype=dtype,
                      param_dtype=param_dtype, name=name)


class DropPath(nn.Module):
  """Stochastic depth per example (timm's ``DropPath``, ``timm/layers/drop.py``).

  With ``train`` and ``rate > 0`` each example's ``x`` is zeroed with
  probability ``rate`` and scaled by ``1/(1 − rate)`` otherwise (timm's
  ``scale_by_keep=True``), one Bernoulli draw per example from the
  ``'dropout'`` RNG; otherwise ``x`` is returned as it is.

  Attributes:
    rate: the drop probability, in ``[0, 1]``.
  """
  rate: float = 0.0

  def __post_init__(self) -> None:
    if not 0.0 <= self.rate <= 1.0:
      raise ValueError(f"DropPath.rate must be in [0, 1], got {self.rate!r}.")
    super().__post_init__()

  @nn.compact
  def __call__(self, x: chex.Array, train: bool = False) -> chex.Array:
    if not train or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    kept = jax.random.bernoulli(self.make_rng("dropout"), keep, shape)
    # timm: random_tensor.bernoulli_(keep_prob).div_(keep_prob), in x's dtype; all
    # zeros when keep_prob is 0.
    factor = kept.astype(x.dtype) / jnp.asarray(keep, x.dtype) if keep > 0 else (
        jnp.zeros(shape, x.dtype))
    return x * factor


class Attention(nn.Module):
  """timm's multi-head self-attention (``timm/layers/attention.py``, ``Attention``).

  Returns ``(out, weights)``: ``[B, N, D]`` in ``dtype`` and the float32
  attention weights ``[B, num_heads, N, N]`` (queries × keys, before
  attention dropout).

  Attributes:
    num_heads: heads; ``D`` must be a multiple.
    qkv_bias: bias of the fused ``qkv`` projection (True in timm's ViTs).
    attention_dropout_rate: dropout on the attention weights (``attn_drop``).
    dropout_rate: dropout after ``proj`` (``proj_drop``).
    dtype: computation dtype (the softmax runs in float32).
    param_dtype: parameter dtype.
  """
  num_heads: int
  qkv_bias: bool = True
  attention_dropout_rate: float = 0.0
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: chex.Array, train: bool = False
               ) -> tuple[chex.Array, chex.Array]:
    batch, length, dim = x.shape
    head_dim = dim // self.num_heads
    qkv = _dense(3 * dim, self.dtype, self.param_dtype, "qkv", self.qkv_bias)(x)
    # timm: reshape(B, N, 3, heads, head_dim); q, k, v are [B, N, heads, head_dim] here.
    qkv = qkv.reshape(batch, length, 3, self.num_heads, head_dim)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    q = q * jnp.asarray(head_dim**-0.5, q.dtype)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    dropped = nn.Dropout(self.attention_dropout_rate, deterministic=not train)(weights)
    out = jnp.einsum("bhqk,bkhd->bqhd", dropped.astype(self.dtype), v)
    out = _dense(dim, self.dtype, self.param_dtype, "proj")(out.reshape(batch, length, dim))
    out = nn.Dropout(self.dropout_rate, deterministic=not train)(out)
    return out, weights


class Mlp(nn.Module):
  """timm's ``Mlp`` (``timm/layers/mlp.py``): ``fc1``, GELU, dropout, ``fc2``, dropout.

  The GELU is the exact (erf) one, as ``torch.nn.GELU``'s default.

  Attributes:
    hidden_features: width of ``fc1``; ``fc2`` maps back to the input width.
    dropout_rate: ``drop1`` and ``drop2``.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  hidden_features: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: chex.Array, train: bool = False) -> chex.Array:
    dim = x.shape[-1]
    x = _dense(self.hidden_features, self.dtype, self.param_dtype, "fc1")(x)
    x = nn.gelu(x, approximate=False)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = _dense(dim, self.dtype, self.param_dtype, "fc2")(x)
    return nn.Dropout(self.dropout_rate, deterministic=not train)(x)


class EncoderBlock(nn.Module):
  """timm's pre-norm transformer ``Block`` (``timm/models/vision_transformer.py``).

  ``x + drop_path(attn(norm1(x)))``, then ``x + drop_path(mlp(norm2(x)))``
  (:class:`Attention`, :class:`Mlp`, :class:`DropPath`; a separate drop path draw
  for each branch, as timm's ``drop_path1`` / ``drop_path2``). Returns ``(x,
  attention weights)``.

  Attributes:
    num_heads: attention heads.
    mlp_ratio: hidden width of the MLP over ``D``.
    drop_path_rate: this block's stochastic depth rate.
    dropout_rate: ``proj_drop`` and the MLP's dropouts.
    attention_dropout_rate: ``attn_drop``.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  num_heads: int
  mlp_ratio: float = 4.0
  drop_path_rate: float = 0.0
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: chex.Array, train: bool = False
               ) -> tuple[chex.Array, chex.Array]:
    dim = x.shape[-1]
    out, weights = Attention(
        self.num_heads, attention_dropout_rate=self.attention_dropout_rate,
        dropout_rate=self.dropout_rate, dtype=self.dtype, param_dtype=self.param_dtype,
        name="attn")(_layer_norm(self.dtype, self.param_dtype, "norm1")(x), train)
    x = x + DropPath(self.drop_path_rate, name="drop_path1")(out, train)
    out = Mlp(int(dim * self.mlp_ratio), dropout_rate=self.dropout_rate, dtype=self.dtype,
              param_dtype=self.param_dtype, name="mlp")(
                  _layer_norm(self.dtype, self.param_dtype, "norm2")(x), train)
    return x + DropPath(self.drop_path_rate, name="drop_path2")(out, train), weights


class VisionTransformer(_common.MixLayers, nn.Module):
  """A timm-layout Vision Transformer that applies a :class:`~mixjax.MixPlan`.

  Inputs are float ``[B, H, W, C]`` images already normalised by the caller,
  ``H`` and ``W`` multiples of ``patch_size``; integer inputs (e.g. uint8) raise
  ``ValueError``. There is no BatchNorm: ``train=True`` only turns on dropout
  and drop path, which draw from the ``'dropout'`` RNG (``rngs={'dropout':
  key}``). The defaults are ViT-S/16's (:func:`vit_s16`) but for
  ``mix_layers``.

  Attributes:
    num_classes: number of output logits.
    patch_size: side ``P`` of the square patches (conv kernel and stride).
    embed_dim: token width ``D``.
    depth: number of transformer blocks.
    num_heads: attention heads; ``embed_dim`` must be a multiple.
    mlp_ratio: MLP hidden width over ``embed_dim``.
    drop_path_rate: the last block's stochastic depth rate; earlier blocks'
      rise linearly from 0 (:func:`drop_path_rates`).
    dropout_rate: ``drop_rate`` of timm before 0.9 (DeiT's ``--drop``): after
      the position embedding, after each attention projection and in each MLP.
    attention_dropout_rate: dropout on the attention weights (``attn_drop_rate``).
    cls_token_std: std of the class token's initial N(0, std²) draw (clamped to
      ±2 as timm's ``trunc_normal_``): 1e-6 as current timm
      (``VisionTransformer.init_weights``); 0.02 as DeiT's timm 0.3.
    mix_layers: the eligible layers the model mixes at (0 = input, 1 = patch
      tokens, ``b + 2`` = output of block ``b``); None (default) means all
      ``depth + 2``. Pass the resolved tuple to :func:`mixjax.sample_plan`.
    dtype: computation dtype (float32 or bfloat16); LayerNorm and softmax run in
      float32; logits are float32.
    param_dtype: parameter dtype.
  """
  num_classes: int = 1000
  patch_size: int = 16
  embed_dim: int = 384
  depth: int = 12
  num_heads: int = 6
  mlp_ratio: float = 4.0
  drop_path_rate: float = 0.0
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  cls_token_std: float = 1e-6
  mix_layers: tuple[int, ...] | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def __post_init__(self) -> None:
    name = type(self).__name__
    for field in ("patch_size", "embed_dim", "depth", "num_heads"):
      value = getattr(self, field)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}.{field} must be a positive int, got {value!r}.")
    if self.embed_dim % self.num_heads:
      raise ValueError(
          f"{name}.embed_dim ({self.embed_dim}) must be a multiple of num_heads "
          f"({self.num_heads}).")
    for field in ("drop_path_rate", "dropout_rate", "attention_dropout_rate"):
      value = getattr(self, field)
      if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}.{field} must be in [0, 1], got {value!r}.")
    super().__post_init__()

  @property
  def num_mix_layers(self) -> int:
    """The number of eligible layers: the input, the patch tokens, one per block."""
    return self.depth + 2

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
      x: float ``[B, H, W, C]``, normalised; ``H``, ``W`` multiples of
        ``patch_size`` and the size the model was initialised with.
      plan: a :class:`~mixjax.MixPlan` (its layer may be traced) or None.
      train: apply dropout and drop path (needs a ``'dropout'`` RNG when any
        rate is > 0).
      return_hidden: also return the activations at every eligible layer.

    Returns:
      float32 logits ``[B, num_classes]``; with ``return_hidden``,
      ``(logits, hidden)`` where ``hidden[i]`` is the activation at eligible
      layer ``i`` (after mixing there): the input, the patch tokens ``[B, H/P,
      W/P, D]``, then each block's output ``[B, 1 + N, D]``;
      ``len(hidden) == num_mix_layers``.
    """
    name = type(self).__name__
    _common.check_float_input(x, 4, name)
    if x.ndim != 4:
      raise ValueError(f"{name} expects [B, H, W, C] images, got shape {tuple(x.shape)}.")
    batch, height, width, channels = x.shape
    patch = self.patch_size
    if height % patch or width % patch:
      raise ValueError(
          f"{name} needs H and W that are multiples of patch_size={patch}, got "
          f"{height}×{width}.")
    _common.check_plan(plan, self.mix_layers, name)
    hidden = []
    x = _common.maybe_mix(plan, 0, x, self.mix_layers)
    hidden.append(x)
    # PatchEmbed.proj: nn.Conv2d(C, D, P, stride=P) with PyTorch's default init.
    fan_in = channels * patch * patch
    tokens = nn.Conv(self.embed_dim, (patch, patch), strides=(patch, patch),
                     padding="VALID", kernel_init=_common.torch_default_kernel_init,
                     bias_init=_common.torch_default_bias_init(fan_in), dtype=self.dtype,
                     param_dtype=self.param_dtype, name="patch_embed")(x)
    tokens = _common.maybe_mix(plan, 1, tokens, self.mix_layers)
    hidden.append(tokens)
    num_patches = tokens.shape[1] * tokens.shape[2]
    # timm flattens NCHW to NLC: row-major over the grid, as this reshape of NHWC.
    tokens = tokens.reshape(batch, num_patches, self.embed_dim)
    cls_token = self.param("cls_token", timm_trunc_normal(self.cls_token_std),
                           (1, 1, self.embed_dim), self.param_dtype)
    pos_embed = self.param("pos_embed", _linear_init, (1, 1 + num_patches, self.embed_dim),
                           self.param_dtype)
    # VisionTransformer._pos_embed (no_embed_class=False): concat, then add.
    cls_tokens = jnp.broadcast_to(cls_token.astype(tokens.dtype), (batch, 1, self.embed_dim))
    x = jnp.concatenate([cls_tokens, tokens], axis=1) + pos_embed.astype(tokens.dtype)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    weights = None
    for i, rate in enumerate(drop_path_rates(self.drop_path_rate, self.depth)):
      x, weights = EncoderBlock(
          self.num_heads, mlp_ratio=self.mlp_ratio, drop_path_rate=rate,
          dropout_rate=self.dropout_rate,
          attention_dropout_rate=self.attention_dropout_rate, dtype=self.dtype,
          param_dtype=self.param_dtype, name=f"blocks_{i}")(x, train)
      x = _common.maybe_mix(plan, i + 2, x, self.mix_layers)
      hidden.append(x)
    # The class token's query row of the last block, its keys after the class token.
    self.sow("intermediates", "cls_attention", weights[:, :, 0, 1:])
    x = _layer_norm(self.dtype, self.param_dtype, "norm")(x)
    logits = _dense(self.num_classes, self.dtype, self.param_dtype, "head")(x[:, 0])
    logits = logits.astype(jnp.float32)
    return (logits, tuple(hidden)) if return_hidden else logits


#: vit_s16's default ``mix_layers``: the input and the outputs of blocks 0–5.
VIT_S16_MIX_LAYERS = (0, 2, 3, 4, 5, 6, 7)


def vit_s16(num_classes: int = 1000, **kwargs: Any) -> VisionTransformer:
  """ViT-S/16: timm's ``vit_small_patch16_224`` (DeiT-S's layout).

  ``patch_size=16, embed_dim=384, depth=12, num_heads=6``, MLP ratio 4, qkv
  bias, class-token head. Trainable parameters: 22,050,664 for 1,000 classes at
  224×224. ``mix_layers`` defaults to ``(0, 2, 3, 4, 5, 6, 7)``: the input and
  the outputs of the first six blocks (the patch tokens, layer 1, are an affine
  map of the input; see the module doc). The class token starts as DeiT-S's does
  (``cls_token_std=0.02``: DeiT pins timm 0.3.2, ``requirements.txt``; current timm
  draws it with std 1e-6, ``cls_token_std=1e-6``); the rest is the same in both.
  """
  kwargs.setdefault("mix_layers", VIT_S16_MIX_LAYERS)
  kwargs.setdefault("cls_token_std", 0.02)
  return VisionTransformer(num_classes=num_classes, patch_size=16, embed_dim=384,
                           depth=12, num_heads=6, mlp_ratio=4.0, **kwargs)
