"""The Mixer contract: masks, resized pastes, one structure for several mixes,
Mixer classes that draw what the functions draw, the registry and Choice."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixjax as mx
from tests.tolerances import assert_close_in_ulps

B, H, W, C = 8, 8, 8, 3
LABELS = jnp.arange(B, dtype=jnp.int32)
PAIRINGS = ("permute", "flip", "roll")


def _images(dtype=jnp.float32, seed=0, shape=(B, H, W, C)):
  rng = np.random.default_rng(seed)
  if jnp.issubdtype(dtype, jnp.integer):
    return jnp.asarray(rng.integers(0, 256, shape), dtype)
  return jnp.asarray(rng.uniform(size=shape), dtype)


def _assert_params_equal(a, b):
  chex.assert_trees_all_equal(a, b)  # Same fields present, bit-identical values.


# ---- Mixer classes draw what the functions draw --------------------------------------

@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("pairing", ["permute", "flip", "roll"])
def test_mixup_and_cutmix_mixers_draw_what_the_functions_draw(mode, pairing):
  for seed in range(3):
    key = jax.random.key(seed)
    _assert_params_equal(
        mx.Mixup(alpha=0.4, mode=mode, pairing=pairing).sample(key, B, (H, W, C)),
        mx.sample_mixup(key, B, alpha=0.4, mode=mode, pairing=pairing))
    _assert_params_equal(
        mx.CutMix(alpha=1.0, mode=mode, pairing=pairing).sample(key, B, (H, W, C)),
        mx.sample_cutmix(key, B, (H, W), alpha=1.0, mode=mode, pairing=pairing))
    _assert_params_equal(
        mx.CutMix(minmax=(0.2, 0.6), mode=mode, pairing=pairing).sample(key, B, (H, W)),
        mx.sample_cutmix(key, B, (H, W), mode=mode, minmax=(0.2, 0.6), pairing=pairing))


@functools.partial(jax.jit, static_argnames="mode")
def _prob_mixers_and_policy(key, x, mode):
  """(Mixer with prob, sample_mix / mix) pairs: one program per mode."""
  config = mx.MixConfig(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.9, mode=mode)
  policy = mx.Policy(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.9, mode=mode)
  return {
      "mixup": (mx.Mixup(alpha=1.0, prob=0.5, mode=mode).sample(key, B, (H, W, C)),
                mx.sample_mix(key, B, None, mx.MixConfig(mixup_alpha=1.0, cutmix_alpha=0.0,
                                                          prob=0.5, mode=mode))),
      "cutmix": (mx.CutMix(alpha=1.0, prob=0.5, mode=mode).sample(key, B, (H, W, C)),
                 mx.sample_mix(key, B, (H, W), mx.MixConfig(mixup_alpha=0.0, cutmix_alpha=1.0,
                                                             prob=0.5, mode=mode))),
      "policy": (policy.sample(key, B, (H, W, C)), mx.sample_mix(key, B, (H, W), config)),
      "policy call": (dataclasses.replace(policy, num_classes=B)(key, x, LABELS),
                      mx.mix(key, x, LABELS, dataclasses.replace(config, num_classes=B))),
  }


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_mixers_with_prob_draw_what_the_policy_draws(mode):
  """prob < 1 goes through sample_mix with the method alone, as the trainer did."""
  draws = jax.device_get(_prob_mixers_and_policy(jax.random.key(7), _images(), mode))
  for name, (mixer_draw, policy_draw) in draws.items():
    chex.assert_trees_all_equal(mixer_draw, policy_draw, custom_message=name)


CALLED_MIXERS = (mx.Mixup(num_classes=B, mode="elem"), mx.CutMix(num_classes=B),
                 mx.ResizeMix(num_classes=B, mode="elem"), mx.Mixup(num_classes=B, n=3))


@jax.jit
def _calls_and_sample_then_apply(key, x):
  """Each mixer's __call__ (its own jitted program, here traced inline) next to
  apply_mix(sample): one program for the four mixers."""
  return [(mixer(key, x, LABELS), mx.apply_mix(mixer.sample(key, B, x.shape[1:]), x, LABELS, B))
          for mixer in CALLED_MIXERS]


def test_mixer_call_is_sample_then_apply_and_mixers_are_static_configs():
  x = _images()
  results = jax.device_get(_calls_and_sample_then_apply(jax.random.key(1), x))
  for mixer, (called, expected) in zip(CALLED_MIXERS, results, strict=True):
    chex.assert_trees_all_equal(called, expected, custom_message=repr(mixer))
    assert hash(mixer) == hash(dataclasses.replace(mixer))
    with pytest.raises(dataclasses.FrozenInstanceError):
      mixer.mode = "elem"


@pytest.mark.parametrize("make,match", [
    (lambda: mx.Mixup(alpha=0.0), "alpha must be > 0"),
    (lambda: mx.Mixup(n=1), "n .examples per mix. must be an int >= 2"),
    (lambda: mx.Mixup(n=3, pairing="flip"), "n-way Mixup needs"),
    (lambda: mx.CutMix(minmax=(0.5, 0.2)), "minmax must satisfy"),
    (lambda: mx.ResizeMix(scope=(0.9, 0.1)), "scope must satisfy"),
    (lambda: mx.Mixup(mode="pixel"), "mode must be one of"),
    (lambda: mx.Mixup(prob=1.5), "prob must be a probability"),
    (lambda: mx.Choice(mixers=()), "non-empty tuple of Mixers"),
    (lambda: mx.Choice(mixers=(mx.Mixup(),), probs=(0.5,)), "sum to 1"),
    (lambda: mx.Choice(mixers=(mx.Mixup(),), probs=(0.5, 0.5)), "one probability per mixer"),
])
def test_bad_hyper_parameters_raise(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_spatial_mixers_need_two_spatial_axes():
  with pytest.raises(ValueError, match="two spatial axes"):
    mx.CutMix().sample(jax.random.key(0), B, (64,))
  with pytest.raises(ValueError, match="two spatial axes"):
    mx.ResizeMix(num_classes=B)(jax.random.key(0), jnp.zeros((B, 64)), LABELS)


# ---- The contract: masks and resized pastes -------------------------------------------

def _random_mask(seed, soft):
  rng = np.random.default_rng(seed)
  if soft:
    m = rng.uniform(size=(B, H, W)).astype(np.float32)
    m[0] = 0.0
    m[1] = 1.0
    return jnp.asarray(m)
  return jnp.asarray(rng.uniform(size=(B, H, W)) < 0.4)


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.bfloat16, jnp.float32])
def test_hard_mask_copies_the_partner_pixels_exactly_and_keeps_the_dtype(dtype):
  x = _images(dtype)
  perm = jnp.asarray(np.random.default_rng(1).permutation(B), jnp.int32)
  mask = _random_mask(2, soft=False)
  params = mx.mask_params(perm, mask)
  out, y = mx.apply_mix(params, x, LABELS, B)
  assert out.dtype == dtype and mx.mixed_dtype(params, dtype) == dtype
  expected = np.where(np.asarray(mask)[..., None], np.asarray(x)[np.asarray(perm)],
                      np.asarray(x))
  np.testing.assert_array_equal(np.asarray(out), expected)
  # w = 1 − |M|/(H·W), exactly: a count over a power of two.
  kept = 1.0 - np.asarray(mask).sum(axis=(1, 2)) / (H * W)
  np.testing.assert_array_equal(np.asarray(params.label_weight), kept.astype(np.float32))
  rows = np.eye(B, dtype=np.float32)
  want = kept[:, None] * rows + (1 - kept[:, None]) * rows[np.asarray(perm)]
  own = np.asarray(perm) == np.arange(B)
  want[own] = rows[own]
  np.testing.assert_array_equal(np.asarray(y), want.astype(np.float32))


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.bfloat16, jnp.float32])
def test_soft_mask_blends_per_pixel(dtype):
  x = _images(dtype, shape=(B, H, W))  # Rank 3: NHW.
  perm = jnp.asarray([1, 0, 3, 2, 5, 4, 6, 7], jnp.int32)  # 6 and 7 are their own.
  mask = _random_mask(3, soft=True)
  params = mx.mask_params(perm, mask)
  out = mx.mix_images(params, x)
  out_dtype = jnp.float32 if dtype == jnp.uint8 else dtype
  assert out.dtype == out_dtype
  x64 = np.asarray(x.astype(jnp.float32), np.float64)
  m = np.asarray(mask, np.float64)
  expected = m * x64[np.asarray(perm)] + (1 - m) * x64
  eps = float(jnp.finfo(out_dtype).eps)
  # Computed in float32 and rounded once to out_dtype: within one ulp of out_dtype
  # (bfloat16: half an ulp of rounding) plus a few float32 ulps of the sum.
  assert_close_in_ulps(np.asarray(out.astype(jnp.float32)), expected, 1 + 4 * 2**-23 / eps,
                       eps=eps)
  np.testing.assert_array_equal(np.asarray(out[1].astype(jnp.float32)), x64[0])  # m = 1.
  np.testing.assert_array_equal(np.asarray(out[6:]), np.asarray(x[6:].astype(out_dtype)))
  np.testing.assert_allclose(np.asarray(params.label_weight),
                             1 - m.mean(axis=(1, 2)), rtol=0, atol=2**-22)


def test_source_boxes_equal_to_boxes_is_cutmix():
  x = _images()
  params = mx.sample_cutmix(jax.random.key(4), B, (H, W), mode="elem")
  same = params.replace(source_boxes=params.boxes)
  np.testing.assert_array_equal(np.asarray(mx.mix_images(same, x)),
                                np.asarray(mx.mix_images(params, x)))


@pytest.mark.parametrize("bad,match", [
    (dict(mask=jnp.zeros((B, H, W + 1), bool)), r"mask must be \[B, H, W\]"),
    (dict(mask=jnp.zeros((B, H, W), jnp.int32)), "mask must be bool or floating"),
    (dict(source_boxes=jnp.zeros((B, 4), jnp.int32)), "need boxes"),
    (dict(more_perms=jnp.zeros((B, 1), jnp.int32)), "given together"),
    (dict(more_perms=jnp.zeros((B, 1), jnp.int32), more_weights=jnp.zeros((B, 1))),
     "need lam"),
])
def test_malformed_params_raise(bad, match):
  params = mx.identity_params(B).replace(**bad)
  with pytest.raises(ValueError, match=match):
    mx.mix_images(params, _images())


# ---- One structure, selection, prob ----------------------------------------------------

CHOSEN = (mx.Mixup(mode="elem"), mx.CutMix(mode="elem"), mx.ResizeMix(mode="elem"),
          mx.Identity())
CHOICE = mx.Choice(mixers=CHOSEN, probs=(0.3, 0.3, 0.3, 0.1), mode="elem", num_classes=B)


@jax.jit
def _choice_and_each_mixers_mix(key, x):
  """The Choice's mix, its choices, and each mixer's own mix of the whole batch with the
  key and the shared partners the Choice hands it: one program, run per seed."""
  key_choice, key_partners, *keys = jax.random.split(key, len(CHOSEN) + 2)
  partners = mx.sample_partners(key_partners, B)
  return (CHOICE(key, x, LABELS), CHOICE.choose(key_choice, B),
          [mx.apply_mix(mixer.sample(k, B, x.shape[1:], partners=partners), x, LABELS, B)
           for mixer, k in zip(CHOICE.mixers, keys, strict=True)])


def test_choice_gives_each_example_its_chosen_mixers_mix():
  x = _images()
  for seed in range(4):
    (out, y), which, own = jax.device_get(_choice_and_each_mixers_mix(jax.random.key(seed), x))
    for j, (mixer, (own_out, own_y)) in enumerate(zip(CHOSEN, own, strict=True)):
      rows = which == j
      what = f"{type(mixer).__name__}, seed {seed}"
      if isinstance(mixer, mx.Mixup):  # A blend: the same formula computed apart.
        assert_close_in_ulps(out[rows], own_out[rows], 2, scale=1.0, err_msg=what)
        assert_close_in_ulps(y[rows], own_y[rows], 2, scale=1.0, err_msg=what)
      else:  # Pastes and the identity: λ = 1 adds 0·x_p, exactly nothing.
        np.testing.assert_array_equal(out[rows], own_out[rows], err_msg=what)
        np.testing.assert_array_equal(y[rows], own_y[rows], err_msg=what)


def test_choice_frequencies_batch_and_elem():
  """Chosen mixers' counts against probs: chi-squared test at the 1% level."""
  from scipy import stats
  probs = (0.2, 0.5, 0.3)
  mixers = (mx.Mixup(), mx.CutMix(), mx.Identity())
  elem = mx.Choice(mixers=mixers, probs=probs, mode="elem")
  batch = mx.Choice(mixers=mixers, probs=probs)
  which, draws = jax.device_get(jax.jit(lambda k0, k1: (  # Both draws in one program.
      elem.choose(k0, 30_000), jax.vmap(lambda k: batch.choose(k, 4))(jax.random.split(k1, 3000))
  ))(jax.random.key(0), jax.random.key(1)))
  counts = np.bincount(which, minlength=3)
  assert stats.chisquare(counts, 30_000 * np.asarray(probs)).pvalue > 0.01
  assert (draws == draws[:, :1]).all(), "batch mode chooses one mixer per call"
  counts = np.bincount(draws[:, 0], minlength=3)
  assert stats.chisquare(counts, 3000 * np.asarray(probs)).pvalue > 0.01


