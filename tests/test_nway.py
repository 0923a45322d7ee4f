"""n-way Mixup: Dirichlet weights, k − 1 partners, exact pixels and labels, n = 2 unchanged,
and n-way Manifold Mixup at a hidden layer.

The draws and mixes a test compares are compiled together as one program that takes the
key as an argument and serves every seed (and the parametrisations that share its draw),
rather than one XLA compile per call, per eager primitive and per eager loop.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import mixjax as mx
from mixjax.models import get_model
from tests.tolerances import assert_close_in_ulps

B = 8
LABELS = jnp.arange(B, dtype=jnp.int32)
PAIRINGS = ("permute", "roll", "flip")


def _images(shape=(B, 6, 6, 3), dtype=jnp.float32, seed=0):
  rng = np.random.default_rng(seed)
  if jnp.issubdtype(dtype, jnp.integer):
    return jnp.asarray(rng.integers(0, 256, shape), dtype)
  return jnp.asarray(rng.uniform(size=shape), dtype)


def _weights_and_partners(params):
  """(w [B, n], partners [B, n]) with column 0 the example itself (as mix_labels weighs)."""
  lam = np.asarray(params.label_weight, np.float32)
  more = np.asarray(params.more_weights, np.float32)
  total = more[:, 0]
  for j in range(1, more.shape[1]):  # Left to right, as mixjax sums them.
    total = total + more[:, j]
  first = np.float32(1) - lam - total
  w = np.concatenate([lam[:, None], first[:, None], more], axis=1)
  p = np.concatenate([np.arange(B)[:, None], np.asarray(params.perm)[:, None],
                      np.asarray(params.more_perms)], axis=1)
  return w, p


@functools.partial(jax.jit, static_argnames="mode")
def _n2_and_default(key, x, mode):
  """For every pairing: sample_mixup and mixup with n=2 and without n; and Dirichlet(n=2)
  weights next to λ. One program per mode (the pairings share its λ draw), run per seed."""
  draws = {pairing: (
      mx.sample_mixup(key, B, alpha=0.4, mode=mode, pairing=pairing, n=2),
      mx.sample_mixup(key, B, alpha=0.4, mode=mode, pairing=pairing),
      mx.mixup(key, x, LABELS, num_classes=B, mode=mode, pairing=pairing, n=2),
      mx.mixup(key, x, LABELS, num_classes=B, mode=mode, pairing=pairing))
      for pairing in PAIRINGS}
  return draws, mx.sample_dirichlet(key, B, 2, 0.4, mode), mx.sample_lambda(key, B, 0.4, mode)


@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("pairing", PAIRINGS)
def test_n2_draws_what_mixup_always_drew(mode, pairing):
  x = _images()
  for seed in range(3):
    draws, w, lam = jax.device_get(_n2_and_default(jax.random.key(seed), x, mode))
    params2, params, mixed2, mixed = draws[pairing]
    chex.assert_trees_all_equal(params2, params, custom_message=f"seed {seed}")
    chex.assert_trees_all_equal(mixed2, mixed, custom_message=f"seed {seed}")
    # Dirichlet(α, α) is Beta(α, α): its first weight is the λ drawn from the same key.
    np.testing.assert_array_equal(w[:, 0], lam, err_msg=f"seed {seed}")


DTYPES = [(jnp.uint8, jnp.float32), (jnp.bfloat16, jnp.bfloat16), (jnp.float32, jnp.float32)]


def _batches():
  """The test batch in each of DTYPES (float32 last)."""
  return [_images(dtype=dtype) for dtype, _ in DTYPES]


@functools.partial(jax.jit, static_argnames=("n", "mode"))
def _nway_draws_and_mixes(key, images, n, mode):
  """sample_mixup and mixup of the float32 batch (images[-1]) for both pairings, and for
  (n, mode) = (3, "batch") (the defaults of test_nway_dtypes_batch_of_one_and_one_program)
  the mixup of the other dtypes' batches: one program per (n, mode) that serves every
  seed, pairing and dtype (they share its Dirichlet draw)."""
  draws = {pairing: (
      mx.sample_mixup(key, B, alpha=1.0, mode=mode, pairing=pairing, n=n),
      mx.mixup(key, images[-1], LABELS, num_classes=B, mode=mode, pairing=pairing, n=n))
      for pairing in ("permute", "roll")}
  if (n, mode) != (3, "batch"):
    return draws, []
  return draws, [mx.mixup(key, x, LABELS, num_classes=B, mode=mode, n=n) for x in images[:-1]]


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("pairing", ["permute", "roll"])
def test_nway_pixels_and_labels_are_exact(n, mode, pairing):
  images = _batches()
  x64 = np.asarray(images[-1], np.float64)
  for seed in range(3):
    draws, _ = jax.device_get(_nway_draws_and_mixes(jax.random.key(seed), images, n, mode))
    params, (out, y) = draws[pairing]
    w, p = _weights_and_partners(params)
    # Partners: every column a bijection; for n - 1 < B distinct and never the example.
    for j in range(1, n):
      assert sorted(p[:, j]) == list(range(B)), (seed, j)
    assert all(len(set(row)) == n for row in p), seed
    if pairing == "roll":
      np.testing.assert_array_equal(p, (np.arange(B)[:, None] - np.arange(n)) % B,
                                    err_msg=f"seed {seed}")
    if mode == "batch":
      np.testing.assert_array_equal(w, np.broadcast_to(w[0], w.shape), err_msg=f"seed {seed}")
    else:
      assert len(np.unique(w[:, 0])) == B, seed
    assert (w >= 0).all(), seed
    # Labels: the one-hot rows of distinct partners carry their weights bit for bit.
    expected = np.zeros((B, B), np.float32)
    expected[np.arange(B)[:, None], p] = w
    np.testing.assert_array_equal(y, expected, err_msg=f"seed {seed}")
    # Pixels: Σ_j w_j·x_{p_j}; float32 sums of n products of values in [0, 1] are within
    # n ulps of 1 of the exact value (one rounding per product and per sum).
    want = sum(w[:, j, None, None, None].astype(np.float64) * x64[p[:, j]] for j in range(n))
    assert_close_in_ulps(out, want, 2 * n, scale=1.0, err_msg=f"seed {seed}")


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.0])
def test_nway_weights_are_dirichlet(alpha):
  """KS tests at the 1% level on 20,000 per-example draws of Dirichlet(α·1_3).

  Marginals: w_j ~ Beta(α, 2α); aggregation: w_0/(w_0 + w_1) ~ Beta(α, α)
  (independent of w_2), which tests the joint law. w_1 is the represented
  1 − w_0 − w_2, as the mix weighs it. For α = 0.3 float32 rounds small weights:
  the marginal test is two-sample against float32-rounded Beta draws.
  """
  n, count = 3, 20_000
  params = mx.sample_mixup(jax.random.key(11), count, alpha=alpha, mode="elem", n=n)
  lam = np.asarray(params.label_weight, np.float64)
  more = np.asarray(params.more_weights, np.float64)[:, 0]
  first = 1 - lam - more
  rng = np.random.default_rng(0)
  marginal = stats.beta(alpha, (n - 1) * alpha)
  reference = marginal.rvs(count, random_state=rng).astype(np.float32).astype(np.float64)
  for w in (lam, first, more):
    assert stats.kstest(w, reference).pvalue > 0.01
  ratio = lam / (lam + first)
  pair = stats.beta(alpha, alpha).rvs(count, random_state=rng)
  assert stats.kstest(ratio, pair.astype(np.float32).astype(np.float64)).pvalue > 0.01
  # Power: Dirichlet(2α·1_3) is rejected.
  other = stats.beta(2 * alpha, 2 * (n - 1) * alpha).rvs(count, random_state=rng)
  assert stats.kstest(lam, other).pvalue < 1e-6
  # First moment to a z-test at 4 sigma: E[w_0] = 1/n, Var = (n − 1)/(n²(nα + 1)).
  sd = np.sqrt((n - 1) / (n**2 * (n * alpha + 1)) / count)
  assert abs(lam.mean() - 1 / n) < 4 * sd


def _default_mixes(key, images):
  """mixup(key, x, LABELS, num_classes=B, n=3) (alpha, mode and pairing by default) of each
  batch of _batches(), from test_nway_pixels_and_labels_are_exact's program for (3, "batch")."""
  draws, others = _nway_draws_and_mixes(key, images, 3, "batch")
  return [*others, draws["permute"][1]]


