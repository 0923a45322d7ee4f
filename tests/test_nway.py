"""n-way Mixup: Dirichlet weights, k − 1 partners, exact pixels and labels, n = 2 unchanged,
and n-way Manifold Mixup at a hidden layer."""

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


@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("pairing", ["permute", "roll", "flip"])
def test_n2_draws_what_mixup_always_drew(mode, pairing):
  x = _images()
  for seed in range(3):
    key = jax.random.key(seed)
    chex.assert_trees_all_equal(
        mx.sample_mixup(key, B, alpha=0.4, mode=mode, pairing=pairing, n=2),
        mx.sample_mixup(key, B, alpha=0.4, mode=mode, pairing=pairing))
    chex.assert_trees_all_equal(
        mx.mixup(key, x, LABELS, num_classes=B, mode=mode, pairing=pairing, n=2),
        mx.mixup(key, x, LABELS, num_classes=B, mode=mode, pairing=pairing))
  w = mx.sample_dirichlet(jax.random.key(0), B, 2, 0.4, mode)
  lam = mx.sample_lambda(jax.random.key(0), B, 0.4, mode)
  np.testing.assert_array_equal(np.asarray(w[:, 0]), np.asarray(lam))


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("pairing", ["permute", "roll"])
def test_nway_pixels_and_labels_are_exact(n, mode, pairing):
  x = _images()
  for seed in range(3):
    key = jax.random.key(seed)
    params = mx.sample_mixup(key, B, alpha=1.0, mode=mode, pairing=pairing, n=n)
    out, y = mx.mixup(key, x, LABELS, num_classes=B, mode=mode, pairing=pairing, n=n)
    w, p = _weights_and_partners(params)
    # Partners: every column a bijection; for n - 1 < B distinct and never the example.
    for j in range(1, n):
      assert sorted(p[:, j]) == list(range(B))
    assert all(len(set(row)) == n for row in p)
    if pairing == "roll":
      np.testing.assert_array_equal(p, (np.arange(B)[:, None] - np.arange(n)) % B)
    if mode == "batch":
      np.testing.assert_array_equal(w, np.broadcast_to(w[0], w.shape))
    else:
      assert len(np.unique(w[:, 0])) == B
    assert (w >= 0).all()
    # Labels: the one-hot rows of distinct partners carry their weights bit for bit.
    y = np.asarray(y)
    expected = np.zeros((B, B), np.float32)
    expected[np.arange(B)[:, None], p] = w
    np.testing.assert_array_equal(y, expected)
    # Pixels: Σ_j w_j·x_{p_j}; float32 sums of n products of values in [0, 1] are within
    # n ulps of 1 of the exact value (one rounding per product and per sum).
    x64 = np.asarray(x, np.float64)
    want = sum(w[:, j, None, None, None].astype(np.float64) * x64[p[:, j]] for j in range(n))
    assert_close_in_ulps(np.asarray(out), want, 2 * n, scale=1.0)


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


def test_nway_dtypes_batch_of_one_and_one_program():
  for dtype, out_dtype in [(jnp.uint8, jnp.float32), (jnp.bfloat16, jnp.bfloat16),
                           (jnp.float32, jnp.float32)]:
    x = _images(dtype=dtype)
    out, _ = mx.mixup(jax.random.key(0), x, LABELS, num_classes=B, n=3)
    assert out.dtype == out_dtype
  one = _images((1, 4, 4, 3))
  out, y = mx.mixup(jax.random.key(0), one, jnp.zeros((1,), jnp.int32), num_classes=2, n=4)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(one))
  np.testing.assert_array_equal(np.asarray(y), [[1.0, 0.0]])
  x = _images()
  keys = jax.random.split(jax.random.key(2), 3)
  outs, ys = jax.vmap(lambda k: mx.mixup(k, x, LABELS, num_classes=B, n=3))(keys)
  for i in range(3):
    chex.assert_trees_all_close(
        (outs[i], ys[i]), mx.mixup(keys[i], x, LABELS, num_classes=B, n=3),
        atol=6 * 2.0**-23, rtol=0)  # 2n ulps of 1: the bound above, as vmap reorders nothing.


def test_flip_pairing_has_one_partner():
  with pytest.raises(ValueError, match="n-way mixing with 2 partners needs"):
    mx.sample_mixup(jax.random.key(0), B, n=3, pairing="flip")
  with pytest.raises(ValueError, match=r"n \(examples per mix\) must be an int >= 2"):
    mx.sample_dirichlet(jax.random.key(0), B, 1, 1.0)


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_manifold_nway_mixes_at_the_drawn_hidden_layer_only(mode):
  h = _images((B, 5, 7))
  plan = mx.sample_plan(jax.random.key(3), B, (0, 1, 2), alpha=2.0, mode=mode, n=3)
  assert plan.params.more_perms.shape == (B, 1)
  chex.assert_trees_all_equal(
      mx.sample_plan(jax.random.key(3), B, (0, 1, 2), alpha=2.0, mode=mode, n=2),
      mx.sample_plan(jax.random.key(3), B, (0, 1, 2), alpha=2.0, mode=mode))
  layer = int(plan.layer)
  for i in (0, 1, 2):
    out = plan.mix_at(i, h)
    if i == layer:  # Compiled inside lax.cond: within the n-way bound of the eager blend.
      assert_close_in_ulps(np.asarray(out), np.asarray(mx.mix_images(plan.params, h)), 6,
                           scale=1.0)
      assert not np.array_equal(np.asarray(out), np.asarray(h))
    else:
      chex.assert_trees_all_equal(out, h)
  y = np.asarray(plan.mix_labels(LABELS, B))
  w, p = _weights_and_partners(plan.params)
  expected = np.zeros((B, B), np.float32)
  expected[np.arange(B)[:, None], p] = w
  np.testing.assert_array_equal(y, expected)


def test_manifold_nway_runs_through_a_model():
  model = get_model("small_cnn", 10)
  x = _images((B, 8, 8, 1))
  variables = model.init(jax.random.key(0), x, train=False)
  for layer_key in range(3):
    plan = mx.sample_plan(jax.random.key(layer_key), B, model.mix_layers, n=3)
    logits, _ = model.apply(variables, x, plan=plan, train=True, mutable=["batch_stats"],
                            rngs={"dropout": jax.random.key(1)})
    assert logits.shape == (B, 10) and np.isfinite(np.asarray(logits)).all()