def test_choice_is_one_program_and_jits_and_vmaps():
  x = _images(jnp.uint8)
  choice = mx.Choice(mixers=(mx.CutMix(), mx.ResizeMix()), mode="elem", num_classes=B)
  jaxpr = jax.make_jaxpr(lambda k: choice(k, x, LABELS))(jax.random.key(0))
  assert "cond" not in str(jaxpr) and "switch" not in str(jaxpr)
  out, y = choice(jax.random.key(0), x, LABELS)
  assert out.dtype == jnp.uint8  # Both paste: the dtype is kept.
  keys = jax.random.split(jax.random.key(1), 3)
  outs, ys = jax.vmap(lambda k: choice(k, x, LABELS))(keys)
  for i in range(3):
    chex.assert_trees_all_equal((outs[i], ys[i]), choice(keys[i], x, LABELS))


def test_mixed_and_pasted_structures_combine():
  a = mx.sample_mixup(jax.random.key(0), B, n=3)
  b = mx.mask_params(jnp.arange(B, dtype=jnp.int32)[::-1], _random_mask(0, soft=False))
  c = mx.sample_resizemix(jax.random.key(1), B, (H, W))
  ca, cb, cc = mx.common_structure(a, b, c)
  assert jax.tree.structure(ca) == jax.tree.structure(cb) == jax.tree.structure(cc)
  assert ca.mask.dtype == jnp.bool_ and ca.more_perms.shape == (B, 1)
  np.testing.assert_array_equal(np.asarray(cb.more_weights), 0)
  np.testing.assert_array_equal(np.asarray(cb.lam), 1)
  x = _images()
  np.testing.assert_array_equal(np.asarray(mx.mix_images(cb, x)),
                                np.asarray(mx.mix_images(b, x)))
  np.testing.assert_array_equal(np.asarray(mx.mix_images(cc, x)),
                                np.asarray(mx.mix_images(c, x)))
  assert_close_in_ulps(np.asarray(mx.mix_images(ca, x)), np.asarray(mx.mix_images(a, x)), 2,
                       scale=1.0)


