"""Manifold Mixup: MixPlan / sample_plan, one program for every layer, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import mixjax
from mixjax import MixPlan
from tests.plans import plans_for_every_layer
from tests.tolerances import assert_close_in_ulps

B, D, HIDDEN, K = 8, 5, 6, 3
LAYERS = (0, 1, 2)  # The input and the two hidden layers of the MLP below.


def _init(seed=0):
  rng = np.random.default_rng(seed)
  shapes = dict(w1=(D, HIDDEN), b1=(HIDDEN,), w2=(HIDDEN, HIDDEN), b2=(HIDDEN,),
                w3=(HIDDEN, K))
  return {k: jnp.asarray(rng.normal(size=s) / 2, jnp.float32) for k, s in shapes.items()}


def _batch(seed=1):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(size=(B, D)), jnp.float32),
          jnp.asarray(rng.integers(0, K, B), jnp.int32))


def _forward(weights, x, mix_at):
  """A 2-hidden-layer MLP calling mix_at(i, h) at each eligible layer i."""
  hidden = [mix_at(0, x)]
  h = mix_at(1, jnp.tanh(hidden[-1] @ weights["w1"] + weights["b1"]))
  hidden.append(h)
  h = mix_at(2, jnp.tanh(h @ weights["w2"] + weights["b2"]))
  hidden.append(h)
  return h @ weights["w3"], hidden


def _manual_mix_at(layer, lam, perm):
  """mix_at for a known layer, λ and permutation, written out by hand."""
  lam = jnp.asarray(lam)[:, None]
  return lambda i, h: lam * h + (1 - lam) * h[jnp.asarray(perm)] if i == layer else h


def _loss(weights, x, labels, plan):
  logits, hidden = _forward(weights, x, plan.mix_at)
  targets = plan.mix_labels(labels, K)
  return mixjax.soft_target_cross_entropy(logits, targets).mean(), hidden


def _manual_loss(weights, x, labels, lam, perm, layer):
  """The loss of mixing at ``layer`` by hand (−1: nowhere), and (logits, hidden)."""
  logits, hidden = _forward(weights, x, _manual_mix_at(layer, lam, perm))
  lam = jnp.asarray(lam)[:, None]
  targets = mixjax.soft_labels(labels, K)
  targets = lam * targets + (1 - lam) * targets[jnp.asarray(perm)]
  return mixjax.soft_target_cross_entropy(logits, targets).mean(), (logits, hidden)


# The hand-written references, jitted with the layer static: one small program per
# layer, where their eager calls compiled every operation on its own.
_manual = jax.jit(_manual_loss, static_argnums=5)
_manual_grad = jax.jit(jax.grad(lambda *args: _manual_loss(*args)[0], argnums=(0, 1)),
                       static_argnums=5)
# plan.mix_at at a static index, jitted: run eagerly, its lax.cond (a new closure on
# every call) is compiled again each time.
_mix_at = jax.jit(lambda plan, h, index: plan.mix_at(index, h), static_argnums=2)


def _plans_for_every_layer():
  return plans_for_every_layer(LAYERS, B)


def test_one_program_serves_every_layer():
  traces = []

  @jax.jit
  def loss(weights, x, labels, plan):
    traces.append(1)  # Runs once per trace, not per call.
    return _loss(weights, x, labels, plan)

  weights, (x, labels) = _init(), _batch()
  for plan in _plans_for_every_layer():
    assert plan.layer.dtype == jnp.int32 and plan.layer.shape == ()
    value, hidden = loss(weights, x, labels, plan)
    k = int(plan.layer)
    lam, perm = np.asarray(plan.params.lam), np.asarray(plan.params.perm)
    expected_value, (logits, expected) = _manual(weights, x, labels, lam, perm, k)
    _, (_, unmixed) = _manual(weights, x, labels, lam, perm, -1)
    # Two programs of the same two-layer MLP (the plan's and the hand-mixed one):
    # each of its dots, tanhs and blends rounds within a few ulps of the
    # activations' scale (16 allowed).
    for i in LAYERS:
      assert_close_in_ulps(hidden[i], expected[i], 16)
    # The drawn layer, and only it, is mixed: the layers before it are untouched.
    for i in range(k):
      assert_close_in_ulps(hidden[i], unmixed[i], 16)
    assert not np.allclose(hidden[k], unmixed[k])
    # The loss inherits the logits' rounding (a log-softmax of K = 3 terms).
    assert_close_in_ulps(value, expected_value, 16, scale=logits)
  assert len(traces) == 1


def test_grad_through_the_plan():
  weights, (x, labels) = _init(2), _batch(3)
  grad_fn = jax.jit(jax.grad(lambda w, x, plan: _loss(w, x, labels, plan)[0], argnums=(0, 1)))
  for plan in _plans_for_every_layer():
    k = int(plan.layer)
    lam, perm = np.asarray(plan.params.lam), np.asarray(plan.params.perm)
    grads = grad_fn(weights, x, plan)
    expected = _manual_grad(weights, x, labels, lam, perm, k)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected), strict=True):
      assert np.isfinite(np.asarray(got)).all()
      # Backward through the same MLP in two programs (the plan's and the hand-mixed
      # one): 64 ulps of each gradient's scale.
      assert_close_in_ulps(got, want, 64)


def test_mix_at_mixes_only_the_drawn_layer():
  rng = np.random.default_rng(4)
  h = jnp.asarray(rng.uniform(size=(B, 4, 3)), jnp.float32)
  lam = jnp.linspace(0.2, 0.8, B, dtype=jnp.float32)
  perm = jnp.roll(jnp.arange(B, dtype=jnp.int32), 1)
  params = mixjax.MixParams(perm=perm, label_weight=lam, lam=lam)
  mixed = jax.jit(mixjax.mix_images)(params, h)
  # λ·h + (1 − λ)·h[perm] exactly: float32 is within 2 ulps of 1 of it (values in [0, 1]).
  lam64 = np.asarray(lam, np.float64)[:, None, None]
  h64 = np.asarray(h, np.float64)
  expected = lam64 * h64 + (1 - lam64) * h64[np.asarray(perm)]
  for layer in range(3):
    plan = MixPlan(layer=jnp.asarray(layer, jnp.int32), params=params)
    for i in range(3):
      out = _mix_at(plan, h, i)
      assert out.dtype == h.dtype
      if i == layer:
        np.testing.assert_allclose(out, mixed, rtol=0, atol=1e-7)
        np.testing.assert_allclose(out, expected, rtol=0, atol=2.0**-22)
      else:
        np.testing.assert_array_equal(out, h)
  np.testing.assert_allclose(plan.mix_labels(jnp.arange(B) % K, K),
                             mixjax.mix_labels(params, jnp.arange(B) % K, K))


def test_at_input_with_cutmix_mixes_pixels_only_at_layer_0():
  x = jnp.asarray(np.random.default_rng(5).uniform(size=(B, 8, 8, 3)), jnp.float32)
  params = mixjax.sample_cutmix(jax.random.key(0), B, (8, 8))
  plan = MixPlan.at_input(params)
  assert int(plan.layer) == 0
  at_input = _mix_at(plan, x, 0)
  np.testing.assert_array_equal(at_input, jax.jit(mixjax.mix_images)(params, x))
  assert not np.array_equal(at_input, x)
  # Boxes are in input pixels, so a deeper layer is never pasted, even by a plan
  # drawn there.
  np.testing.assert_array_equal(_mix_at(plan, x, 1), x)
  np.testing.assert_array_equal(_mix_at(plan.replace(layer=jnp.int32(1)), x, 1), x)


def test_layer_is_uniform_and_lambda_is_beta():
  # 8,000 plans: chi-square over the 4 eligible layers and KS against Beta(2, 2),
  # both at the 1% level.
  layers, alpha = (0, 2, 3, 5), 2.0
  keys = jax.random.split(jax.random.key(6), 8000)
  plans = jax.jit(jax.vmap(lambda k: mixjax.sample_plan(k, 4, layers, alpha=alpha)))(keys)
  drawn = np.asarray(plans.layer)
  assert set(drawn) == set(layers)
  counts = np.array([(drawn == i).sum() for i in layers])
  assert stats.chisquare(counts).pvalue > 0.01
  lam = np.asarray(plans.params.lam)
  np.testing.assert_array_equal(lam, lam[:, :1].repeat(4, axis=1))  # Batch mode.
  assert stats.kstest(lam[:, 0], stats.beta(alpha, alpha).cdf).pvalue > 0.01


def test_sample_plan_layer_forms_and_modes():
  for seed in range(5):
    key = jax.random.key(seed)
    a = mixjax.sample_plan(key, B, 3)
    b = mixjax.sample_plan(key, B, (0, 1, 2))
    assert int(a.layer) == int(b.layer) and 0 <= int(a.layer) < 3
    np.testing.assert_array_equal(a.params.lam, b.params.lam)
  elem = mixjax.sample_plan(jax.random.key(0), B, 2, mode="elem", pairing="flip")
  assert len(np.unique(np.asarray(elem.params.lam))) == B
  np.testing.assert_array_equal(elem.params.perm, np.arange(B)[::-1])
  assert mixjax.sample_plan(jax.random.key(0), B, (4,)).layer == 4


@pytest.mark.parametrize("layers", [0, (), (-1, 2)])
def test_sample_plan_rejects_bad_layers(layers):
  with pytest.raises(ValueError, match="layers"):
    mixjax.sample_plan(jax.random.key(0), B, layers)
