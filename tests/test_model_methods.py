"""The ImageNet models (issue 22) under every method, for a step on tiny images.

ResNet-18's basic blocks, ResNet-50's bottlenecks and ViT-S/16's encoder, each at a tiny
width and depth (the same modules and mixing code as the full models, whose layouts and
parameter counts test_resnet.py and test_vit.py check): one compiled program per model
takes a gradient step with every registered mixer at the input (one method per example,
so every method's params meet the model in the same batch) and one with Manifold Mixup.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mixjax as mx
from mixjax.models import ResNet, VisionTransformer

B, SIZE, K = 24, 32, 5  # 32 px: GridMix's defaults need 24.

MODELS = {
    "resnet18-basic": ResNet(stage_sizes=(1, 1, 1, 1), block="basic", num_classes=K,
                             num_filters=4, mix_layers=(0, 1, 2, 3, 4)),
    "resnet50-bottleneck": ResNet(stage_sizes=(1, 1, 1, 1), block="bottleneck", num_classes=K,
                                  num_filters=4, mix_layers=(0, 1, 2, 3, 4)),
    "vit_s16-encoder": VisionTransformer(num_classes=K, patch_size=8, embed_dim=16, depth=2,
                                         num_heads=2, drop_path_rate=0.1),
}


@functools.cache
def _every_method():
  """Every registered mixer drawn per example (example ``b`` takes mixer ``b mod k``), and
  the batch: drawn once for the three models (one compiled draw)."""
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.normal(size=(B, SIZE, SIZE, 3)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, K, B), jnp.int32)
  names = [n for n in mx.list_mixers() if n != "identity"]

  @jax.jit
  def draw(key, images):
    drawn = []
    for name, k in zip(names, jax.random.split(key, len(names)), strict=True):
      extra = {"mixers": (mx.Mixup(), mx.FMix())} if name == "choice" else {}
      mixer = mx.get_mixer(name, num_classes=K, mode="elem", **extra)
      drawn.append(mixer.sample(k, B, images.shape[1:], images=images))
    return mx.select_params(jnp.arange(B) % len(names), mx.common_structure(*drawn))

  return names, draw(jax.random.key(1), images), images, labels


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_step_under_every_method_and_manifold_mixup(name):
  """Two gradient steps in one program: every mixer at the input, and Manifold Mixup
  at a layer drawn from the model's eligible layers (a traced layer, as the trainer
  draws it; test_resnet and test_vit pin the mix at each layer)."""
  model = MODELS[name]
  names, params, images, labels = _every_method()
  # lazy_init: the initialisers without the forward pass (much less to compile).
  batch = jax.ShapeDtypeStruct((1,) + images.shape[1:], images.dtype)
  variables = jax.jit(lambda k: model.lazy_init(k, batch))(jax.random.key(0))
  layers = tuple(model.mix_layers or range(model.num_mix_layers))
  tx = optax.sgd(0.1, momentum=0.9)

  @jax.jit
  def steps(variables, key):
    plans = {"every method": mx.MixPlan.at_input(params),
             "manifold_mixup": mx.sample_plan(key, B, layers, alpha=2.0, mode="elem")}
    out = {}
    for label, plan in plans.items():
      targets = plan.mix_labels(labels, K)

      def loss_fn(p, plan=plan, targets=targets):
        logits, _ = model.apply({**variables, "params": p}, images, plan=plan, train=True,
                                mutable=["batch_stats"], rngs={"dropout": key})
        return mx.soft_target_cross_entropy(logits, targets).mean()

      loss, grads = jax.value_and_grad(loss_fn)(variables["params"])
      updates, _ = tx.update(grads, tx.init(variables["params"]))
      out[label] = (loss, optax.tree.norm(grads),
                    optax.apply_updates(variables["params"], updates), targets, plan.layer)
    return out

  out = steps(variables, jax.random.key(2))
  assert len(names) >= 9
  assert int(out["manifold_mixup"][-1]) in layers
  for label, (loss, grad_norm, new, targets, _) in out.items():
    assert np.isfinite(loss) and 0 < grad_norm < np.inf, (name, label)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(new)), (name, label)
    moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), new, variables["params"])
    assert all(jax.tree.leaves(moved)), (name, label, moved)
    # The labels were mixed: some example's row is not one-hot.
    assert np.any(np.asarray(targets).max(axis=1) < 1), (name, label)