@jax.jit
def _vmapped(keys, x):
  return jax.vmap(lambda k: mx.mixup(k, x, LABELS, num_classes=B, n=3))(keys)


def test_nway_dtypes_batch_of_one_and_one_program():
  images = _batches()
  mixes = _default_mixes(jax.random.key(0), images)
  for (dtype, out_dtype), (mixed, _) in zip(DTYPES, mixes, strict=True):
    assert mixed.dtype == out_dtype, dtype
  one = _images((1, 4, 4, 3))
  out, y = mx.mixup(jax.random.key(0), one, jnp.zeros((1,), jnp.int32), num_classes=2, n=4)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(one))
  np.testing.assert_array_equal(np.asarray(y), [[1.0, 0.0]])
  keys = jax.random.split(jax.random.key(2), 3)
  outs, ys = _vmapped(keys, images[-1])
  for i in range(3):
    chex.assert_trees_all_close(  # 2n ulps of 1: the bound above, as vmap reorders nothing.
        (outs[i], ys[i]), _default_mixes(keys[i], images)[-1], atol=6 * 2.0**-23, rtol=0,
        custom_message=f"key {i}")


def test_flip_pairing_has_one_partner():
  with pytest.raises(ValueError, match="n-way mixing with 2 partners needs"):
    # Traced only: the Dirichlet draw before the refusal is not compiled and run.
    jax.eval_shape(lambda key: mx.sample_mixup(key, B, n=3, pairing="flip"), jax.random.key(0))
  with pytest.raises(ValueError, match=r"n \(examples per mix\) must be an int >= 2"):
    mx.sample_dirichlet(jax.random.key(0), B, 1, 1.0)


