"""Flax NNX: an ``nnx.Module`` that applies a MixPlan, and the linen zoo through ``nnx.bridge``.

Nothing in mixjax is specific to linen: a :class:`~mixjax.MixPlan` is a pytree of arrays, so an
NNX module calls ``plan.mix_at(i, h)`` at its eligible layers and ``nnx.jit`` traces it once for
every drawn layer, as ``jax.jit`` does for a linen model. The zoo (linen modules) runs from NNX
through ``nnx.bridge.ToNNX``, which forwards ``plan`` and ``train`` to the linen ``__call__`` and
writes the BatchNorm updates of ``mutable=["batch_stats"]`` back into the NNX module.
"""

from __future__ import annotations

import math

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import mixjax
from mixjax import models
from tests.plans import plans_for_every_layer
from tests.tolerances import assert_close_in_ulps

# Written against Flax 0.12's NNX API (nnx.List, nnx.Optimizer(model, tx, wrt=...),
# optimizer.update(model, grads), nnx.to_pure_dict); tested with 0.12.8.
if tuple(int(v) for v in flax.__version__.split(".")[:2]) < (0, 12):
  pytest.skip(f"needs flax >= 0.12 for its NNX API, found {flax.__version__}",
              allow_module_level=True)

B, D, K = 8, 5, 3
WIDTHS = (6, 6)
LAYERS = (0, 1, 2)  # The input and the two hidden layers of NNXMLP(D, WIDTHS, K).


class NNXMLP(nnx.Module):
  """Dense → tanh per hidden layer, a linear head; mixes through a plan at each eligible layer.

  Layer 0 is the input, layer ``i`` the output of hidden layer ``i``: the pattern every mixjax
  model follows, written in NNX.
  """

  def __init__(self, in_features: int, widths: tuple[int, ...], num_classes: int, *,
               rngs: nnx.Rngs):
    dims = (in_features, *widths)
    self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs)
                            for a, b in zip(dims[:-1], dims[1:], strict=True)])
    self.head = nnx.Linear(dims[-1], num_classes, rngs=rngs)
    self.mix_layers = tuple(range(len(widths) + 1))

  def __call__(self, x, plan: mixjax.MixPlan | None = None):
    mix_at = (lambda i, h: h) if plan is None else plan.mix_at
    h = mix_at(0, x)
    hidden = [h]
    for i, layer in enumerate(self.hidden):
      h = mix_at(i + 1, jnp.tanh(layer(h)))
      hidden.append(h)
    return self.head(h), tuple(hidden)


def _params(model: nnx.Module) -> dict:
  """The module's ``nnx.Param`` values as a pure dict (``{"hidden": {0: …}, "head": …}``)."""
  return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def _batch(seed=1):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(size=(B, D)), jnp.float32),
          jnp.asarray(rng.integers(0, K, B), jnp.int32))


def _plans_for_every_layer(layers=LAYERS, batch=B):
  return plans_for_every_layer(layers, batch)


def _never(plan):
  """``plan`` with layer −1 (never drawn): nothing mixes, and the pytree keeps its structure."""
  return plan.replace(layer=jnp.int32(-1))


def _hand_forward(weights, x, k, lam, perm):
  """NNXMLP's forward in jax.numpy from its pure-dict weights, mixing at ``k`` by hand."""
  lam, perm = jnp.asarray(lam)[:, None], jnp.asarray(perm)
  mix = lambda i, h: lam * h + (1 - lam) * h[perm] if i == k else h
  h = mix(0, x)
  for i in range(len(WIDTHS)):
    layer = weights["hidden"][i]
    h = mix(i + 1, jnp.tanh(h @ layer["kernel"] + layer["bias"]))
  return h @ weights["head"]["kernel"] + weights["head"]["bias"]


def _hand_targets(labels, lam, perm):
  targets = mixjax.soft_labels(labels, K)
  return lam[:, None] * targets + (1 - lam[:, None]) * targets[perm]


def _hand_loss(weights, x, labels, lam, perm, k):
  """The cross-entropy of :func:`_hand_forward` against the hand-mixed labels, and the logits."""
  logits = _hand_forward(weights, x, k, lam, perm)
  targets = _hand_targets(labels, jnp.asarray(lam), jnp.asarray(perm))
  return mixjax.soft_target_cross_entropy(logits, targets).mean(), logits


# The hand-written references, jitted with the layer static: one small program per layer
# (eagerly, every operation of every call was a program of its own).
_hand = jax.jit(_hand_loss, static_argnums=5)
_hand_grad = jax.jit(jax.grad(lambda *args: _hand_loss(*args)[0]), static_argnums=5)


