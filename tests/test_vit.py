"""Tests for mixjax.models.vit: timm's ViT-S/16 (``vit_small_patch16_224``) layout.

Kept cheap: ViT-S/16 itself is only traced (``jax.eval_shape``, nothing
compiled). What runs is a tiny ViT of the same code (patch 4 on 16×16 images,
so 16 patches; D = 32, 2 heads, depth 2): one forward program that every mixed
layer shares, one bfloat16 forward, one gradient, one initialisation (a
depth-1 model with a 16×16 patch grid, for sample sizes) and the drop path
module on its own.
"""

from __future__ import annotations

import functools
import math

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

import mixjax
from mixjax import models
from mixjax.models import vit
from tests.model_variables import numpy_variables
from tests.plans import plans_for_every_layer
from tests.tolerances import (
    F32_EPS,
    NETWORK_ULPS,
    assert_close_in_ulps,
    differ_beyond_rounding,
)

# A blend λ·a + (1 − λ)·b in float32 rounds 1 − λ, each product and the sum: at most
# 2 ulps of max(|a|, |b|), whatever the order or FMA (as in tests/test_resnet.py).
BLEND_ULPS = 2

# The tiny ViT of the forward tests: 16×16×3 images, 4×4 patches → a 4×4 grid.
TINY = {"num_classes": 10, "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2}
TINY_SHAPE = (4, 16, 16, 3)


@functools.cache
def _variable_shapes(num_classes: int = 1000, size: int = 224, **kwargs) -> dict:
  """``vit_s16(num_classes, **kwargs)``'s variables for ``[1, size, size, 3]``
  images, as shapes only (nothing computed or compiled)."""
  model = vit.vit_s16(num_classes, **kwargs)
  return jax.eval_shape(model.init, jax.random.key(0),
                        jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))


def _num_params(num_classes: int = 1000, size: int = 224) -> int:
  params = _variable_shapes(num_classes, size)["params"]
  return sum(math.prod(v.shape) for v in jax.tree.leaves(params))


# --- Parameter counts --------------------------------------------------------
# Derived from timm's layer list (timm/models/vision_transformer.py,
# VisionTransformer.__init__ and Block; timm/layers Attention, Mlp, PatchEmbed,
# LayerNorm), not from mixjax's modules.


def _reference_timm_vit(num_classes: int, num_patches: int, patch: int = 16, dim: int = 384,
                        depth: int = 12, mlp_ratio: int = 4, in_chans: int = 3) -> int:
  """``VisionTransformer(patch_size, embed_dim=dim, depth, mlp_ratio, qkv_bias=True,
  class_token=True, global_pool="token")``, as the per-layer shapes of its parameters."""
  hidden = mlp_ratio * dim
  shapes = [
      (dim, in_chans, patch, patch), (dim,),  # patch_embed.proj: Conv2d weight, bias.
      (1, 1, dim),                            # cls_token.
      (1, 1 + num_patches, dim),              # pos_embed (covers the class token).
  ]
  block = [
      (dim,), (dim,),                         # norm1: weight, bias.
      (3 * dim, dim), (3 * dim,),             # attn.qkv: Linear(dim, 3·dim), qkv_bias.
      (dim, dim), (dim,),                     # attn.proj.
      (dim,), (dim,),                         # norm2.
      (hidden, dim), (hidden,),               # mlp.fc1.
      (dim, hidden), (dim,),                  # mlp.fc2.
  ]
  shapes += block * depth
  shapes += [(dim,), (dim,),                  # norm (final_norm, not fc_norm).
             (num_classes, dim), (num_classes,)]  # head.
  return sum(math.prod(s) for s in shapes)


@pytest.mark.parametrize("num_classes, size, num_patches", [
    (1000, 224, 196), (10, 224, 196), (1000, 32, 4)])
def test_parameter_counts_match_timm(num_classes, size, num_patches):
  assert _num_params(num_classes, size) == _reference_timm_vit(num_classes, num_patches)


