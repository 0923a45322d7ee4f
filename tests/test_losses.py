"""The losses by name; softmax_bce against a float64 PyTorch BCELoss reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixjax
from mixjax import losses
from tests.tolerances import assert_close_in_ulps

# log_softmax, log1p / logsumexp, log_sigmoid and the mean over K each round once or
# twice: a few ulps of the loss's scale. Measured <= 1.5 ulps; 8 allows about 5x that.
LOSS_ULPS = 8
# The gradient goes back through the same ops and the softmax's Jacobian product:
# measured <= 3.2 ulps of the largest gradient entry; 16 allows about 5x that.
GRAD_ULPS = 16


def _log_softmax64(z):
  z = np.asarray(z, np.float64)
  m = z.max(-1, keepdims=True)
  return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def _log_one_minus_p64(z):
  """Exact log(1 − p_k) = log Σ_{j≠k} p_j in float64 (no cancellation in 1 − p)."""
  log_p = _log_softmax64(z)
  k = log_p.shape[-1]
  others = np.where(np.eye(k, dtype=bool), -np.inf, log_p[..., None, :])
  m = others.max(-1)
  return m + np.log(np.exp(others - m[..., None]).sum(-1))


def torch_bce_of_softmax64(z, y):
  """``nn.BCELoss()(softmax(z), y)`` per example (mean over K), float64, with the
  clamp of each log term at −100 that torch.nn.BCELoss documents."""
  y = np.asarray(y, np.float64)
  log_p = np.maximum(_log_softmax64(z), -100.0)
  log_not_p = np.maximum(_log_one_minus_p64(z), -100.0)
  return -(y * log_p + (1 - y) * log_not_p).mean(-1)


def torch_bce_grad64(z, y):
  """Its gradient w.r.t. the logits where no term is clamped, in float64.

  With ``a_k = y_k − (1 − y_k)·p_k/(1 − p_k)`` the chain rule through the softmax gives
  ``∂ℓ/∂z_j = −((y_j − p_j) − p_j·Σ_{k≠j} a_k)/K``: no ``1/(1 − p)`` to overflow and
  no difference of large terms, so it stays exact when a probability saturates.
  """
  y = np.asarray(y, np.float64)
  log_p = _log_softmax64(z)
  p = np.exp(log_p)
  a = y - (1 - y) * np.exp(log_p - _log_one_minus_p64(z))
  k = y.shape[-1]
  others = (a[..., None, :] * (1 - np.eye(k))).sum(-1)
  return -((y - p) - p * others) / k


@jax.jit
def _loss_and_grad(z, y):
  """softmax_bce per example, its batch mean and the gradient of its sum w.r.t. the
  logits: one program per shape, shared by the tests below (run eagerly, each shape
  compiled some thirty small programs for the loss and as many for the gradient)."""
  loss = mixjax.softmax_bce(z, y)
  return loss, loss.mean(), jax.grad(lambda z: mixjax.softmax_bce(z, y).sum())(z)


@jax.jit
def _mean_grads(z, y):
  """The gradients of the batch means of softmax_bce and of the soft-target CE."""
  return (jax.grad(lambda z: mixjax.softmax_bce(z, y).mean())(z),
          jax.grad(lambda z: mixjax.soft_target_cross_entropy(z, y).mean())(z))


def _inputs(seed, batch, k, scale):
  rng = np.random.default_rng(seed)
  z = np.float32(rng.normal(size=(batch, k)) * scale)
  y = np.float32(rng.dirichlet(np.ones(k) * 0.3, size=batch))
  y[: batch // 2] = np.eye(k, dtype=np.float32)[rng.integers(0, k, batch // 2)]
  return z, y


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("scale", [0.1, 3.0, 10.0])
def test_softmax_bce_equals_torch_bce_loss_in_float64(k, scale):
  z, y = _inputs(k, 64, k, scale)
  loss, mean, _ = _loss_and_grad(z, y)
  assert loss.dtype == jnp.float32 and loss.shape == (64,)
  expected = torch_bce_of_softmax64(z, y)
  assert_close_in_ulps(loss, expected, LOSS_ULPS)
  # The batch mean is BCELoss's mean over B·K.
  assert_close_in_ulps(mean, expected.mean(), LOSS_ULPS, scale=expected)


def test_softmax_bce_clamps_each_log_term_at_minus_100():
  # p → 0 (log p = −150 → −100) and p → 1 (log(1 − p) ≈ −150 → −100), as torch does.
  z = np.float32([[0.0, -150.0, -150.0], [150.0, 0.0, 0.0], [150.0, 0.0, 0.0]])
  y = np.float32([[0.0, 0.5, 0.5], [0.3, 0.7, 0.0], [1.0, 0.0, 0.0]])
  loss, _, grads = _loss_and_grad(z, y)
  # Row 0: both targets sit on p ≈ e^-150 (0.5·100 each) and the class with target 0
  # holds p ≈ 1, so its log(1 − p) ≈ −149.3 clamps too: 200/3.
  # Row 1: class 0 gives 0.7·100 through log(1 − p_0), class 1 0.7·100 through log p_1.
  # Row 2: the confident right answer: 0.
  assert_close_in_ulps(loss, [200.0 / 3, 140.0 / 3, 0.0], LOSS_ULPS)
  assert_close_in_ulps(loss, torch_bce_of_softmax64(z, y), LOSS_ULPS)
  assert np.all(np.isfinite(grads))
  # Every non-negligible term of rows 0 and 1 is clamped: no gradient flows through them.
  np.testing.assert_array_equal(grads[:2], 0.0)


def test_softmax_bce_keeps_log_one_minus_p_when_p_rounds_to_one():
  """A logit gap of 30: float32 rounds p to 1, so log(1 − p) computed from p is
  −inf (torch reports −100); the loss uses the exact log Σ_{j≠k} p_j ≈ −29.3."""
  z = np.float32([[30.0, 0.0, 0.0]])
  assert float(jax.jit(jax.nn.softmax)(z)[0, 0]) == 1.0
  y = np.float32([[0.5, 0.5, 0.0]])
  loss, _, grads = _loss_and_grad(z, y)
  assert_close_in_ulps(loss, torch_bce_of_softmax64(z, y), LOSS_ULPS)
  assert np.all(np.isfinite(grads)) and np.any(np.asarray(grads) != 0)


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("scale", [0.1, 3.0, 10.0])
def test_softmax_bce_gradient_equals_the_float64_gradient(k, scale):
  z, y = _inputs(k, 64, k, scale)
  _, _, grads = _loss_and_grad(z, y)
  expected = torch_bce_grad64(z, y)
  assert_close_in_ulps(grads, expected, GRAD_ULPS)


@pytest.mark.parametrize("k", [10, 100])
def test_gradient_is_one_over_k_minus_1_of_the_cross_entropy_gradient(k):
  """At a uniform softmax ∂BCE/∂z = (p − y)/(K − 1) = ∂CE/∂z / (K − 1) for any soft
  target; at init-scale logits (σ = 0.1) the ratio of gradient norms stays within 1%."""
  z, y = _inputs(k + 2, 256, k, 0.1)
  bce, ce = _mean_grads(np.zeros_like(z), y)
  assert_close_in_ulps(bce, np.asarray(ce, np.float64) / (k - 1), GRAD_ULPS)
  bce, ce = _mean_grads(z, y)
  ratio = float(np.linalg.norm(np.asarray(bce, np.float64)) /
                np.linalg.norm(np.asarray(ce, np.float64)))
  assert abs(ratio * (k - 1) - 1) < 0.01, ratio  # K=10: 0.1111; K=100: 0.01010.


def test_softmax_bce_under_jit_grad_and_vmap():
  z, y = _inputs(5, 16, 10, 2.0)
  z, y = jnp.asarray(z), jnp.asarray(y)
  eager = mixjax.softmax_bce(z, y)  # The one eager call: the others compare with it.
  assert_close_in_ulps(jax.jit(mixjax.softmax_bce)(z, y), eager, 4)
  # vmap over rows, the gradient and leading batch axes, in one program.
  per_row, g, leading = jax.jit(lambda z, y: (
      jax.vmap(lambda a, b: mixjax.softmax_bce(a[None], b[None])[0])(z, y),
      jax.grad(lambda z: mixjax.softmax_bce(z, y).mean())(z),
      mixjax.softmax_bce(z.reshape(2, 8, 10), y.reshape(2, 8, 10))))(z, y)
  assert_close_in_ulps(per_row, eager, 4)
  assert_close_in_ulps(g, torch_bce_grad64(z, y) / z.shape[0], GRAD_ULPS)
  # Leading batch axes broadcast like the CE: [2, 8, K] → [2, 8].
  assert_close_in_ulps(leading, np.asarray(eager).reshape(2, 8), 4)
  # Low-precision logits are promoted: the loss is float32.
  bf16 = jax.ShapeDtypeStruct(z.shape, jnp.bfloat16)
  assert jax.eval_shape(mixjax.softmax_bce, bf16, y).dtype == jnp.float32


def test_losses_by_name():
  assert losses.get_loss("ce") is mixjax.soft_target_cross_entropy
  assert losses.get_loss("softmax_bce") is mixjax.softmax_bce
  with pytest.raises(ValueError, match=r"unknown loss 'mse'.*'ce', 'sigmoid_bce', 'softmax_bce'"):
    losses.get_loss("mse")
  with pytest.raises(ValueError, match="same shape"):
    mixjax.softmax_bce(jnp.zeros((4, 10)), jnp.zeros((4, 11)))
  with pytest.raises(ValueError, match="at least 2 classes"):
    mixjax.softmax_bce(jnp.zeros((4, 1)), jnp.ones((4, 1)))
