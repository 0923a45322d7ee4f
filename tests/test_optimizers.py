"""The optimisers (issue 22): each option against updates computed by hand, the EMA, and
gradient accumulation in the trainer against one batch k times larger."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import digits
from mixjax import training
from mixjax.data import load_dataset
from mixjax.models import get_model
from tests.tolerances import STEP_ULPS, assert_close_in_ulps, assert_trees_close_in_ulps

# Rounding of a few float32 products and sums per element: a handful of ulps.
ULPS = 8


def _params():
  """A ViT-like tree: a dense layer, a norm, a conv, a position embedding, a class token."""
  rng = np.random.default_rng(0)
  shapes = {"dense": {"kernel": (3, 4), "bias": (4,)}, "norm": {"scale": (4,), "bias": (4,)},
            "conv": {"kernel": (3, 3, 2, 4)}, "pos_embed": (1, 5, 4), "cls_token": (1, 1, 4)}
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s), jnp.float32), shapes,
                      is_leaf=lambda s: isinstance(s, tuple))


DECAYED_BY_TIMM = {"dense": {"kernel": True, "bias": False},
                   "norm": {"scale": False, "bias": False}, "conv": {"kernel": True},
                   "pos_embed": False, "cls_token": False}


def test_the_timm_mask_decays_only_weight_matrices_and_kernels():
  params = _params()
  assert training.decay_mask(params, "timm") == DECAYED_BY_TIMM
  assert all(jax.tree.leaves(training.decay_mask(params, "all")))


@pytest.mark.parametrize("name", ["vit_s16", "resnet50"])
def test_the_timm_mask_on_the_recipe_models(name):
  """No decay on any bias, norm scale or offset, position embedding or class token; decay
  on every kernel (shapes from eval_shape: nothing compiles)."""
  model = get_model(name, 10)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
  mask = training.decay_mask(shapes, "timm")
  for path, on in jax.tree_util.tree_flatten_with_path(mask)[0]:
    leaf = path[-1].key
    assert on == (leaf == "kernel"), (jax.tree_util.keystr(path), on)
  assert "pos_embed" in shapes if name == "vit_s16" else True


def test_micro_batches_of_every_process_are_the_global_batch():
  """``train_dataset(..., rows, micro_batches=m)``: the m micro-batches of the P processes
  of step s hold exactly global batch s's examples, each once."""
  from mixjax.data import train_dataset
  from mixjax.data.pipeline import ArraySplit
  n, batch, m, procs = 50, 12, 3, 2
  split = ArraySplit(np.arange(n).reshape(n, 1, 1, 1).astype(np.uint8), np.zeros(n, np.int32))
  whole = train_dataset(split, batch, seed=3, num_epochs=2)
  rows = batch // m // procs  # Process p reads rows p·b/P … of each micro-batch of b.
  parts = [train_dataset(split, batch, 3, 2, slice(p * rows, (p + 1) * rows), m)
           for p in range(procs)]
  assert len(whole) == 2 * (n // batch) and len(parts[0]) == m * len(whole)
  for step in range(len(whole)):
    expected = whole[step]["image"].ravel()
    got = np.concatenate([parts[p][step * m + j]["image"].ravel()
                          for j in range(m) for p in range(procs)])
    np.testing.assert_array_equal(np.sort(got), np.sort(expected))
    assert len(set(got.tolist())) == batch


def _update(tx, grads, params, steps=1):
  state = tx.init(params)
  for _ in range(steps):
    updates, state = tx.update(grads, state, params)
  return updates


@pytest.mark.parametrize("rule", ["all", "timm"])
def test_sgd_adds_the_masked_decay_to_the_gradient_before_nesterov_momentum(rule):
  """First step of PyTorch's SGD(momentum=m, nesterov=True, weight_decay=wd):
  ``d = g + wd·θ`` (masked), buffer ``d``, step ``−lr·(d + m·d)``."""
  params = _params()
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  lr, m, wd = 0.1, 0.9, 0.01
  tx = training.make_optimizer(lr, m, True, wd, weight_decay_mask=rule)
  mask = training.decay_mask(params, rule)
  expected = jax.tree.map(lambda g, p, on: -lr * (1 + m) * (g + wd * p * on),
                          grads, params, mask)
  jax.tree.map(lambda a, b: assert_close_in_ulps(a, b, ULPS), _update(tx, grads, params),
               expected)


@pytest.mark.parametrize("rule", ["all", "timm"])
def test_adamw_decouples_the_masked_decay(rule):
  """First AdamW step: ``m̂ = g``, ``v̂ = g²``, step ``−lr·(g/(|g| + ε) + wd·θ)`` (masked)."""
  params = _params()
  grads = jax.tree.map(lambda p: 0.5 * jnp.sign(p), params)
  lr, wd, eps = 1e-3, 0.05, 1e-8
  tx = training.make_optimizer(lr, weight_decay=wd, name="adamw", weight_decay_mask=rule)
  mask = training.decay_mask(params, rule)
  expected = jax.tree.map(lambda g, p, on: -lr * (g / (jnp.abs(g) + eps) + wd * p * on),
                          grads, params, mask)
  # optax corrects the bias by 1 − b2ᵗ computed in float32 (PyTorch: in float64): with
  # b2 = 0.999 rounded to float32, off by up to eps/(1 − b2) relative, half that after √.
  ulps = ULPS + 0.5 / (1 - 0.999)
  jax.tree.map(lambda a, b: assert_close_in_ulps(a, b, ulps), _update(tx, grads, params),
               expected)


def test_lamb_adapts_only_the_decayed_parameters_as_timm():
  """Decayed leaves with zero gradients: AdamW's direction is ``wd·θ``, whose trust ratio
  ``‖θ‖/‖wd·θ‖`` makes the step ``−lr·θ``. Exempt leaves keep Adam's step ``−lr·g/(|g| + ε)``
  unscaled (timm's Lamb, always_adapt=False). With every leaf decayed it is optax's lamb."""
  params = _params()
  grads = jax.tree.map(lambda p, on: 0.0 * p if on else 0.5 * jnp.sign(p), params,
                       DECAYED_BY_TIMM)
  lr = 0.01
  tx = training.make_optimizer(lr, weight_decay=0.1, name="lamb", weight_decay_mask="timm")
  expected = jax.tree.map(lambda p, g, on: -lr * p if on else -lr * g / (jnp.abs(g) + 1e-6),
                          params, grads, DECAYED_BY_TIMM)
  ulps = ULPS + 0.5 / (1 - 0.999)  # optax's float32 bias correction (see AdamW's test).
  jax.tree.map(lambda a, b: assert_close_in_ulps(a, b, ulps, scale=params["dense"]["kernel"]),
               _update(tx, grads, params), expected)
  grads = jax.tree.map(lambda p: jnp.cos(3 * p), params)
  ours = _update(training.make_optimizer(lr, weight_decay=0.1, name="lamb"), grads, params)
  reference = _update(optax.lamb(lr, weight_decay=0.1), grads, params)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), ours, reference)


