"""The combined Mixup/CutMix policy: prob, switch_prob, modes, minmax, smoothing, dtypes."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mixjax
from mixjax import MixConfig
from tests.distinct_images import distinct_images
from tests.jaxpr_utils import num_eqns

B = 8  # Batch == num_classes with labels = arange(B).
SHAPE = (B, 8, 8, 3)  # H·W = 64: pasted fractions are exact in float32.
LABELS = jnp.arange(B, dtype=jnp.int32)
ONE_HOT = np.eye(B, dtype=np.float32)


def _smooth(rows, eps):
  return np.asarray(optax.smooth_labels(jnp.asarray(rows), eps)) if eps else rows


def _check_pasted(x, out, y, eps=0.0):
  """Asserts every example is its own image with at most one rectangle pasted,
  bit-exactly, from one partner, and labels weighted by the exact kept fraction."""
  scale = 32 if x.dtype == jnp.uint8 else 2
  x, out, y = np.asarray(x, np.float64), np.asarray(out, np.float64), np.asarray(y)
  h, w = x.shape[1:3]
  source = (out // scale).astype(int)[..., 0]
  pasted_any = False
  for i in range(x.shape[0]):
    pasted = source[i] != i
    partners = np.unique(source[i][pasted])
    assert len(partners) <= 1
    partner = int(partners[0]) if len(partners) else i
    np.testing.assert_array_equal(out[i], np.where(pasted[..., None], x[partner], x[i]))
    area = int(pasted.sum())
    if area:
      rows, cols = np.flatnonzero(pasted.any(1)), np.flatnonzero(pasted.any(0))
      assert (rows[-1] + 1 - rows[0]) * (cols[-1] + 1 - cols[0]) == area  # A rectangle.
      pasted_any = True
    weight = np.float32(1) - np.float32(area) / np.float32(h * w)
    expected = weight * _smooth(ONE_HOT[i], eps) + (1 - weight) * _smooth(ONE_HOT[partner], eps)
    np.testing.assert_allclose(y[i], expected, rtol=0, atol=1e-7)
  return pasted_any


def _check_blended(x, out, y):
  """Asserts every example is λ·x + (1 − λ)·x[partner] with λ read off its label row."""
  x, out, y = np.asarray(x, np.float64), np.asarray(out, np.float64), np.asarray(y)
  for i in range(x.shape[0]):
    lam = y[i, i]
    others = np.flatnonzero((y[i] > 0) & (np.arange(len(y[i])) != i))
    assert len(others) <= 1
    partner = int(others[0]) if len(others) else i
    if partner != i:
      np.testing.assert_allclose(y[i, partner], 1.0 - lam, rtol=0, atol=1e-7)
    else:
      np.testing.assert_array_equal(y[i], ONE_HOT[i])
    np.testing.assert_allclose(out[i], lam * x[i] + (1 - lam) * x[partner], rtol=0,
                               atol=2.0**-22 * np.abs(x).max())
    assert partner == i or 0 < lam < 1


@pytest.mark.parametrize(
    "mode,dtype,eps",
    [("batch", jnp.float32, 0.0), ("elem", jnp.uint8, 0.1)])
def test_prob_zero_changes_nothing(mode, dtype, eps):
  config = MixConfig(mixup_alpha=1.0, cutmix_alpha=1.0, prob=0.0, mode=mode,
                     label_smoothing=eps, num_classes=B)
  x = distinct_images(SHAPE, dtype)
  for seed in range(3):
    out, y = mixjax.mix(jax.random.key(seed), x, LABELS, config)
    assert out.dtype == jnp.float32  # Mixup is enabled: uint8 in, float32 out.
    np.testing.assert_array_equal(out, np.asarray(x, np.float32))
    expected = optax.smooth_labels(jnp.asarray(ONE_HOT), eps) if eps else ONE_HOT
    np.testing.assert_array_equal(y, expected)


def test_always_cutmix_copies_pixels_exactly():
  # prob = 1, switch_prob = 1 with both methods enabled: every example is CutMixed,
  # uint8 pixels are copied exactly (float32 out, as Mixup is enabled), labels smoothed.
  config = MixConfig(mixup_alpha=1.0, cutmix_alpha=1.0, prob=1.0, switch_prob=1.0,
                     mode="elem", label_smoothing=0.1, num_classes=B)
  x = distinct_images(SHAPE, jnp.uint8, seed=1)
  for seed in range(3):
    out, y = mixjax.mix(jax.random.key(seed), x, LABELS, config)
    assert out.dtype == jnp.float32
    assert _check_pasted(x, out, y, eps=0.1)


def test_cutmix_only_keeps_uint8():
  config = MixConfig(mixup_alpha=0.0, cutmix_alpha=1.0, mode="batch", num_classes=B)
  assert config.cutmix_enabled and not config.mixup_enabled
  x = distinct_images(SHAPE, jnp.uint8, seed=2)
  out, y = mixjax.mix(jax.random.key(0), x, LABELS, config)
  assert out.dtype == jnp.uint8
  assert _check_pasted(x, out, y)


@pytest.mark.parametrize(
    "config,shape",
    [(MixConfig(mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=0.0, mode="elem",
                num_classes=B), SHAPE),
     (MixConfig(mixup_alpha=0.4, mode="batch", num_classes=B), (B, 5))],
    ids=["switch_prob=0", "mixup-only-features"])
def test_always_mixup_blends(config, shape):
  x = jnp.asarray(np.random.default_rng(3).uniform(size=shape), jnp.float32)
  for seed in range(3):
    out, y = mixjax.mix(jax.random.key(seed), x, LABELS, config)
    assert out.dtype == jnp.float32 and out.shape == shape
    _check_blended(x, out, y)


# Large-batch frequencies. Partners by "roll" (never the example itself), labels i % 2
# (partners always differ in class) and minmax boxes of 2-3 pixels a side in a 4×4 image
# (never empty, never the whole image), so each example's fate reads off its output.
N, HW = 4000, 4


def _classify(x, out, y):
  """Per example: 0 unchanged, 1 Mixup, 2 CutMix; checks each against its labels."""
  x, out, y = np.asarray(x), np.asarray(out), np.asarray(y)
  n = x.shape[0]
  own = (np.arange(n) % 2)
  partner_x = np.roll(x, 1, axis=0)
  weight = y[np.arange(n), own]
  np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6)
  same = (out == x).reshape(n, -1)
  copied = (out == partner_x).reshape(n, -1)
  unchanged = same.all(axis=1)
  cut = ~unchanged & (same | copied).all(axis=1)
  blended = ~unchanged & ~cut
  area = copied.sum(axis=1)
  np.testing.assert_array_equal(weight[unchanged], 1.0)
  np.testing.assert_array_equal(weight[cut], 1.0 - area[cut] / (HW * HW))
  lam = weight[blended].reshape(-1, 1, 1, 1)
  np.testing.assert_allclose(out[blended], lam * x[blended] + (1 - lam) * partner_x[blended],
                             rtol=0, atol=2.0**-22)
  return np.where(unchanged, 0, np.where(blended, 1, 2)), area


def _within(count, total, p, sigmas=5.0):
  """|count/total − p| within `sigmas` binomial standard deviations."""
  return abs(count / total - p) <= sigmas * np.sqrt(p * (1 - p) / total)


def test_elem_mode_frequencies():
  config = MixConfig(mixup_alpha=1.0, cutmix_minmax=(0.5, 0.75), prob=0.7, switch_prob=0.5,
                     mode="elem", num_classes=2, pairing="roll")
  x = jnp.asarray(np.random.default_rng(4).uniform(size=(N, HW, HW, 1)), jnp.float32)
  out, y = mixjax.mix(jax.random.key(0), x, jnp.arange(N) % 2, config)
  kind, area = _classify(x, out, y)
  mixed = kind > 0
  # Binomial: mixed ~ Bin(N, prob); CutMix among mixed ~ Bin(#mixed, switch_prob); 5σ.
  assert _within(mixed.sum(), N, 0.7), mixed.mean()
  assert _within((kind == 2).sum(), mixed.sum(), 0.5), (kind == 2).sum() / mixed.sum()
  # cutmix_minmax: sides in [⌊4·0.5⌋, ⌊4·0.75⌋] = [2, 3], so areas in {4, 6, 9}.
  assert set(area[kind == 2]) == {4, 6, 9}


def test_batch_mode_one_decision_per_call():
  config = MixConfig(mixup_alpha=1.0, cutmix_minmax=(0.5, 0.75), prob=0.7, switch_prob=0.5,
                     mode="batch", num_classes=2, pairing="roll")
  calls, batch = 1000, 4
  x = jnp.asarray(np.random.default_rng(5).uniform(size=(calls, batch, HW, HW, 1)),
                  jnp.float32)
  keys = jax.random.split(jax.random.key(1), calls)
  out, y = jax.vmap(lambda k, x: mixjax.mix(k, x, jnp.arange(batch) % 2, config))(keys, x)
  x, out, y = np.asarray(x), np.asarray(out), np.asarray(y)  # (Not 3000 eager slices.)
  kinds = np.stack([_classify(x[c], out[c], y[c])[0] for c in range(calls)])
  assert (kinds == kinds[:, :1]).all(), "batch mode must treat the whole batch alike"
  kinds = kinds[:, 0]
  assert _within((kinds > 0).sum(), calls, 0.7)
  assert _within((kinds == 2).sum(), (kinds > 0).sum(), 0.5)


BOX_RULE_CONFIGS = {rule: MixConfig(mixup_alpha=0.0, cutmix_alpha=1.0, mode="elem",
                                    num_classes=2, box_rule=rule)
                    for rule in ("reference", "full_side")}
BOX_RULE_N, BOX_RULE_HW = 4000, 32


@jax.jit
def _draws_by_box_rule(key):
  """test_policy_boxes_follow_box_rule's draw for each box rule: one program for both."""
  return {rule: mixjax.sample_mix(key, BOX_RULE_N, (BOX_RULE_HW, BOX_RULE_HW), config)
          for rule, config in BOX_RULE_CONFIGS.items()}


