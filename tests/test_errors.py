"""Bad input raises ValueError at trace time, naming what was expected; batch 1 is fine."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixjax
from mixjax import MixConfig
from tests.tolerances import assert_close_in_ulps

B, K = 8, 8
KEY = jax.random.key(0)
IMAGES = jnp.zeros((B, 8, 8, 3))
LABELS = jnp.arange(B, dtype=jnp.int32)
FEATURES = jnp.zeros((B, 5))


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_alpha_must_be_positive(alpha):
  match = r"alpha must be > 0"
  with pytest.raises(ValueError, match=match):
    mixjax.mixup(KEY, IMAGES, LABELS, alpha=alpha, num_classes=K)
  with pytest.raises(ValueError, match=match):
    mixjax.cutmix(KEY, IMAGES, LABELS, alpha=alpha, num_classes=K)
  with pytest.raises(ValueError, match=match):
    mixjax.sample_mixup(KEY, B, alpha=alpha)
  with pytest.raises(ValueError, match=match):
    mixjax.sample_lambda(KEY, B, alpha)
  with pytest.raises(ValueError, match=match):
    mixjax.symmetric_beta(KEY, alpha, (B,))
  with pytest.raises(ValueError, match=match):
    mixjax.sample_plan(KEY, B, 3, alpha=alpha)
  if alpha < 0:  # In MixConfig, 0 disables a method; negative is an error.
    with pytest.raises(ValueError, match=r"mixup_alpha must be >= 0"):
      MixConfig(mixup_alpha=alpha, cutmix_alpha=1.0)
    with pytest.raises(ValueError, match=r"cutmix_alpha must be >= 0"):
      MixConfig(cutmix_alpha=alpha)


def test_errors_fire_at_trace_time():
  # Raised while tracing: under an outer jit, before anything runs, and make_jaxpr too.
  with pytest.raises(ValueError, match=r"alpha must be > 0"):
    jax.jit(lambda k, x, y: mixjax.mixup(k, x, y, alpha=0.0, num_classes=K))(
        KEY, IMAGES, LABELS)
  with pytest.raises(ValueError, match=r"two spatial axes"):
    jax.make_jaxpr(lambda k, x, y: mixjax.cutmix(k, x, y, num_classes=K))(
        KEY, FEATURES, LABELS)


def test_batch_mismatch():
  match = r"images and labels must have the same batch size"
  config = MixConfig(cutmix_alpha=1.0, num_classes=K)
  with pytest.raises(ValueError, match=match):
    mixjax.mixup(KEY, IMAGES, LABELS[:7], num_classes=K)
  with pytest.raises(ValueError, match=match):
    mixjax.cutmix(KEY, IMAGES, jnp.eye(K)[:5], num_classes=K)
  with pytest.raises(ValueError, match=match):
    mixjax.mix(KEY, IMAGES, LABELS[:4], config)
  # Raised while tracing: params drawn abstractly (no eager draw to compile) suffice.
  params = jax.eval_shape(lambda k: mixjax.sample_mixup(k, 4), KEY)
  with pytest.raises(ValueError, match=r"MixParams were drawn for a batch of 4"):
    jax.eval_shape(lambda p: mixjax.apply_mix(p, IMAGES, LABELS, K), params)
  with pytest.raises(ValueError, match=r"labels must have the batch size of images"):
    jax.eval_shape(lambda p: mixjax.mix_labels(p, LABELS, K), params)


def test_integer_labels_need_num_classes():
  match = r"integer class ids need num_classes"
  with pytest.raises(ValueError, match=match):
    mixjax.mixup(KEY, IMAGES, LABELS)
  with pytest.raises(ValueError, match=match):
    mixjax.cutmix(KEY, IMAGES, LABELS)
  with pytest.raises(ValueError, match=match):
    mixjax.mix(KEY, IMAGES, LABELS, MixConfig())
  with pytest.raises(ValueError, match=match):
    mixjax.soft_labels(LABELS)
  with pytest.raises(ValueError, match=r"1-D labels must be integer class ids"):
    mixjax.mixup(KEY, IMAGES, LABELS.astype(jnp.float32), num_classes=K)
  with pytest.raises(ValueError, match=r"labels must be integer class ids \[B\] or label rows"):
    mixjax.mixup(KEY, IMAGES, jnp.zeros((B, K, 1)), num_classes=K)
  with pytest.raises(ValueError, match=r"num_classes must be a positive int"):
    mixjax.soft_labels(LABELS, 0)


def test_label_rows_must_have_num_classes_columns():
  match = r"label rows must have width num_classes=10"
  with pytest.raises(ValueError, match=match):
    mixjax.mixup(KEY, IMAGES, jnp.eye(B), num_classes=10)
  with pytest.raises(ValueError, match=match):
    mixjax.cutmix(KEY, IMAGES, jnp.eye(B), num_classes=10)
  with pytest.raises(ValueError, match=match):
    mixjax.mix(KEY, IMAGES, jnp.eye(B), MixConfig(num_classes=10))


@pytest.mark.parametrize("shape", [(B, 5), (B, 2, 2, 8, 8, 3)])  # Rank 5 is clips.
def test_cutmix_needs_two_spatial_axes(shape):
  match = r"CutMix needs images with two spatial axes"
  images = jnp.zeros(shape)
  with pytest.raises(ValueError, match=match):
    mixjax.cutmix(KEY, images, LABELS, num_classes=K)
  with pytest.raises(ValueError, match=match):
    mixjax.mix(KEY, images, LABELS, MixConfig(cutmix_alpha=1.0, num_classes=K))
  params = jax.eval_shape(lambda k: mixjax.sample_cutmix(k, B, (8, 8)), KEY)
  with pytest.raises(ValueError, match=match):  # At trace time: abstract params suffice.
    jax.eval_shape(lambda p: mixjax.mix_images(p, images), params)


NCHW_MATCH = (r"looks channels-first \[B, C, H, W\].*jnp\.transpose\(x, \(0, 2, 3, 1\)\)"
              r".*layout='NHWC'")


@pytest.mark.parametrize("shape", [(B, 3, 32, 32), (B, 1, 28, 28), (B, 4, 8, 5)])
def test_cutmix_refuses_likely_channels_first(shape):
  """Axis 1 of size 1, 3 or 4 and a last axis > 4: NCHW, refused at trace time in every
  box path, with the fix and the way to pass such NHWC data on purpose in the message."""
  images = jnp.zeros(shape)
  policy = MixConfig(cutmix_alpha=1.0, num_classes=K)
  calls = [
      lambda k, x: mixjax.cutmix(k, x, LABELS, num_classes=K),
      lambda k, x: mixjax.mix(k, x, LABELS, policy),
      lambda k, x: mixjax.mix_images(mixjax.sample_cutmix(k, B, (8, 8)), x),
      lambda k, x: mixjax.apply_mix(mixjax.sample_cutmix(k, B, (8, 8)), x, LABELS, K),
  ]
  for call in calls:
    with pytest.raises(ValueError, match=NCHW_MATCH):
      jax.make_jaxpr(call)(KEY, images)  # Trace time: shapes only.
  # Without boxes any layout is fine (Mixup never reads H and W): traced, not refused.
  mixup_only = MixConfig(mixup_alpha=1.0, num_classes=K)
  out = jax.eval_shape(lambda k, x: mixjax.mix(k, x, LABELS, mixup_only)[0], KEY, images)
  assert out.shape == shape


@pytest.mark.parametrize("shape", [(B, 8, 8, 3), (B, 3, 8, 4), (B, 3, 8), (B, 5, 8, 8),
                                   (B, 1, 1, 1)])
def test_channels_first_guard_spares_nhwc(shape):
  # Last axis ≤ 4, rank 3, or axis 1 not in {1, 3, 4}: read as NHWC / NHW as before. The
  # guard acts while tracing, so tracing (without compiling a program per shape) shows it.
  out, _ = jax.eval_shape(lambda k, x: mixjax.cutmix(k, x, LABELS, num_classes=K), KEY,
                          jax.ShapeDtypeStruct(shape, jnp.float32))
  assert out.shape == shape


def test_layout_nhwc_pastes_into_such_data_on_purpose():
  # [B, 3, 8, 8] that really is 3 rows × 8 columns × 8 channels: layout="NHWC" says so.
  shape = (B, 3, 8, 8)
  x = jnp.asarray(2 * np.arange(B).reshape(B, 1, 1, 1)
                  + np.random.default_rng(0).uniform(size=shape), jnp.float32)
  key = jax.random.key(1)
  out, y = mixjax.cutmix(key, x, LABELS, num_classes=K, mode="elem", layout="NHWC")

  @jax.jit  # The reference draw, mask and mix in one program (not op by op).
  def reference(key, x):
    params = mixjax.sample_cutmix(key, B, (3, 8), mode="elem")
    return (params, mixjax.box_mask(params.boxes, 3, 8),
            mixjax.apply_mix(params, x, LABELS, K, layout="NHWC"))

  params, mask, (expected_out, expected_y) = reference(key, x)
  mask = np.asarray(mask)[..., None]
  partners = np.asarray(x)[np.asarray(params.perm)]
  np.testing.assert_array_equal(out, np.where(mask, partners, np.asarray(x)))
  assert (mask.sum(axis=(1, 2, 3)) > 0).any()
  np.testing.assert_array_equal(out, expected_out)
  # w·e_i + (1 − w)·e_p, rounded once or fused into an FMA: 1 ulp of 1.
  assert_close_in_ulps(y, expected_y, 1, scale=1.0)
  # The policy and mix_images take the layout too (shapes: traced only).
  policy = MixConfig(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=K)
  assert jax.eval_shape(lambda k, x: mixjax.mix(k, x, LABELS, policy, layout="NHWC")[0],
                        key, x).shape == shape
  assert jax.eval_shape(lambda p, x: mixjax.mix_images(p, x, layout="NHWC"),
                        params, x).shape == shape
  with pytest.raises(ValueError, match=r"layout must be None .* 'NHWC' or 'NTHWC'"):
    mixjax.cutmix(key, x, LABELS, num_classes=K, layout="NCHW")
  with pytest.raises(ValueError, match=r"layout must be None .* 'NHWC' or 'NTHWC'"):
    jax.eval_shape(lambda k, x: mixjax.mix_images(mixjax.sample_mixup(k, B), x, layout="nhwc"),
                   key, x)


def test_images_must_be_batched_arrays():
  with pytest.raises(ValueError, match=r"images must have rank >= 2"):
    mixjax.mixup(KEY, jnp.zeros((B,)), LABELS, num_classes=K)
  with pytest.raises(ValueError, match=r"images must have a floating or integer dtype"):
    mixjax.mixup(KEY, jnp.zeros((B, 3), bool), LABELS, num_classes=K)


def test_unknown_mode():
  match = r"mode must be one of \('batch', 'elem'\), got 'pixel'"
  with pytest.raises(ValueError, match=match):
    mixjax.mixup(KEY, IMAGES, LABELS, num_classes=K, mode="pixel")
  with pytest.raises(ValueError, match=match):
    mixjax.cutmix(KEY, IMAGES, LABELS, num_classes=K, mode="pixel")
  with pytest.raises(ValueError, match=match):
    MixConfig(mode="pixel")
  with pytest.raises(ValueError, match=match):
    mixjax.sample_plan(KEY, B, 3, mode="pixel")


def test_unknown_pairing():
  match = r"pairing must be one of \('permute', 'flip', 'roll'\), got 'shuffle'"
  with pytest.raises(ValueError, match=match):
    mixjax.mixup(KEY, IMAGES, LABELS, num_classes=K, pairing="shuffle")
  with pytest.raises(ValueError, match=match):
    mixjax.cutmix(KEY, IMAGES, LABELS, num_classes=K, pairing="shuffle")
  with pytest.raises(ValueError, match=match):
    MixConfig(pairing="shuffle")
  with pytest.raises(ValueError, match=match):
    mixjax.sample_partners(KEY, B, "shuffle")


def test_unknown_box_rule():
  match = r"box_rule must be one of \('reference', 'full_side'\), got 'corner'"
  with pytest.raises(ValueError, match=match):
    mixjax.cutmix(KEY, IMAGES, LABELS, num_classes=K, box_rule="corner")
  with pytest.raises(ValueError, match=match):
    MixConfig(cutmix_alpha=1.0, box_rule="corner")
  with pytest.raises(ValueError, match=match):
    mixjax.sample_cutmix(KEY, B, (8, 8), box_rule="corner")
  with pytest.raises(ValueError, match=match):
    mixjax.sample_boxes(KEY, jnp.ones((B,)), 8, 8, box_rule="corner")


@pytest.mark.parametrize("name", ["prob", "switch_prob"])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_probabilities_must_be_in_unit_interval(name, value):
  with pytest.raises(ValueError, match=rf"{name} must be a probability in \[0, 1\]"):
    MixConfig(cutmix_alpha=1.0, **{name: value})


def test_config_must_enable_a_method():
  with pytest.raises(ValueError, match=r"MixConfig enables no method"):
    MixConfig(mixup_alpha=0.0)
  with pytest.raises(ValueError, match=r"MixConfig enables no method"):
    MixConfig(mixup_alpha=0.0, cutmix_alpha=0.0)
  with pytest.raises(ValueError, match=r"config must be a MixConfig"):
    mixjax.mix(KEY, IMAGES, LABELS, ("not", "a", "config"))


@pytest.mark.parametrize("minmax", [(0.5, 0.2), (0.0, 0.5), (0.2, 1.5), (0.3,), (0.1, 0.2, 0.3)])
def test_bad_minmax(minmax):
  match = r"minmax must (satisfy 0 < min <= max <= 1|be a pair)"
  with pytest.raises(ValueError, match=match):
    mixjax.cutmix(KEY, IMAGES, LABELS, num_classes=K, minmax=minmax)
  with pytest.raises(ValueError, match=match):
    MixConfig(cutmix_minmax=minmax)
  with pytest.raises(ValueError, match=match):
    mixjax.sample_cutmix(KEY, B, (8, 8), minmax=minmax)


def test_bad_label_smoothing_and_loss_shapes():
  match = r"label_smoothing must be in \[0, 1\)"
  with pytest.raises(ValueError, match=match):
    mixjax.mixup(KEY, IMAGES, LABELS, num_classes=K, label_smoothing=1.0)
  with pytest.raises(ValueError, match=match):
    MixConfig(label_smoothing=-0.1)
  with pytest.raises(ValueError, match=r"logits and targets must have the same shape"):
    mixjax.soft_target_cross_entropy(jnp.zeros((B, K)), jnp.zeros((B, K + 1)))


def test_sample_mix_with_cutmix_needs_image_size():
  with pytest.raises(ValueError, match=r"image_size \(H, W\) is required"):
    jax.eval_shape(lambda k: mixjax.sample_mix(k, B, None, MixConfig(cutmix_alpha=1.0)), KEY)


# Batch size 1 is allowed: the example is its own partner and comes back unchanged.
ONE_IMAGE = jnp.asarray(np.random.default_rng(0).uniform(size=(1, 8, 8, 3)), jnp.float32)
ONE_LABEL = jnp.array([3], jnp.int32)


@pytest.mark.parametrize("name", ["mixup", "cutmix", "policy"])
def test_batch_of_one_is_unchanged(name):
  ops = {
      "mixup": lambda k: mixjax.mixup(k, ONE_IMAGE, ONE_LABEL, num_classes=5, mode="elem"),
      "cutmix": lambda k: mixjax.cutmix(k, ONE_IMAGE, ONE_LABEL, num_classes=5, mode="elem"),
      "policy": lambda k: mixjax.mix(k, ONE_IMAGE, ONE_LABEL, MixConfig(
          cutmix_alpha=1.0, num_classes=5)),
  }
  for seed in range(4):
    out, y = ops[name](jax.random.key(seed))
    np.testing.assert_array_equal(out, ONE_IMAGE)
    np.testing.assert_array_equal(y, np.eye(5, dtype=np.float32)[[3]])
  np.testing.assert_array_equal(mixjax.sample_partners(KEY, 1), [0])