def test_documented_parameter_count():
  """timm's vit_small_patch16_224 (and DeiT-S): 22,050,664 for 1,000 classes."""
  assert _reference_timm_vit(1000, 196) == 22_050_664
  assert vit.vit_s16().num_classes == 1000
  assert _num_params() == 22_050_664
  # 32×32 has a 2×2 grid: 197 − 5 fewer position embedding rows.
  assert _num_params(1000, 32) == 22_050_664 - 192 * 384


# --- Structure (shapes only) -------------------------------------------------


def test_shapes_on_224():
  model = vit.vit_s16(1000)
  (logits, hidden), state = jax.eval_shape(
      functools.partial(model.apply, return_hidden=True, mutable="intermediates"),
      _variable_shapes(), jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32))
  assert logits.shape == (2, 1000) and logits.dtype == jnp.float32
  assert [h.shape for h in hidden] == [(2, 224, 224, 3), (2, 14, 14, 384)] + [(2, 197, 384)] * 12
  assert state["intermediates"]["cls_attention"][0].shape == (2, 6, 196)


def test_parameter_layout():
  """timm's module names and shapes (Flax kernels are [in, out], convs HWIO)."""
  params = _variable_shapes()["params"]
  blocks = {f"blocks_{i}" for i in range(12)}
  assert set(params) == blocks | {"patch_embed", "cls_token", "pos_embed", "norm", "head"}
  shapes = jax.tree.map(lambda a: a.shape, params)
  assert shapes["patch_embed"] == {"kernel": (16, 16, 3, 384), "bias": (384,)}
  assert shapes["cls_token"] == (1, 1, 384) and shapes["pos_embed"] == (1, 197, 384)
  for block in blocks:
    assert shapes[block] == {
        "norm1": {"scale": (384,), "bias": (384,)},
        "attn": {"qkv": {"kernel": (384, 1152), "bias": (1152,)},
                 "proj": {"kernel": (384, 384), "bias": (384,)}},
        "norm2": {"scale": (384,), "bias": (384,)},
        "mlp": {"fc1": {"kernel": (384, 1536), "bias": (1536,)},
                "fc2": {"kernel": (1536, 384), "bias": (384,)}}}
  assert shapes["head"] == {"kernel": (384, 1000), "bias": (1000,)}


# --- Configuration and input checks ------------------------------------------


def test_defaults_and_registry():
  model = models.get_model("vit_s16", 1000)
  assert isinstance(model, vit.VisionTransformer) and models.MODELS["vit_s16"] is vit.vit_s16
  assert "vit_s16" in models.list_models()
  assert (model.patch_size, model.embed_dim, model.depth, model.num_heads,
          model.mlp_ratio) == (16, 384, 12, 6, 4.0)
  assert model.drop_path_rate == model.dropout_rate == model.attention_dropout_rate == 0.0
  assert model.cls_token_std == 0.02  # DeiT's timm 0.3.2 (current timm: 1e-6).
  assert vit.VisionTransformer(num_classes=10).cls_token_std == 1e-6
  assert model.eligible_layers == tuple(range(14))
  # The input and the outputs of blocks 0–5 (layer 1, the patch tokens, is an
  # affine map of the input: see test_patch_layer_blend_equals_input_blend).
  assert model.mix_layers == vit.VIT_S16_MIX_LAYERS == (0, 2, 3, 4, 5, 6, 7)
  assert models.get_model("vit_s16", 10, mix_layers=(0, 1)).mix_layers == (0, 1)
  assert models.get_model("vit_s16", 10, mix_layers=None).mix_layers == tuple(range(14))
  assert vit.VisionTransformer(**TINY).mix_layers == (0, 1, 2, 3)  # None: all.