@pytest.mark.parametrize("mixer", [mx.ResizeMix(mode="elem", prob=0.5),
                                   mx.Mixup(n=3, mode="elem", prob=0.5)])
def test_prob_leaves_unmixed_examples_bit_for_bit(mixer):
  x = _images()
  mixer = dataclasses.replace(mixer, num_classes=B)
  out, y = mixer(jax.random.key(5), x, LABELS)
  unchanged = np.all(np.asarray(y) == np.eye(B), axis=1)
  assert 0 < unchanged.sum() < B
  np.testing.assert_array_equal(np.asarray(out)[unchanged], np.asarray(x)[unchanged])


# ---- Registry ---------------------------------------------------------------------------

def test_registry_builds_every_builtin_by_name():
  assert {"mixup", "cutmix", "policy", "resizemix", "identity", "choice"} <= set(
      mx.list_mixers())
  assert mx.get_mixer("mixup", alpha=0.2, n=3) == mx.Mixup(alpha=0.2, n=3)
  assert mx.get_mixer("resizemix", scope=[0.2, 0.5]).scope == (0.2, 0.5)
  with pytest.raises(ValueError, match=r"unknown mixer 'mixdown'; known mixers: \["):
    mx.get_mixer("mixdown")
  with pytest.raises(ValueError, match=r"mixer 'resizemix' does not take \['alpha'\]"):
    mx.get_mixer("resizemix", alpha=1.0)  # Its Beta option is tau_alpha.