@pytest.mark.parametrize("box_rule", ["reference", "full_side"])
def test_policy_boxes_follow_box_rule(box_rule):
  """The policy's CutMix boxes are sample_cutmix_boxes' (reference rand_bbox by default).

  On 32×32 a reference box that is clipped on neither side of an axis has an even side
  (2·⌊cut/2⌋); mixjax 0.1.0's full_side boxes have odd ones too (the full cut).
  """
  hw = BOX_RULE_HW
  assert MixConfig(cutmix_alpha=1.0).box_rule == "reference"
  params = jax.device_get(_draws_by_box_rule(jax.random.key(3)))[box_rule]
  boxes = np.asarray(params.boxes)
  area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
  # Exact label weight of each example's own box.
  np.testing.assert_array_equal(np.asarray(params.label_weight),
                                np.float32(1) - area.astype(np.float32) / np.float32(hw * hw))
  odd = []
  for lo, hi in [(0, 2), (1, 3)]:
    interior = (boxes[:, lo] > 0) & (boxes[:, hi] < hw)
    odd.append(((boxes[:, hi] - boxes[:, lo])[interior] % 2 == 1).any())
  assert odd == [box_rule == "full_side"] * 2


@functools.partial(jax.jit, static_argnames="config")
def _flip_draw_mix_and_permuted_draw(key, x, config):
  """sample_mix and mix of `config` by one key, and sample_mix of it with pairing="permute":
  one program (they share the draw but for the partners)."""
  permuted = dataclasses.replace(config, pairing="permute")
  return (mixjax.sample_mix(key, x.shape[0], x.shape[1:3], config),
          mixjax.mix(key, x, LABELS, config),
          mixjax.sample_mix(key, x.shape[0], x.shape[1:3], permuted))


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_pairing_flip_is_timms_reversed_batch(mode):
  """pairing="flip" pairs example i with B − 1 − i, as timm's Mixup (x.flip(0)); the
  default pairs by a random permutation (MixConfig's one departure from timm's pairing)."""
  assert MixConfig().pairing == "permute"
  config = MixConfig(mixup_alpha=0.0, cutmix_alpha=1.0, mode=mode, num_classes=B,
                     pairing="flip")
  x = distinct_images(SHAPE)
  flipped = np.arange(B)[::-1]
  pasted = 0
  for seed in range(4):
    params, (out, y), permuted = jax.device_get(
        _flip_draw_mix_and_permuted_draw(jax.random.key(seed), x, config))
    np.testing.assert_array_equal(params.perm, flipped, err_msg=f"seed {seed}")
    # Every pixel is the example's own or the one at the same place in x[::-1].
    xs = np.asarray(x)
    own, partner = out == xs, out == xs[::-1]
    assert (own | partner).all(), seed
    pasted += (~own).any(axis=(1, 2, 3)).sum()
    _check_pasted(x, out, y)  # Labels: the exact kept fraction, the flipped partner's row.
    if seed == 0:  # The same config but for the pairing, by key 0.
      assert (np.asarray(permuted.perm) != flipped).any()
  assert pasted > 0


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_policy_is_one_program_for_any_batch(mode):
  config = MixConfig(mixup_alpha=1.0, cutmix_alpha=1.0, mode=mode, num_classes=B)

  def size(batch):
    x = jnp.zeros((batch, 8, 8, 3))
    y = jnp.zeros((batch,), jnp.int32)
    fn = lambda k, x, y: mixjax.mix(k, x, y, config)
    return num_eqns(jax.make_jaxpr(fn)(jax.random.key(0), x, y).jaxpr)
  assert size(4) == size(64)


def test_config_is_frozen_and_hashable():
  a = MixConfig(cutmix_alpha=1.0, cutmix_minmax=[0.2, 0.8], num_classes=10)
  b = MixConfig(cutmix_alpha=1.0, cutmix_minmax=(0.2, 0.8), num_classes=10)
  assert a.cutmix_minmax == (0.2, 0.8)  # Normalised to a hashable tuple.
  assert a == b and hash(a) == hash(b)
  assert len({a, b, MixConfig(num_classes=10)}) == 2
  with pytest.raises(dataclasses.FrozenInstanceError):
    a.prob = 0.5
  assert a.mixup_enabled and a.cutmix_enabled
  c = MixConfig(mixup_alpha=0.0, cutmix_minmax=(0.2, 0.8))
  assert c.cutmix_enabled and not c.mixup_enabled
  # Defaults follow timm except label_smoothing.
  d = MixConfig()
  assert (d.mixup_alpha, d.cutmix_alpha, d.prob, d.switch_prob, d.mode, d.label_smoothing) == (
      1.0, 0.0, 1.0, 0.5, "batch", 0.0)
  assert d.box_rule == "reference"