def test_invalid_configuration():
  with pytest.raises(ValueError, match="mix_layers"):
    models.get_model("vit_s16", 10, mix_layers=(0, 14))
  with pytest.raises(ValueError, match=r"embed_dim \(30\) must be a multiple of num_heads"):
    vit.VisionTransformer(embed_dim=30, num_heads=4)
  with pytest.raises(ValueError, match="depth must be a positive int"):
    vit.VisionTransformer(depth=0)
  with pytest.raises(ValueError, match=r"drop_path_rate must be in \[0, 1\]"):
    models.get_model("vit_s16", 10, drop_path_rate=1.5)
  with pytest.raises(ValueError, match=r"rate must be in \[0, 1\]"):
    vit.DropPath(-0.1)


def test_input_errors():
  model = vit.VisionTransformer(**TINY)
  init = lambda shape, dtype=jnp.float32: jax.eval_shape(
      model.init, jax.random.key(0), jax.ShapeDtypeStruct(shape, dtype))
  with pytest.raises(ValueError, match="normalise"):
    init(TINY_SHAPE, jnp.uint8)
  with pytest.raises(ValueError, match="rank >= 4"):
    init((4, 16, 16))
  with pytest.raises(ValueError, match=r"multiples of patch_size=4, got 18×16"):
    init((4, 18, 16, 3))
  # The position embedding is sized at init: other sizes do not fit it.
  variables = init(TINY_SHAPE)
  with pytest.raises(flax.errors.ScopeParamShapeError, match="pos_embed"):
    jax.eval_shape(model.apply, variables, jax.ShapeDtypeStruct((4, 32, 32, 3), jnp.float32))
  # A plan that may draw a layer the model does not mix at.
  narrow = vit.VisionTransformer(**TINY, mix_layers=(0, 2))
  x = jax.ShapeDtypeStruct(TINY_SHAPE, jnp.float32)
  plan = jax.eval_shape(lambda k: mixjax.sample_plan(k, 4, (0, 1, 2)), jax.random.key(0))
  with pytest.raises(ValueError, match=r"may draw layers \[1\].*mix_layers=\(0, 2\)"):
    jax.eval_shape(lambda v, p: narrow.apply(v, x, plan=p), variables, plan)


# --- Drop path ---------------------------------------------------------------


def test_dropout_and_drop_path_placement():
  """Drop path rates rise linearly over the blocks as timm's
  (``torch.linspace(0, drop_path_rate, depth)``, block i gets the i-th); dropout
  sits after the position embedding, on the attention weights, after ``proj``
  and twice in the MLP. Recorded from a trace of ViT-S/16 (nothing compiled)."""
  np.testing.assert_allclose(vit.drop_path_rates(0.1, 12), np.linspace(0, 0.1, 12),
                             rtol=0, atol=1e-15)
  assert vit.drop_path_rates(0.3, 1) == (0.0,)
  model = vit.vit_s16(10, drop_path_rate=0.1, dropout_rate=0.2, attention_dropout_rate=0.3)
  calls = []

  def record(next_fun, args, kwargs, context):
    module = context.module
    if isinstance(module, (vit.DropPath, nn.Dropout)) and context.method_name == "__call__":
      deterministic = (kwargs.get("deterministic", module.deterministic)
                       if isinstance(module, nn.Dropout) else None)
      calls.append(("/".join(module.scope.path), module.rate, deterministic))
    return next_fun(*args, **kwargs)

  variables = _variable_shapes(10, 32)  # The same shapes whatever the rates.
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  for train in (True, False):
    calls.clear()
    with nn.intercept_methods(record):
      jax.eval_shape(functools.partial(model.apply, train=train), variables, x,
                     rngs={"dropout": jax.random.key(0)})
    expected = [("Dropout_0", 0.2, not train)]
    for i, rate in enumerate(vit.drop_path_rates(0.1, 12)):
      block = f"blocks_{i}"
      expected += [(f"{block}/attn/Dropout_0", 0.3, not train),
                   (f"{block}/attn/Dropout_1", 0.2, not train),
                   (f"{block}/drop_path1", rate, None),
                   (f"{block}/mlp/Dropout_0", 0.2, not train),
                   (f"{block}/mlp/Dropout_1", 0.2, not train),
                   (f"{block}/drop_path2", rate, None)]
    assert calls == expected
  # Training with a rate > 0 needs the "dropout" RNG.
  with pytest.raises(flax.errors.InvalidRngError, match="dropout"):
    jax.eval_shape(functools.partial(model.apply, train=True), variables, x)