@pytest.mark.parametrize("max_norm,factor", [(1.0, 0.1), (20.0, 1.0)])
def test_clipping_scales_the_raw_gradient_to_the_global_norm(max_norm, factor):
  """Gradients of global norm 10 (3-4-5 in two leaves): clipped to ``max_norm`` before the
  decay is added (PyTorch's clip_grad_norm_ then the optimiser's step)."""
  params = {"a": jnp.ones((2,)), "b": jnp.ones((1, 1))}
  grads = {"a": jnp.array([6.0, 0.0]), "b": jnp.array([[8.0]])}
  lr, wd = 0.5, 0.1
  tx = training.make_optimizer(lr, momentum=0.0, nesterov=False, weight_decay=wd,
                               clip_grad_norm=max_norm)
  expected = jax.tree.map(lambda g, p: -lr * (factor * g + wd * p), grads, params)
  jax.tree.map(lambda a, b: assert_close_in_ulps(a, b, ULPS), _update(tx, grads, params),
               expected)


def test_accumulation_makes_one_update_of_the_mean_gradient_and_counts_updates():
  """k = 3 micro-batches: the first two leave the parameters, the third makes Nesterov
  SGD's step on the mean gradient; the schedule advances once per update."""
  params = {"w": jnp.zeros((3,))}
  micro = [{"w": jnp.array([1.0, 2.0, 3.0]) * (i + 1)} for i in range(6)]
  schedule = lambda count: 0.1 * (count + 1)
  tx = training.make_optimizer(schedule, 0.9, True, 0.0, accumulate=3)
  plain = training.make_optimizer(schedule, 0.9, True, 0.0)
  state, plain_state = tx.init(params), plain.init(params)
  p, q = params, params
  for update in range(2):
    for i in range(3):
      updates, state = tx.update(micro[3 * update + i], state, p)
      if i < 2:
        assert not np.any(updates["w"])
      p = optax.apply_updates(p, updates)
    mean = jax.tree.map(lambda *g: sum(g) / 3, *micro[3 * update:3 * update + 3])
    updates, plain_state = plain.update(mean, plain_state, q)
    q = optax.apply_updates(q, updates)
    assert_close_in_ulps(p["w"], q["w"], ULPS)
  # The second update ran at lr 0.2 (count 1; a schedule of micro-steps: 0.6). Nesterov
  # SGD from buffer m₁ = ḡ₁: m₂ = ḡ₂ + 0.9·ḡ₁, step −0.2·(ḡ₂ + 0.9·m₂).
  g1, g2 = np.array([1.0, 2.0, 3.0]) * 2, np.array([1.0, 2.0, 3.0]) * 5
  first = -0.1 * (1 + 0.9) * g1
  second = -0.2 * (g2 + 0.9 * (g2 + 0.9 * g1))
  assert_close_in_ulps(p["w"], first + second, ULPS)