def test_a_new_method_is_a_class_and_one_registry_line():
  @dataclasses.dataclass(frozen=True, kw_only=True)
  class LeftHalf(mx.Mixer):
    """Takes the left half of every image from the partner."""
    spatial = True

    def draw(self, key, batch_size, image_shape):
      height, width = mx.spatial_size(image_shape)
      mask = jnp.broadcast_to(jnp.arange(width) < width // 2, (batch_size, height, width))
      return mx.mask_params(mx.sample_partners(key, batch_size, self.pairing), mask)

  mx.register_mixer("left_half_test", LeftHalf)
  try:
    mixer = mx.get_mixer("left_half_test", num_classes=B, pairing="flip")
    out, y = mixer(jax.random.key(0), _images(jnp.uint8), LABELS)
    assert out.dtype == jnp.uint8
    np.testing.assert_array_equal(np.asarray(y).max(axis=1), 0.5)
    with pytest.raises(ValueError, match="already registered"):
      mx.register_mixer("left_half_test", mx.Mixup)
  finally:
    from mixjax import registry
    registry._MIXERS.pop("left_half_test")


def test_a_mixer_may_draw_from_the_pixels():
  """uses_images: sample() passes the batch to draw() (SaliencyMix's boxes need it)."""

  @dataclasses.dataclass(frozen=True, kw_only=True)
  class BrightestPartner(mx.Mixer):
    """Pastes from the brightest image of the batch wherever a pixel is darker."""
    spatial = True
    uses_images = True

    def draw(self, key, batch_size, image_shape, images=None):
      del key
      gray = images.reshape(images.shape[:3] + (-1,)).mean(axis=3)
      brightest = jnp.argmax(gray.mean(axis=(1, 2))).astype(jnp.int32)
      perm = jnp.full((batch_size,), brightest)
      return mx.mask_params(perm, gray < gray[brightest][None])

  x = _images()
  mixer = BrightestPartner(num_classes=B)
  with pytest.raises(ValueError, match="pass images="):
    mixer.sample(jax.random.key(0), B, x.shape[1:])
  choice = mx.Choice(mixers=(mixer, mx.CutMix()), mode="elem", num_classes=B)
  assert choice.uses_images
  from mixjax import registry, training
  mx.register_mixer("brightest_test", BrightestPartner)
  try:

    @jax.jit
    def run(x):  # One program: the call, sample then apply, the Choice and the trainer's plan.
      params = mixer.sample(jax.random.key(0), B, x.shape[1:], images=x)
      plan = training.draw_plan(jax.random.key(0), B, (H, W), mixer, images=x)
      return (mixer(jax.random.key(0), x, LABELS), params, mx.apply_mix(params, x, LABELS, B),
              choice(jax.random.key(1), x, LABELS), plan.params)

    called, params, applied, _, plan_params = jax.device_get(run(x))
  finally:
    registry._MIXERS.pop("brightest_test")
  chex.assert_trees_all_equal(called, applied)
  chex.assert_trees_all_equal(plan_params, params)


def test_timm_policy_is_the_two_mixer_choice_in_distribution():
  """Choice((Mixup(α_m), CutMix(α_c)), probs=(1 − s, s), prob=p) and MixConfig draw the same
  law: per-example outcome counts (Mixup / CutMix / none) by a chi-squared contingency
  test, and the label weights of each outcome by two-sample KS tests, all at the 1% level.
  A 256×256 image makes empty boxes (λ > 1 − 1/256²) negligible for telling outcomes apart."""
  from scipy import stats
  n, size = 20_000, (256, 256)
  config = mx.MixConfig(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.7, switch_prob=0.4,
                        mode="elem")
  choice = mx.Choice(mixers=(mx.Mixup(alpha=0.8, mode="elem"), mx.CutMix(mode="elem")),
                     probs=(0.6, 0.4), prob=0.7, mode="elem")

  def outcomes(p):
    cut = mx.box_area(p.boxes) > 0
    blend = p.lam < 1
    return jnp.where(cut, 1, jnp.where(blend, 0, 2)), p.label_weight

  (a, wa), (b, wb) = jax.device_get(jax.jit(lambda k0, k1: (  # Both draws in one program.
      outcomes(mx.sample_mix(k0, n, size, config)), outcomes(choice.sample(k1, n, size))))(
          jax.random.key(0), jax.random.key(1)))
  table = np.stack([np.bincount(a, minlength=3), np.bincount(b, minlength=3)])
  assert stats.chi2_contingency(table).pvalue > 0.01
  expected = np.array([0.7 * 0.6, 0.7 * 0.4, 0.3])
  sigma = np.sqrt(expected * (1 - expected) / n)  # Binomial; 4σ: a 6e-5 false alarm each.
  assert (np.abs(table / n - expected) < 4 * sigma).all()
  for outcome in (0, 1):
    assert stats.kstest(wa[a == outcome], wb[b == outcome]).pvalue > 0.01
  np.testing.assert_array_equal(wb[b == 2], 1.0)


def test_box_params_weigh_labels_as_cutmix_does():
  params = mx.sample_cutmix(jax.random.key(9), B, (H, W), mode="elem")
  chex.assert_trees_all_equal(mx.box_params(params.perm, params.boxes, (H, W)), params)
  with pytest.raises(ValueError, match=r"boxes must be \[B, 4\]"):
    mx.box_params(params.perm, params.boxes[:, :2], (H, W))


def test_a_self_paired_resizemix_keeps_its_box_next_to_a_soft_mask_mix():
  """ResizeMix changes an example paired with itself (a shrunk copy); selected together with
  a soft-mask mix (zero mask), it still does, bit for bit."""
  x = _images()
  resize = mx.sample_resizemix(jax.random.key(0), B, (H, W), scope=(0.5, 0.8))
  resize = resize.replace(perm=jnp.arange(B, dtype=jnp.int32))
  soft = mx.mask_params(jnp.arange(B, dtype=jnp.int32)[::-1], _random_mask(1, soft=True))
  union_resize, _ = mx.common_structure(resize, soft)
  want = np.asarray(mx.mix_images(resize, x))
  assert not np.array_equal(want, np.asarray(x))
  np.testing.assert_array_equal(np.asarray(mx.mix_images(union_resize, x)), want)