def test_drop_path_is_identity_in_eval_and_drops_whole_examples_in_train():
  """Per example: all of ``x`` zeroed (probability p) or all of it scaled by 1/(1 − p).

  At a fixed seed the number kept of n = 20,000 examples is Binomial(n, 1 − p);
  the check allows 5 standard deviations, √(n·p·(1 − p)) = 61 for p = 0.25, i.e.
  ±306 around 15,000 (a correct draw fails with probability 6·10⁻⁷; a rate off by
  0.03, 600 examples, cannot pass).
  """
  rate, n = 0.25, 20_000
  x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, (n, 3, 2)).astype(np.float32))
  module = vit.DropPath(rate)
  np.testing.assert_array_equal(module.apply({}, x), x)
  np.testing.assert_array_equal(module.apply({}, x, train=False), x)
  out = np.asarray(jax.jit(lambda x, key: module.apply({}, x, train=True,
                                                       rngs={"dropout": key}))(
      x, jax.random.key(0)))
  ratio = out / np.asarray(x)
  kept = np.all(ratio != 0, axis=(1, 2))
  np.testing.assert_array_equal(ratio[~kept], 0.0)
  np.testing.assert_allclose(ratio[kept], 1 / (1 - rate), rtol=2 * F32_EPS)
  sigma = math.sqrt(n * rate * (1 - rate))
  assert abs(kept.sum() - n * (1 - rate)) <= 5 * sigma, kept.sum()
  assert vit.DropPath(0.0).apply({}, x, train=True) is x  # No draw, no RNG needed.


# --- Initialisation ----------------------------------------------------------


def test_initial_parameter_distributions():
  """timm's ``weight_init=""`` (VisionTransformer.init_weights, init_weights_vit_timm).

  A depth-1 model with a 16×16 patch grid (64×64 images, patch 4, D = 64), so
  that ``pos_embed`` has n = 257·64 = 16,448 values. Sample std s of n draws
  of N(0, σ²) has standard error σ/√(2n) (0.55 % here): |s/σ − 1| ≤ 5/√(2n) and
  |mean| ≤ 5σ/√n. At a fixed seed a correct initialiser fails a 5-SE band with
  probability < 10⁻⁶; Kolmogorov–Smirnov at α = 10⁻³ separates timm's ±100σ
  truncation (a plain normal) from Flax's ±2σ ``truncated_normal``.
  """
  model = vit.VisionTransformer(num_classes=10, patch_size=4, embed_dim=64, depth=1,
                                num_heads=2)
  x = np.zeros((1, 64, 64, 3), np.float32)
  deit = model.clone(cls_token_std=0.02)
  params, deit_cls = jax.jit(lambda key: (model.init(key, x)["params"],
                                          deit.init(key, x)["params"]["cls_token"]))(
      jax.random.key(7, impl="rbg"))
  params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  std = 0.02
  pos = params["pos_embed"].ravel()
  n = pos.size
  assert n == 257 * 64
  assert abs(pos.std() / std - 1) <= 5 / math.sqrt(2 * n), pos.std()
  assert abs(pos.mean()) <= 5 * std / math.sqrt(n)
  normal = scipy.stats.norm(0, std).cdf
  assert scipy.stats.kstest(pos, normal).pvalue > 1e-3
  # Every nn.Linear: trunc_normal_(std=.02) weight, zero bias.
  block = params["blocks_0"]
  linears = [block["attn"]["qkv"], block["attn"]["proj"], block["mlp"]["fc1"],
             block["mlp"]["fc2"], params["head"]]
  weights = np.concatenate([p["kernel"].ravel() for p in linears])
  assert scipy.stats.kstest(weights, normal).pvalue > 1e-3
  for p in linears:
    np.testing.assert_array_equal(p["bias"], 0.0)
  # cls_token: normal_(std=1e-6), or DeiT's .02; 64 draws stay well inside 6σ and
  # their largest reaches past 1σ (a normal's 64 draws all stay inside with
  # probability 0.68⁶⁴ ≈ 10⁻¹¹).
  for cls, cls_std in ((params["cls_token"], 1e-6), (np.asarray(deit_cls, np.float64), 0.02)):
    assert cls.size == 64 and cls_std < np.abs(cls).max() < 6 * cls_std
  for norm in (block["norm1"], block["norm2"], params["norm"]):
    np.testing.assert_array_equal(norm["scale"], 1.0)
    np.testing.assert_array_equal(norm["bias"], 0.0)
  # patch_embed: PyTorch's Conv2d default, U(±1/√fan_in) for weight and bias.
  fan_in = 3 * 4 * 4
  kernel = params["patch_embed"]["kernel"].ravel() * math.sqrt(fan_in)
  assert np.abs(kernel).max() <= 1 + 2 * F32_EPS
  assert scipy.stats.kstest(kernel, scipy.stats.uniform(-1, 2).cdf).pvalue > 1e-3
  bias = params["patch_embed"]["bias"] * math.sqrt(fan_in)
  assert np.abs(bias).max() <= 1 + 2 * F32_EPS and np.unique(bias).size == bias.size