def _loss(model, x, labels, plan):
  logits, _ = model(x, plan)
  return mixjax.soft_target_cross_entropy(logits, plan.mix_labels(labels, K)).mean()


# --- An NNX module that applies a plan ----------------------------------------

def test_nnx_module_mixes_exactly_at_the_drawn_layer_in_one_trace():
  model = NNXMLP(D, WIDTHS, K, rngs=nnx.Rngs(0))
  assert model.mix_layers == LAYERS
  x, _ = _batch()
  traces = []

  @nnx.jit
  def forward(model, x, plan):
    traces.append(1)  # Runs once per trace, not per call.
    return model(x, plan)

  mix = jax.jit(mixjax.mix_images)
  for plan in _plans_for_every_layer():
    k = int(plan.layer)
    _, plain = forward(model, x, _never(plan))  # The same program, nothing mixed.
    _, hidden = forward(model, x, plan)
    for i in range(k):  # Before the drawn layer nothing changes.
      np.testing.assert_array_equal(hidden[i], plain[i])
    # The drawn layer holds mix_images of the unmixed activations: the same kernel, bit for bit.
    np.testing.assert_array_equal(hidden[k], mix(plan.params, plain[k]))
    assert not np.array_equal(hidden[k], plain[k])
  assert len(traces) == 1  # One nnx.jit program for every drawn layer (and for none).


def test_nnx_grad_matches_a_hand_mixed_forward():
  model = NNXMLP(D, WIDTHS, K, rngs=nnx.Rngs(2))
  x, labels = _batch(3)
  weights = _params(model)
  traces = []

  @nnx.jit
  def grad_fn(model, x, labels, plan):
    traces.append(1)
    return nnx.grad(_loss)(model, x, labels, plan)  # An nnx.State of the Params' gradients.

  for plan in _plans_for_every_layer():
    k = int(plan.layer)
    lam, perm = np.asarray(plan.params.lam), np.asarray(plan.params.perm)
    grads = nnx.to_pure_dict(grad_fn(model, x, labels, plan))
    expected = _hand_grad(weights, x, labels, lam, perm, k)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected), strict=True):
      assert np.isfinite(np.asarray(got)).all()
      # Backward through the same two-layer MLP in two programs (NNX's and the hand-written
      # one): 64 ulps of each gradient's scale, as tests/test_manifold.py allows its jax.numpy
      # twin.
      assert_close_in_ulps(got, want, 64)
  assert len(traces) == 1


def test_nnx_optimizer_step_with_soft_targets():
  model = NNXMLP(D, WIDTHS, K, rngs=nnx.Rngs(4))
  lr = 0.1
  optimizer = nnx.Optimizer(model, optax.sgd(lr), wrt=nnx.Param)
  x, labels = _batch(5)
  traces = []

  @nnx.jit
  def train_step(model, optimizer, x, labels, key):
    traces.append(1)
    plan = mixjax.sample_plan(key, B, model.mix_layers)  # Drawn inside the program.
    loss, grads = nnx.value_and_grad(_loss)(model, x, labels, plan)
    optimizer.update(model, grads)
    return loss, grads, plan

  drawn = set()
  for seed in range(12):
    before = _params(model)
    loss, grads, plan = train_step(model, optimizer, x, labels, jax.random.key(seed))
    drawn.add(int(plan.layer))
    assert np.isfinite(float(loss))
    # The loss is the cross-entropy against plan.mix_labels, as by hand.
    lam, perm = np.asarray(plan.params.lam), np.asarray(plan.params.perm)
    hand, logits = _hand(before, x, labels, lam, perm, int(plan.layer))
    # A log-softmax of K = 3 terms after the same MLP, in two programs: 16 ulps of the logits.
    assert_close_in_ulps(loss, hand, 16, scale=logits)
    # SGD: the optimizer moved every Param by −lr·grad (one multiply and one subtract, rounded
    # in the parameter's scale: 2 ulps).
    after = _params(model)
    want = jax.tree.map(lambda p, g: np.asarray(p, np.float64) - lr * np.asarray(g, np.float64),
                        before, nnx.to_pure_dict(grads))
    for got, w, p in zip(jax.tree.leaves(after), jax.tree.leaves(want), jax.tree.leaves(before),
                         strict=True):
      assert_close_in_ulps(got, w, 2, scale=np.maximum(np.abs(p), np.abs(w)))
  assert drawn == set(LAYERS)
  assert len(traces) == 1
  assert int(optimizer.step[...]) == 12