def test_ema_follows_the_closed_form_and_skips_accumulating_steps():
  """``e_n = dⁿ·e₀ + (1 − d)·Σ_t d^(n−t)·p_t`` over the updated steps only."""
  d = 0.9
  e0 = {"params": {"w": jnp.array([1.0, -2.0])}, "batch_stats": {"mean": jnp.array([0.5])}}
  values = [jax.tree.map(lambda x, t=t: x * 0 + t, e0) for t in range(1, 5)]
  updated = [True, False, True, True]
  ema = e0
  for value, flag in zip(values, updated, strict=True):
    ema = training.update_ema(ema, value, d, jnp.asarray(flag))
  used = [t for t, flag in zip(range(1, 5), updated, strict=True) if flag]
  n = len(used)
  expected = jax.tree.map(
      lambda x: d ** n * x + (1 - d) * sum(d ** (n - 1 - i) * t for i, t in enumerate(used)),
      e0)
  jax.tree.map(lambda a, b: assert_close_in_ulps(a, b, ULPS), ema, expected)


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "adam"}, "unknown optimizer"),
    ({"weight_decay_mask": "none"}, "weight_decay_mask"),
    ({"accumulate": 0}, "grad_accum_steps"),
    ({"clip_grad_norm": 0.0}, "clip_grad_norm"),
])
def test_bad_options_are_refused(kwargs, match):
  with pytest.raises(ValueError, match=match):
    training.make_optimizer(0.1, **kwargs)


def _config(**overrides):
  c = digits.get_config()
  c.tensorboard = False
  c.model, c.methods, c.padding = "mlp", ("erm",), 0
  c.num_epochs, c.batch_size, c.eval_batch_size = 1, 512, 360
  c.log_every_epochs = 100
  for k, v in overrides.items():
    setattr(c, k, v)
  return c