# --- Forward pass: the tiny ViT with a plan at every eligible layer ----------

_sample_plan = jax.jit(mixjax.sample_plan, static_argnums=(1, 2))


def _tiny_variables(model, shape=TINY_SHAPE):
  """numpy_variables with a random class token and position embedding (it fills
  them with zeros), so that every token differs."""
  variables = numpy_variables(model, jnp.zeros(shape, jnp.float32))
  rng = np.random.default_rng(3)
  params = dict(variables["params"])
  for name in ("cls_token", "pos_embed"):
    params[name] = jnp.asarray(rng.standard_normal(params[name].shape).astype(np.float32))
  return {**variables, "params": params}


@pytest.fixture(scope="module")
def tiny_case():
  """(model, variables, x, apply, traces, plans): the tiny ViT mixing at all 4 layers.

  ``apply`` is one jitted evaluation forward returning ``(logits, hidden,
  cls_attention)``; ``plans[k]`` was drawn by ``sample_plan`` at layer ``k``.
  """
  model = vit.VisionTransformer(**TINY)
  assert model.mix_layers == (0, 1, 2, 3)
  x = jnp.asarray(np.random.default_rng(1).standard_normal(TINY_SHAPE).astype(np.float32))
  variables = _tiny_variables(model)
  traces = []

  @jax.jit
  def apply(variables, x, plan):
    traces.append(plan.layers)
    (logits, hidden), state = model.apply(variables, x, plan, return_hidden=True,
                                          mutable="intermediates")
    return logits, hidden, state["intermediates"]["cls_attention"][0]

  plans = dict(zip(model.mix_layers,
                   plans_for_every_layer(model.mix_layers, 4, _sample_plan), strict=True))
  return model, variables, x, apply, traces, plans


def _unmixed(plans):
  """A plan of the same structure that draws layer −1: nothing is mixed."""
  return plans[0].replace(layer=jnp.asarray(np.int32(-1)))