# --- The linen zoo from NNX: nnx.bridge.ToNNX ----------------------------------

def _linen_variables(module: nnx.Module) -> dict:
  """The linen ``{"params", "batch_stats"}`` held by a ``ToNNX`` module, as pure dicts."""
  variables = {"params": nnx.to_pure_dict(nnx.state(module, nnx.Param))}
  stats = nnx.to_pure_dict(nnx.state(module, nnx.BatchStat))
  if stats:
    variables["batch_stats"] = stats
  return variables


def test_zoo_through_to_nnx_equals_linen_apply():
  linen_model = models.get_model("small_cnn", 10)
  x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 8, 8, 1)).astype(np.float32))
  # An "rbg" key: its draws compile in a fraction of threefry's time; any weights do here.
  model = nnx.bridge.ToNNX(linen_model, rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))
  # Runs linen init on a sample input (here without a plan), as one program under nnx.jit
  # (eagerly each of init's operations is a program of its own).
  nnx.jit(nnx.bridge.lazy_init)(model, x)
  variables = _linen_variables(model)
  params = variables["params"]
  count = sum(math.prod(v.shape) for v in jax.tree.leaves(params))
  assert count == 19_562  # The README's count for 8×8×1 inputs and 10 classes.

  traces = []

  @nnx.jit(static_argnames="train")
  def forward(model, x, plan, train):
    traces.append(train)
    # ToNNX forwards positional and keyword arguments to the linen __call__; `mutable` is its
    # own keyword: the updated collections are written back into the NNX module's BatchStats.
    mutable = ["batch_stats"] if train else False
    return model(x, plan, train=train, mutable=mutable)

  linen_eval = jax.jit(linen_model.apply)
  linen_train = jax.jit(lambda v, x, plan: linen_model.apply(
      v, x, plan, train=True, mutable=["batch_stats"]))
  plans = _plans_for_every_layer(linen_model.mix_layers, batch=4)
  for plan in plans:
    # Evaluation: the running statistics are read, not changed; the logits are linen's.
    logits = forward(model, x, plan, train=False)
    np.testing.assert_array_equal(logits, linen_eval(variables, x, plan))
    chex.assert_trees_all_equal(_linen_variables(model), variables)
    # Training: batch statistics, and the running ones updated in the NNX module as linen
    # returns them.
    logits = forward(model, x, plan, train=True)
    want_logits, want_updates = linen_train(variables, x, plan)
    np.testing.assert_array_equal(logits, want_logits)
    new = _linen_variables(model)
    chex.assert_trees_all_equal(new["batch_stats"], want_updates["batch_stats"])
    chex.assert_trees_all_equal(new["params"], params)  # Only the statistics move.
    assert not np.array_equal(new["batch_stats"]["bn1"]["mean"],
                              variables["batch_stats"]["bn1"]["mean"])
    variables = new
  assert traces.count(False) == 1 and traces.count(True) == 1  # One program per mode.

  # In train mode the BatchNorm statistics must be declared mutable, as with linen's apply.
  with pytest.raises(flax.errors.ModifyScopeVariableError):
    model(x, plans[0], train=True)


def test_preact_resnet18_through_to_nnx_abstractly():
  """PreActResNet-18 from NNX, without computing anything (too slow to run on CPU here)."""
  linen_model = models.get_model("preact_resnet18", 10)
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  model = nnx.eval_shape(lambda: nnx.bridge.ToNNX(linen_model, rngs=nnx.Rngs(0)).lazy_init(
      jnp.zeros(x.shape, x.dtype)))
  params = nnx.state(model, nnx.Param)
  assert sum(math.prod(v.shape) for v in jax.tree.leaves(params)) == 11_171_146  # README.
  stats = nnx.state(model, nnx.BatchStat)
  assert jax.tree.leaves(stats)
  graphdef, state = nnx.split(model)
  plan = jax.eval_shape(lambda key: mixjax.sample_plan(key, 2, linen_model.mix_layers),
                        jax.random.key(0))
  assert plan.layer.shape == () and plan.layers == (0, 1, 2)  # The layer is traced.

  def train_forward(state, x, plan):
    model = nnx.merge(graphdef, state)
    logits = model(x, plan, train=True, mutable=["batch_stats"])
    return logits, nnx.state(model, nnx.BatchStat)

  logits, new_stats = jax.eval_shape(train_forward, state, x, plan)
  assert logits.shape == (2, 10) and logits.dtype == jnp.float32
  assert jax.tree.structure(new_stats) == jax.tree.structure(stats)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), new_stats) == jax.tree.map(
      lambda a: (a.shape, a.dtype), stats)