@functools.partial(jax.jit, static_argnames="mode")
def _plans_and_mixes(key, h, mode):
  """The n = 3, n = 2 and default plans, the n = 3 plan's mix_at each layer, its blend
  outside any cond, and its labels: one program per mode."""
  plan = mx.sample_plan(key, B, (0, 1, 2), alpha=2.0, mode=mode, n=3)
  plan2 = mx.sample_plan(key, B, (0, 1, 2), alpha=2.0, mode=mode, n=2)
  plan_default = mx.sample_plan(key, B, (0, 1, 2), alpha=2.0, mode=mode)
  return (plan, plan2, plan_default, [plan.mix_at(i, h) for i in (0, 1, 2)],
          mx.mix_images(plan.params, h), plan.mix_labels(LABELS, B))


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_manifold_nway_mixes_at_the_drawn_hidden_layer_only(mode):
  h = _images((B, 5, 7))
  plan, plan2, plan_default, outs, blend, y = jax.device_get(
      _plans_and_mixes(jax.random.key(3), h, mode))
  assert plan.params.more_perms.shape == (B, 1)
  chex.assert_trees_all_equal(plan2, plan_default)
  layer = int(plan.layer)
  for i, out in zip((0, 1, 2), outs, strict=True):
    if i == layer:  # Inside lax.cond: within the n-way bound of the blend outside it.
      assert_close_in_ulps(out, blend, 6, scale=1.0)
      assert not np.array_equal(out, np.asarray(h))
    else:
      chex.assert_trees_all_equal(out, h, custom_message=f"layer {i}")
  w, p = _weights_and_partners(plan.params)
  expected = np.zeros((B, B), np.float32)
  expected[np.arange(B)[:, None], p] = w
  np.testing.assert_array_equal(y, expected)


def test_manifold_nway_runs_through_a_model():
  model = get_model("small_cnn", 10)
  x = _images((B, 8, 8, 1))
  variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), x)

  @jax.jit
  def run(variables, key):  # One program for every key: the drawn layer is traced.
    plan = mx.sample_plan(key, B, model.mix_layers, n=3)
    (logits, hidden), _ = model.apply(variables, x, plan=plan, train=True,
                                      mutable=["batch_stats"], return_hidden=True,
                                      rngs={"dropout": jax.random.key(1)})
    return logits, hidden

  for layer_key in range(3):
    logits, hidden = jax.device_get(run(variables, jax.random.key(layer_key)))
    assert logits.shape == (B, 10) and np.isfinite(logits).all(), layer_key
    # Every layer's output after its mix is finite too: compiled, XLA:CPU's fused pooling
    # turns NaNs into finite values (a NaN mix gave logits of exactly 0), which eager
    # op-by-op execution, as this test once ran, propagates to the logits.
    assert all(np.isfinite(h).all() for h in hidden), layer_key