def test_accumulating_four_micro_batches_trains_as_the_batch_four_times_larger(tmp_path):
  """The trainer with ``grad_accum_steps=4`` (micro-batches of 128, 8 steps) lands where
  batches of 512 do (2 updates), with AdamW, clipping, the timm mask and an EMA: the
  same examples per update, gradients summed in another order (``STEP_ULPS``).

  Checkpointed after micro-batch 3 of the first update (accumulated gradients and the EMA
  in the checkpoint), it resumes to the same end bit for bit; a resume with another
  ``grad_accum_steps`` is refused, naming both."""
  import shutil
  options = dict(optimizer="adamw", learning_rate=1e-3, weight_decay=0.05,
                 weight_decay_mask="timm", clip_grad_norm=1.0, ema_decay=0.5)
  one = training.train_and_evaluate(_config(**options), str(tmp_path / "one"))
  config = _config(**options, grad_accum_steps=4, checkpoint_every_steps=3,
                   keep_checkpoints=10)
  four = training.train_and_evaluate(config, str(tmp_path / "four"))
  assert (one["steps"], four["steps"]) == (2, 8)
  assert four["history"][0]["learning_rate"] == one["history"][0]["learning_rate"]
  assert_trees_close_in_ulps(one["state"].params, four["state"].params, STEP_ULPS)
  assert_trees_close_in_ulps(one["state"].ema, four["state"].ema, STEP_ULPS)
  # The EMA is evaluated beside the raw parameters, and is not them.
  assert 0 < four["ema_accuracy"] <= 1 and "test_ema_nll" in four["history"][-1]
  assert not np.allclose(four["state"].ema["params"]["head"]["kernel"],
                         four["state"].params["head"]["kernel"])

  cut = tmp_path / "cut"
  shutil.copytree(tmp_path / "four", cut)
  for step in os.listdir(cut / "checkpoints"):
    if step.isdigit() and int(step) != 3:
      shutil.rmtree(cut / "checkpoints" / step)
  other = config.copy_and_resolve_references()
  other.grad_accum_steps = 2
  with pytest.raises(ValueError, match="grad_accum_steps=4.*not 2"):
    training.train_and_evaluate(other, str(cut), resume=True)
  resumed = training.train_and_evaluate(config, str(cut), resume=True)
  leaves = lambda s: (s.params, s.ema, s.opt_state, s.step)
  jax.tree.map(np.testing.assert_array_equal, leaves(resumed["state"]), leaves(four["state"]))


def test_mixup_off_epoch_trains_the_last_epochs_without_mixing(tmp_path):
  """Before ``mixup_off_epoch`` the run is Mixup's (bit for bit); from it on the step is
  ERM's: the epoch's loss is the unmixed one, far below a Mixup epoch's. With label
  noise, ``train_flipped_accuracy`` is the fraction of the flipped training examples the
  model predicts as their wrong label (recomputed here from the final parameters)."""
  base = dict(batch_size=64, num_epochs=2, eval_every_epochs=100, methods=("mixup",),
              label_noise=0.2)
  off = training.train_and_evaluate(_config(**base, mixup_off_epoch=1), str(tmp_path / "off"))
  on = training.train_and_evaluate(_config(**base), str(tmp_path / "on"))
  assert off["history"][0] == {**on["history"][0], **{
      k: off["history"][0][k] for k in training.TIMING_FIELDS}}
  # Measured: the second epoch's loss 1.54 with Mixup, 1.17 unmixed (digits with 20 %
  # of the labels flipped, MLP, batch 64; 0.99 and 0.19 without the noise).
  assert off["history"][1]["train_loss"] < 0.85 * on["history"][1]["train_loss"]
  ds = load_dataset("digits", label_noise=0.2, seed=0)
  flipped = ds.train_images[ds.train_flipped].astype(np.float32)
  logits = get_model("mlp", 10).apply({"params": off["state"].params},
                                      (flipped - ds.mean) / ds.std)
  memorised = np.mean(np.argmax(logits, -1) == ds.train_labels[ds.train_flipped])
  assert off["history"][-1]["train_flipped_accuracy"] == pytest.approx(float(memorised), abs=1e-9)