def test_forward_mixes_only_at_the_drawn_layer(tiny_case):
  model, variables, x, apply, traces, plans = tiny_case
  plain_logits, plain_hidden, _ = apply(variables, x, _unmixed(plans))
  assert [h.shape for h in plain_hidden] == [
      (4, 16, 16, 3), (4, 4, 4, 32), (4, 17, 32), (4, 17, 32)]
  all_logits = [plain_logits]
  for k in model.mix_layers:
    plan = plans[k]
    logits, hidden, _ = apply(variables, x, plan)
    chex.assert_shape(logits, (4, 10))
    assert logits.dtype == jnp.float32
    assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves((logits, hidden)))
    for j in range(k):  # Before the drawn layer nothing changes.
      np.testing.assert_array_equal(hidden[j], plain_hidden[j])
    # The drawn layer holds λ·h + (1 − λ)·h[perm] of the unmixed activations.
    h = np.asarray(plain_hidden[k], np.float64)
    lam = np.asarray(plan.params.lam, np.float64).reshape((-1,) + (1,) * (h.ndim - 1))
    perm = np.asarray(plan.params.perm)
    assert_close_in_ulps(hidden[k], lam * h + (1 - lam) * h[perm], BLEND_ULPS, scale=h)
    assert not np.all(perm == np.arange(4))  # So mixing changed something.
    all_logits.append(logits)
  assert len(traces) == 1  # One program serves every layer.
  for a in range(len(all_logits)):
    for b in range(a):
      assert differ_beyond_rounding(all_logits[a], all_logits[b]), (a, b)


def test_patch_layer_blend_equals_input_blend(tiny_case):
  """The patch embedding is affine, so one blend at layer 1 or at layer 0 gives
  the same logits up to rounding: why vit_s16's default mix_layers skip layer 1."""
  _, variables, x, apply, _, plans = tiny_case
  at_patches, _, _ = apply(variables, x, plans[1])
  at_input, _, _ = apply(variables, x, plans[1].replace(layer=jnp.asarray(np.int32(0))))
  assert_close_in_ulps(at_patches, at_input, NETWORK_ULPS,
                       scale=np.maximum(np.abs(at_patches), np.abs(at_input)))


def _layer_norm(h, scale, bias):
  mean = h.mean(-1, keepdims=True)
  var = ((h - mean) ** 2).mean(-1, keepdims=True)
  return (h - mean) / np.sqrt(var + 1e-6) * scale + bias


def _softmax(logits):
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  return weights / weights.sum(-1, keepdims=True)


def _timm_forward(params, x, patch: int, num_heads: int):
  """timm's VisionTransformer.forward transcribed in float64 NumPy, for ``params`` in
  mixjax's layout: (logits, hidden at every eligible layer, the last block's
  attention logits q·kᵀ/√d_h [B, heads, N, N]).

  PatchEmbed (a stride-P conv is a matmul of the P×P×C patches, flattened in the
  kernel's HWI order), _pos_embed (concat the class token, then add), each Block
  (x + attn(norm1(x)), x + mlp(norm2(x)) with Attention's reshape(B, N, 3, heads,
  head_dim).permute(2, 0, 3, 1, 4) and exact GELU), norm, head on token 0.
  """
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  x = np.asarray(x, np.float64)
  batch, height, width, channels = x.shape
  gh, gw = height // patch, width // patch
  dim = p["pos_embed"].shape[-1]
  patches = x.reshape(batch, gh, patch, gw, patch, channels).transpose(0, 1, 3, 2, 4, 5)
  tokens = (patches.reshape(batch, gh * gw, -1) @ p["patch_embed"]["kernel"].reshape(-1, dim)
            + p["patch_embed"]["bias"])
  hidden = [x, tokens.reshape(batch, gh, gw, dim)]
  z = np.concatenate([np.broadcast_to(p["cls_token"], (batch, 1, dim)), tokens], 1)
  z = z + p["pos_embed"]
  length, head_dim = z.shape[1], dim // num_heads
  depth = sum(name.startswith("blocks_") for name in p)
  for i in range(depth):
    b = p[f"blocks_{i}"]
    h = _layer_norm(z, b["norm1"]["scale"], b["norm1"]["bias"])
    qkv = h @ b["attn"]["qkv"]["kernel"] + b["attn"]["qkv"]["bias"]
    q, k, v = qkv.reshape(batch, length, 3, num_heads, head_dim).transpose(2, 0, 3, 1, 4)
    attn_logits = (q * head_dim**-0.5) @ k.transpose(0, 1, 3, 2)
    attn = _softmax(attn_logits)
    out = (attn @ v).transpose(0, 2, 1, 3).reshape(batch, length, dim)
    z = z + out @ b["attn"]["proj"]["kernel"] + b["attn"]["proj"]["bias"]
    h = _layer_norm(z, b["norm2"]["scale"], b["norm2"]["bias"])
    h = h @ b["mlp"]["fc1"]["kernel"] + b["mlp"]["fc1"]["bias"]
    h = 0.5 * h * (1 + scipy.special.erf(h / math.sqrt(2)))  # torch.nn.GELU().
    z = z + h @ b["mlp"]["fc2"]["kernel"] + b["mlp"]["fc2"]["bias"]
    hidden.append(z)
  z = _layer_norm(z, p["norm"]["scale"], p["norm"]["bias"])
  return z[:, 0] @ p["head"]["kernel"] + p["head"]["bias"], hidden, attn_logits


