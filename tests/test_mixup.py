"""Mixup: exact blends, λ ~ Beta(α, α), partners, modes, dtypes and ranks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import mixjax
from tests.jaxpr_utils import num_eqns

B = 8  # Batch == num_classes with labels = arange(B): every label row is distinct.
SHAPE = (B, 8, 8, 3)
LABELS = jnp.arange(B, dtype=jnp.int32)
# Float32 blends of values in [0, 1] are within 2 ulp of the exact value whether or not
# XLA contracts λ·x + (1 − λ)·p into a fused multiply-add.
F32_ATOL = 2.0**-22


def _mixup(key, x, labels=LABELS, mode="elem", pairing="permute"):
  # One spelling of the call everywhere, so each (shape, mode, pairing) compiles once.
  return mixjax.mixup(key, x, labels, num_classes=B, mode=mode, pairing=pairing)


def _images(shape=SHAPE, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), jnp.float32)


def _recover(mixed_labels):
  """(λ, partner) of each example from soft labels of arange(B) ids.

  Row i is λ_i·e_i + (1 − λ_i)·e_p: λ_i is the own entry, p the other non-zero one
  (or i itself when the example was paired with itself).
  """
  y = np.asarray(mixed_labels)
  b = y.shape[0]
  lam = y[np.arange(b), np.arange(b)]
  off = y.copy()
  off[np.arange(b), np.arange(b)] = 0.0
  assert ((off > 0).sum(axis=1) <= 1).all(), "a label row mixes more than two classes"
  partner = np.where(off.max(axis=1) > 0, off.argmax(axis=1), np.arange(b))
  np.testing.assert_allclose(off.sum(axis=1), 1.0 - lam, rtol=0, atol=1e-7)
  return lam, partner


def _expected_blend(x, lam, partner):
  x = np.asarray(x, np.float64)
  lam = np.asarray(lam, np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
  return lam * x + (1.0 - lam) * x[partner]


def _check_mixup(x, out, mixed_labels):
  """Asserts out == λ·x + (1 − λ)·x[partner] for the recovered λ and partner."""
  lam, partner = _recover(mixed_labels)
  assert sorted(partner) == list(range(len(partner))), "partners are not a bijection"
  np.testing.assert_allclose(
      np.asarray(out, np.float64), _expected_blend(x, lam, partner), rtol=0, atol=F32_ATOL)
  own = partner == np.arange(len(partner))
  # An example paired with itself comes back bit-for-bit unchanged.
  np.testing.assert_array_equal(np.asarray(out)[own], np.asarray(x)[own])
  return lam, partner


@pytest.mark.parametrize(
    "mode,pairing",
    [("batch", "permute"), ("elem", "permute"), ("batch", "flip"), ("elem", "roll")])
def test_mixup_blends_every_pixel_and_label(mode, pairing):
  x = _images()
  for seed in range(3):
    key = jax.random.key(seed)
    out, y = _mixup(key, x, mode=mode, pairing=pairing)
    assert out.shape == x.shape and out.dtype == jnp.float32
    assert y.shape == (B, B) and y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y).sum(axis=1), 1.0, atol=1e-6)
    lam, partner = _check_mixup(x, out, y)
    assert ((lam > 0) & (lam <= 1)).all()

    # The draws are those of sample_mixup with the same key (eager λ may differ from
    # the compiled one in the last bit).
    params = mixjax.sample_mixup(key, B, alpha=1.0, mode=mode, pairing=pairing)
    np.testing.assert_array_equal(partner, params.perm)
    mixed = partner != np.arange(B)
    np.testing.assert_allclose(lam[mixed], np.asarray(params.lam)[mixed], rtol=1e-6)
    chex.assert_trees_all_equal(params.lam, params.label_weight)
    assert params.boxes is None

    if pairing == "flip":
      np.testing.assert_array_equal(partner, np.arange(B)[::-1])
    elif pairing == "roll":
      np.testing.assert_array_equal(partner, (np.arange(B) - 1) % B)
    if mode == "batch":
      np.testing.assert_array_equal(np.asarray(params.lam), np.asarray(params.lam)[0])
      np.testing.assert_array_equal(lam[mixed], lam[mixed][0])
    else:
      assert len(np.unique(np.asarray(params.lam))) == B


def test_mixup_is_sample_then_apply():
  x = _images()
  kwargs = dict(alpha=1.0, mode="elem", pairing="permute")
  composed = jax.jit(
      lambda k: mixjax.apply_mix(mixjax.sample_mixup(k, B, **kwargs), x, LABELS, B))
  for seed in range(3):
    key = jax.random.key(seed)
    fused = _mixup(key, x)
    chex.assert_trees_all_equal(fused, composed(key))
    # The un-jitted path draws the same mix (blends may differ by float rounding).
    eager = mixjax.apply_mix(mixjax.sample_mixup(key, B, **kwargs), x, LABELS, B)
    chex.assert_trees_all_close(fused, eager, rtol=0, atol=F32_ATOL)


def test_apply_mix_replays_a_given_mix():
  x = _images()
  params = mixjax.MixParams(
      perm=jnp.array([1, 0, 3, 2, 5, 4, 7, 6], jnp.int32),
      label_weight=jnp.linspace(0.1, 0.9, B, dtype=jnp.float32),
      lam=jnp.linspace(0.1, 0.9, B, dtype=jnp.float32))
  out, y = mixjax.apply_mix(params, x, LABELS, B)
  lam, partner = _check_mixup(x, out, y)
  np.testing.assert_allclose(lam, np.linspace(0.1, 0.9, B), atol=1e-7)
  np.testing.assert_array_equal(partner, params.perm)


@pytest.mark.parametrize("shape", [(B, 5), (B, 4, 5)], ids=["features", "sequence"])
def test_mixup_any_rank(shape):
  x = _images(shape, seed=1)
  out, y = _mixup(jax.random.key(3), x)
  assert out.shape == shape and out.dtype == jnp.float32
  _check_mixup(x, out, y)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.uint8])
def test_mixup_dtypes(dtype):
  rng = np.random.default_rng(2)
  if dtype == jnp.uint8:
    x = jnp.asarray(rng.integers(0, 256, SHAPE), jnp.uint8)
  else:
    x = jnp.asarray(rng.uniform(size=SHAPE), dtype)
  out, y = _mixup(jax.random.key(4), x)
  expected_dtype = {jnp.float32: jnp.float32, jnp.bfloat16: jnp.bfloat16,
                    jnp.uint8: jnp.float32}[dtype]
  assert out.dtype == expected_dtype
  assert y.dtype == jnp.float32
  lam, partner = _recover(y)
  expected = _expected_blend(np.asarray(x, np.float32), lam, partner)
  if dtype == jnp.bfloat16:
    # Blended in float32, rounded once to bfloat16 (8 bits of mantissa).
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=2.0**-8, atol=0)
  elif dtype == jnp.uint8:
    # Exact float32 blends of the integer values: no rounding, no wrap-around.
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=0, atol=255 * F32_ATOL)
    assert float(out.min()) >= 0 and float(out.max()) <= 255
  else:
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=0, atol=F32_ATOL)


def test_mixup_uint8_never_wraps():
  x = jnp.array([[250, 0, 255], [10, 255, 255]], jnp.uint8)
  half = jnp.full((2,), 0.5, jnp.float32)
  params = mixjax.MixParams(perm=jnp.array([1, 0], jnp.int32), label_weight=half, lam=half)
  out = mixjax.mix_images(params, x)
  assert out.dtype == jnp.float32
  np.testing.assert_array_equal(out, [[130.0, 127.5, 255.0], [130.0, 127.5, 255.0]])
  assert mixjax.mixed_dtype(params, jnp.uint8) == jnp.float32
  assert mixjax.mixed_dtype(params, jnp.bfloat16) == jnp.bfloat16


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_mixup_is_one_program_for_any_batch(mode):
  def size(batch):
    x = jnp.zeros((batch, 8, 8, 3))
    y = jnp.zeros((batch,), jnp.int32)
    fn = lambda k, x, y: mixjax.mixup(k, x, y, num_classes=B, mode=mode)
    return num_eqns(jax.make_jaxpr(fn)(jax.random.key(0), x, y).jaxpr)
  assert size(4) == size(64)


# λ comes from two loop-free samplers (mixjax.sampling.symmetric_beta): Jöhnk's
# rejection below α = ½, Ulrich's transformation from α = ½ (its arcsine case) up.
@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.4, 0.5, 0.7, 1.0, 2.0, 10.0])
def test_lambda_is_beta_distributed(alpha):
  """KS tests at the 1% level (p > 0.01) on 20,000 per-example draws.

  float32 cannot hold λ within 2^-25 of 1, so for α = 0.2 about 2% of the draws
  are exactly 1.0 (21% for α = 0.05), a jump no continuous CDF has. The
  two-sample test against Beta draws rounded to float32 the same way (and, as
  XLA flushes subnormals, values below 2^-126 to 0) is exact for every α; the
  one-sample test against the Beta CDF is used where that rounding is
  negligible (α ≥ 0.4).
  """
  params = mixjax.sample_mixup(jax.random.key(42), 20_000, alpha=alpha, mode="elem")
  lam = np.asarray(params.lam, np.float64)
  assert ((lam >= 0) & (lam <= 1)).all()
  beta = stats.beta(alpha, alpha)
  reference = beta.rvs(20_000, random_state=np.random.default_rng(0)).astype(np.float32)
  reference[reference < 2.0**-126] = 0
  assert stats.kstest(lam, reference.astype(np.float64)).pvalue > 0.01
  if alpha >= 0.4:
    assert stats.kstest(lam, beta.cdf).pvalue > 0.01
  # The test has power: the neighbouring α is rejected.
  other = stats.beta(2 * alpha, 2 * alpha).rvs(20_000, random_state=np.random.default_rng(1))
  assert stats.kstest(lam, other).pvalue < 1e-6


def test_lambda_rejection_fallback_is_exact(monkeypatch):
  """Below α = ½ a draw in which some value had every candidate rejected redraws
  those values. With one candidate per value (forced here) ~15% of the values
  at α = 0.4 take a second round or more, eagerly and under vmap; the result is
  still Beta."""
  from mixjax import sampling
  monkeypatch.setattr(sampling, "_JOHNK_MISS", 1e30)  # one candidate per value
  lam = np.asarray(sampling.symmetric_beta(jax.random.key(5), 0.4, (20_000,)), np.float64)
  assert stats.kstest(lam, stats.beta(0.4, 0.4).cdf).pvalue > 0.01
  assert stats.kstest(lam, stats.beta(0.8, 0.8).cdf).pvalue < 1e-6
  keys = jax.random.split(jax.random.key(6), 100)
  lam = jax.jit(jax.vmap(lambda k: sampling.symmetric_beta(k, 0.4, (200,))))(keys)
  assert stats.kstest(np.asarray(lam, np.float64).ravel(), stats.beta(0.4, 0.4).cdf).pvalue > 0.01


def test_lambda_of_no_examples_is_empty():
  from mixjax import sampling
  for alpha in (0.2, 1.0):  # Run (jitted: one small program each), not only traced.
    draw = jax.jit(lambda key, alpha=alpha: sampling.symmetric_beta(key, alpha, (0,)))
    assert draw(jax.random.key(0)).shape == (0,)


def test_lambda_is_float32_under_x64():
  # The dtype is fixed while tracing: eval_shape traces the same code as a call.
  with jax.enable_x64(True):
    for alpha in (0.2, 1.0):
      params = jax.eval_shape(
          lambda key, alpha=alpha: mixjax.sample_mixup(key, 4, alpha=alpha, mode="elem"),
          jax.random.key(0))
      assert params.lam.dtype == jnp.float32


def test_lambda_with_traced_alpha_is_beta_distributed():
  # α only known at run time: the same exact sampler, picked at run time; same law.
  draw = jax.jit(lambda key, alpha: mixjax.sample_lambda(key, 20_000, alpha, "elem"))
  lam = np.asarray(draw(jax.random.key(6), jnp.float32(0.7)), np.float64)
  assert stats.kstest(lam, stats.beta(0.7, 0.7).cdf).pvalue > 0.01


def test_batch_lambda_is_beta_distributed():
  # One λ per call in batch mode: 4,000 calls, KS at the 1% level.
  keys = jax.random.split(jax.random.key(7), 4000)
  lam = jax.jit(jax.vmap(lambda k: mixjax.sample_mixup(k, 4, alpha=0.5, mode="batch").lam))(
      keys)
  lam = np.asarray(lam, np.float64)
  np.testing.assert_array_equal(lam, lam[:, :1].repeat(4, axis=1))
  assert stats.kstest(lam[:, 0], stats.beta(0.5, 0.5).cdf).pvalue > 0.01


@pytest.mark.parametrize("batch", [1, 2, 7, 64])
def test_partners_are_a_bijection(batch):
  keys = jax.random.split(jax.random.key(batch), 16)
  perms = np.asarray(jax.vmap(lambda k: mixjax.sample_partners(k, batch))(keys))
  assert perms.dtype == np.int32
  for perm in perms:
    np.testing.assert_array_equal(np.sort(perm), np.arange(batch))
  if batch > 2:
    assert len({tuple(p) for p in perms}) > 1, "different keys gave the same permutation"
  key = jax.random.key(0)
  np.testing.assert_array_equal(mixjax.sample_partners(key, batch, "flip"),
                                np.arange(batch)[::-1])
  np.testing.assert_array_equal(mixjax.sample_partners(key, batch, "roll"),
                                np.roll(np.arange(batch), 1))


def test_permutation_is_uniform():
  # All 24 permutations of 4 are equally likely: chi-square over 4,800 keys at the 1% level.
  keys = jax.random.split(jax.random.key(11), 4800)
  perms = np.asarray(jax.vmap(lambda k: mixjax.sample_partners(k, 4))(keys))
  codes = perms @ np.array([64, 16, 4, 1])
  _, counts = np.unique(codes, return_counts=True)
  assert len(counts) == 24
  assert stats.chisquare(counts).pvalue > 0.01


def test_identity_params_change_nothing():
  x = _images()
  out, y = mixjax.apply_mix(mixjax.identity_params(B), x, LABELS, B)
  np.testing.assert_array_equal(out, x)
  np.testing.assert_array_equal(y, np.eye(B, dtype=np.float32))
