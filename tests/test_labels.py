"""Labels: ids or rows in, float32 rows summing to one out; smoothing; the mixed loss."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mixjax
from tests.tolerances import assert_close_in_ulps

B = 8  # Batch == num_classes with labels = arange(B), as in test_mixup / test_cutmix.
SHAPE = (B, 8, 8, 3)
LABELS = jnp.arange(B, dtype=jnp.int32)


def _images(seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=SHAPE), jnp.float32)


def _soft_rows(seed=0, k=B):
  return jnp.asarray(np.random.default_rng(seed).dirichlet(np.ones(k), size=B), jnp.float32)


def _mixup(key, x, labels=LABELS, label_smoothing=0.0):
  # Spelled as in test_mixup (no label_smoothing unless used) to share its compilation.
  extra = dict(label_smoothing=label_smoothing) if label_smoothing else {}
  return mixjax.mixup(key, x, labels, num_classes=B, mode="elem", pairing="permute", **extra)


def _cutmix(key, x, labels=LABELS):
  return mixjax.cutmix(key, x, labels, num_classes=B, mode="elem", minmax=None,
                       pairing="permute")


def test_soft_labels_from_ids():
  ids = jnp.array([0, 2, 1, 2], jnp.int32)
  rows = mixjax.soft_labels(ids, 3)
  assert rows.dtype == jnp.float32
  np.testing.assert_array_equal(rows, np.eye(3, dtype=np.float32)[[0, 2, 1, 2]])


@pytest.mark.parametrize("dtype", [jnp.int8, jnp.int32, jnp.float32, jnp.bfloat16])
def test_soft_labels_from_one_hot_rows(dtype):
  one_hot = np.eye(5, dtype=np.float32)[[4, 0, 3]]
  for num_classes in (None, 5):
    rows = mixjax.soft_labels(jnp.asarray(one_hot, dtype), num_classes)
    assert rows.dtype == jnp.float32
    np.testing.assert_array_equal(rows, one_hot)


def test_soft_rows_pass_through():
  soft = _soft_rows()
  rows = mixjax.soft_labels(soft, B)
  np.testing.assert_array_equal(rows, soft)
  np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
def test_label_smoothing_equals_optax(eps):
  ids = jnp.array([1, 0, 3], jnp.int32)
  rows = mixjax.soft_labels(ids, 4, label_smoothing=eps)
  expected = optax.smooth_labels(jax.nn.one_hot(ids, 4), eps)
  np.testing.assert_array_equal(rows, expected)
  np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-6)
  soft = _soft_rows(1)
  np.testing.assert_array_equal(mixjax.soft_labels(soft, B, label_smoothing=eps),
                                optax.smooth_labels(soft, eps))


def test_mixed_labels_are_linear_in_the_label_rows():
  """Mixing id labels gives rows R with R[i] = w·e_i + (1 − w)·e_p, so mixing any label
  rows Y with the same key must give R @ Y: one-hot rows, soft rows and smoothing."""
  x = _images()
  smooth = optax.smooth_labels(jnp.eye(B), 0.1)
  for seed in range(2):
    key = jax.random.key(seed)
    for op in (_mixup, _cutmix):
      x_ids, y_ids = op(key, x)
      assert y_ids.dtype == jnp.float32
      np.testing.assert_allclose(y_ids.sum(axis=1), 1.0, atol=1e-6)
      one_hot = jax.nn.one_hot(LABELS, B)
      x_rows, y_rows = op(key, x, one_hot)
      np.testing.assert_array_equal(x_rows, x_ids)
      np.testing.assert_allclose(y_rows, y_ids, rtol=0, atol=1e-7)
      soft = _soft_rows(seed)
      _, y_soft = op(key, x, soft)
      assert y_soft.dtype == jnp.float32
      np.testing.assert_allclose(y_soft, np.asarray(y_ids) @ np.asarray(soft), atol=1e-6)
      np.testing.assert_allclose(y_soft.sum(axis=1), 1.0, atol=1e-6)
    _, y_smooth = _mixup(key, x, label_smoothing=0.1)
    _, y_ids = _mixup(key, x)
    np.testing.assert_allclose(y_smooth, np.asarray(y_ids) @ np.asarray(smooth), atol=1e-6)
    np.testing.assert_allclose(y_smooth.sum(axis=1), 1.0, atol=1e-6)


def _ce(logits, rows):
  logits = np.asarray(logits, np.float64)
  log_p = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
  log_p -= logits.max(-1, keepdims=True)
  return -(np.asarray(rows, np.float64) * log_p).sum(-1)


def test_soft_target_cross_entropy_is_the_mixup_loss():
  x = _images(1)
  logits = jnp.asarray(np.random.default_rng(2).normal(size=(B, B)) * 3, jnp.float32)
  _, mixed = _mixup(jax.random.key(3), x)
  mixed_np = np.asarray(mixed)
  lam = mixed_np[np.arange(B), np.arange(B)]
  off = mixed_np - np.diag(lam)
  partner = np.where(off.max(1) > 0, off.argmax(1), np.arange(B))
  assert (partner != np.arange(B)).sum() >= 4
  loss = mixjax.soft_target_cross_entropy(logits, mixed)
  assert loss.dtype == jnp.float32 and loss.shape == (B,)
  eye = np.eye(B)
  expected = lam * _ce(logits, eye) + (1 - lam) * _ce(logits, eye[partner])
  # A float32 log-softmax of K = 8 logits rounds its max-shift, K exps, their sum
  # and a log: within K + 4 ulps of the largest |logit|, small losses included.
  ce_ulps = B + 4
  assert_close_in_ulps(loss, expected, ce_ulps, scale=logits)
  assert_close_in_ulps(loss, _ce(logits, mixed_np), ce_ulps, scale=logits)
  # The same with optax's hard-label losses for y_a and y_b.
  ce_a = optax.softmax_cross_entropy_with_integer_labels(logits, LABELS)
  ce_b = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(partner))
  assert_close_in_ulps(loss, lam * ce_a + (1 - lam) * ce_b, ce_ulps, scale=logits)
  # Low-precision logits are promoted: the loss is float32.
  loss16 = mixjax.soft_target_cross_entropy(logits.astype(jnp.bfloat16), mixed)
  assert loss16.dtype == jnp.float32
  # Rounding logits to bfloat16 moves each by ≤ ½ ulp, the CE by ≤ twice that.
  assert_close_in_ulps(loss16, loss, 1, scale=logits, eps=float(jnp.finfo(jnp.bfloat16).eps))