def test_forward_matches_a_transcription_of_timm(tiny_case):
  """The unmixed forward against :func:`_timm_forward` in float64. Two blocks of
  float32 rounding: measured ≤ 4 ulps of each array's scale, NETWORK_ULPS allows
  64× that."""
  model, variables, x, apply, _, plans = tiny_case
  logits, hidden, _ = apply(variables, x, _unmixed(plans))
  ref_logits, ref_hidden, _ = _timm_forward(variables["params"], x, model.patch_size,
                                            model.num_heads)
  assert_close_in_ulps(logits, ref_logits, NETWORK_ULPS)
  for i, (h, ref) in enumerate(zip(hidden, ref_hidden, strict=True)):
    assert_close_in_ulps(h, ref, NETWORK_ULPS, err_msg=f"hidden[{i}]")


def test_cls_attention_is_the_last_blocks_class_token_row(tiny_case):
  """``cls_attention`` [B, heads, N] is the patch part of the class token's softmax
  row in the last block; with the class token's weight on itself the row sums to 1.

  Recomputed by :func:`_timm_forward` in float64. Tolerance: the float32 logits
  q·k carry a relative error of a few ulps per term (LayerNorm, the 32-long qkv
  dot, the 16-long q·k), so the weights w = softmax(·) are off by ≲ w·|Δlogit|;
  64 ulps of the largest logit magnitude (≥ 1) bounds it with margin (measured:
  under 1).
  """
  model, variables, x, apply, _, plans = tiny_case
  _, _, attention = apply(variables, x, _unmixed(plans))
  assert attention.shape == (4, 2, 16) and attention.dtype == jnp.float32
  *_, attn_logits = _timm_forward(variables["params"], x, model.patch_size, model.num_heads)
  cls_logits = attn_logits[:, :, 0]  # The class token's query: [B, heads, 1 + N] keys.
  row = _softmax(cls_logits)
  tolerance = 64 * F32_EPS * max(1.0, float(np.abs(cls_logits).max()))
  np.testing.assert_allclose(attention, row[..., 1:], rtol=0, atol=tolerance)
  # The sown part excludes the class token's weight on itself: with it, rows sum to 1.
  sums = np.asarray(attention, np.float64).sum(-1)
  np.testing.assert_allclose(sums + row[..., 0], 1.0, rtol=0, atol=17 * tolerance)
  assert np.all(sums < 1) and np.all(row[..., 0] > tolerance)


# --- bfloat16 ----------------------------------------------------------------


def _equations(jaxpr):
  """Every equation of a jaxpr, nested jaxprs (jit, cond, custom_jvp...) included."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (list, tuple)) else (value,):
        sub = getattr(sub, "jaxpr", sub)
        if hasattr(sub, "eqns"):
          yield from _equations(sub)


def test_bfloat16_computes_in_bfloat16_with_float32_params_norms_and_softmax():
  model = vit.VisionTransformer(**TINY, dtype=jnp.bfloat16)
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jax.ShapeDtypeStruct(TINY_SHAPE, jnp.float32))
  assert {v.dtype for v in jax.tree.leaves(shapes)} == {jnp.dtype(jnp.float32)}
  variables = _tiny_variables(model)
  x = jnp.asarray(np.random.default_rng(2).standard_normal(TINY_SHAPE).astype(np.float32))
  plan = _sample_plan(jax.random.key(0), 4, model.mix_layers)

  def forward(variables, x, plan):
    return model.apply(variables, x, plan, return_hidden=True)

  eqns = list(_equations(jax.make_jaxpr(forward)(variables, x, plan).jaxpr))
  dtypes = lambda name: {v.aval.dtype for e in eqns if e.primitive.name == name
                         for v in e.invars}
  assert dtypes("exp") == {jnp.dtype(jnp.float32)}    # Softmax.
  assert dtypes("rsqrt") == {jnp.dtype(jnp.float32)}  # LayerNorm.
  assert dtypes("dot_general") == {jnp.dtype(jnp.bfloat16)}  # qkv, q·k, attn·v, MLP, head.
  assert dtypes("conv_general_dilated") == {jnp.dtype(jnp.bfloat16)}  # patch_embed.
  logits, hidden = jax.jit(forward)(variables, x, plan)
  assert logits.dtype == jnp.float32 and logits.shape == (4, 10)
  assert hidden[0].dtype == jnp.float32  # The input, mixed in its own dtype.
  assert {h.dtype for h in hidden[1:]} == {jnp.dtype(jnp.bfloat16)}
  assert np.isfinite(np.asarray(logits)).all()
  assert all(np.isfinite(np.asarray(h, np.float32)).all() for h in hidden)


# --- Gradient under CutMix, training mode ------------------------------------


def test_gradient_under_cutmix_plan_at_the_patch_layer():
  """A CutMix plan drawn at layer 1 (the patch tokens), in training mode with
  drop path (dropout is left at 0: its masks add seconds of compile time; where
  it applies is checked in test_dropout_and_drop_path_placement). Boxes are in
  input pixels, so MixPlan.mix_at leaves layer 1 as it is (as every model's
  hidden layers); the same program with the plan at layer 0 pastes the boxes
  into the images."""
  model = vit.VisionTransformer(**TINY, drop_path_rate=0.5, mix_layers=(0, 1))
  variables = _tiny_variables(model)
  x = jnp.asarray(np.random.default_rng(4).standard_normal(TINY_SHAPE).astype(np.float32))
  labels = jnp.arange(4) % 10
  params = jax.jit(mixjax.sample_cutmix, static_argnums=(1, 2))(jax.random.key(1), 4, (16, 16))
  plan = mixjax.MixPlan(layer=jnp.asarray(np.int32(1)), params=params, layers=(0, 1))

  @jax.jit
  def grad(variables, plan, key):
    def loss(params):
      logits, hidden = model.apply({"params": params}, x, plan, train=True,
                                   return_hidden=True, rngs={"dropout": key})
      soft = plan.mix_labels(labels, 10)
      return -jnp.mean(jnp.sum(soft * jax.nn.log_softmax(logits), -1)), hidden[:2]
    return jax.value_and_grad(loss, has_aux=True)(variables["params"])

  key = jax.random.key(2, impl="rbg")  # Cheaper to compile than threefry.
  (value, hidden), grads = grad(variables, plan, key)
  assert np.isfinite(float(value))
  leaves = [np.asarray(g) for g in jax.tree.leaves(grads)]
  assert all(np.isfinite(g).all() for g in leaves)
  assert any(np.any(g != 0) for g in leaves)
  np.testing.assert_array_equal(hidden[0], x)
  (_, unmixed), _ = grad(variables, plan.replace(layer=jnp.asarray(np.int32(-1))), key)
  np.testing.assert_array_equal(hidden[1], unmixed[1])  # Layer 1 passed through.
  (_, at_input), _ = grad(variables, plan.replace(layer=jnp.asarray(np.int32(0))), key)
  np.testing.assert_array_equal(at_input[0], jax.jit(mixjax.mix_images)(params, x))
  assert not np.array_equal(at_input[0], x)
