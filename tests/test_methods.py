"""The trainer takes mixers: a method is a registered mixer (or none for ERM) with its
fields from the config, applied at the input or, for Manifold Mixup, at a hidden layer.
The recipes' methods draw what they always drew, any registered mixer trains by name,
and a config field a method cannot take is an error naming both."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixjax as mx
from configs import digits
from mixjax import training
from mixjax.models import get_model
from mixjax.registry import _MIXERS

B, SIZE = 16, (8, 8)
LAYERS = (0, 1, 2)


def _config(**fields):
  c = digits.get_config()
  for k, v in fields.items():
    setattr(c, k, v)
  return c


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_config_methods_draw_what_they_always_drew(mode):
  """The base config's papers' values (they were the trainer's presets): each method
  draws exactly what its sampler draws, Manifold Mixup what sample_plan draws."""
  c = _config(mix_mode=mode)
  mixers = {name: training.mixer_from_config(c, name)
            for name in ("erm", "mixup", "cutmix", "policy", "manifold_mixup")}
  assert mixers["erm"] is None
  assert mixers["manifold_mixup"] == mx.Mixup(alpha=2.0, mode=mode)

  @jax.jit
  def draws(key):
    plan = lambda mixer, layers=None: training.draw_plan(key, B, SIZE, mixer, layers)
    return {
        "mixup": (plan(mixers["mixup"]).params, mx.sample_mixup(key, B, alpha=1.0, mode=mode)),
        "cutmix prob 1": (plan(training.method_mixer("cutmix", mode=mode)).params,
                          mx.sample_cutmix(key, B, SIZE, alpha=1.0, mode=mode)),
        "cutmix": (plan(mixers["cutmix"]).params,  # The recipe's prob = 0.5: the policy's draw.
                   mx.sample_mix(key, B, SIZE, mx.MixConfig(
                       mixup_alpha=0.0, cutmix_alpha=1.0, prob=0.5, mode=mode))),
        "mixup prob 0.3": (plan(mx.Mixup(prob=0.3, mode=mode)).params,
                           mx.sample_mix(key, B, SIZE, mx.MixConfig(
                               mixup_alpha=1.0, cutmix_alpha=0.0, prob=0.3, mode=mode))),
        "policy": (plan(mixers["policy"]).params,
                   mx.sample_mix(key, B, SIZE, mx.MixConfig(
                       mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, mode=mode))),
        "manifold": (plan(mixers["manifold_mixup"], LAYERS),
                     mx.sample_plan(key, B, LAYERS, alpha=2.0, mode=mode)),
    }

  for seed in range(2):
    for name, (got, want) in draws(jax.random.key(seed)).items():
      chex.assert_trees_all_equal(got, want, custom_message=f"{name} {mode}")
  assert training.draw_plan(jax.random.key(0), B, SIZE, None) is None


def test_manifold_mixup_takes_prob_and_leaves_unmixed_batches_unchanged():
  """--config.prob reaches Manifold Mixup's Mixup: the layer is sample_plan's, the mix
  Mixup(prob=0.5)'s; a batch not mixed passes every layer unchanged."""
  mixer = training.mixer_from_config(_config(prob=0.5), "manifold_mixup")
  assert mixer == mx.Mixup(alpha=2.0, prob=0.5)
  hidden = jnp.arange(B * 3, dtype=jnp.float32).reshape(B, 3)

  @jax.jit
  def draw(key):
    plan = training.draw_plan(key, B, SIZE, mixer, LAYERS)
    return (plan, mx.sample_plan(key, B, LAYERS, alpha=2.0).layer,
            mixer.sample(jax.random.split(key)[1], B), [plan.mix_at(i, hidden) for i in LAYERS])

  mixed = []
  for seed in range(8):
    plan, layer, params, outs = draw(jax.random.key(seed))
    assert plan.layer == layer and plan.layers == LAYERS
    chex.assert_trees_all_equal(plan.params, params)
    mixed.append(bool(np.any(np.asarray(plan.params.label_weight) < 1)))
    if not mixed[-1]:
      for out in outs:
        np.testing.assert_array_equal(out, hidden)
  assert any(mixed) and not all(mixed), mixed


def test_config_sections_and_shared_fields_reach_the_methods():
  c = _config(alpha=0.4, mix_mode="elem")
  c.mixers.mixup.n = c.mixers.manifold_mixup.n = 3
  c.mixers.resizemix.scope = (0.2, 0.5)
  assert training.mixer_from_config(c, "mixup") == mx.Mixup(alpha=0.4, n=3, mode="elem")
  assert training.mixer_from_config(c, "cutmix") == mx.CutMix(alpha=0.4, prob=0.5, mode="elem")
  manifold = training.mixer_from_config(c, "manifold_mixup")
  assert manifold == mx.Mixup(alpha=0.4, n=3, mode="elem")
  plan = jax.eval_shape(lambda k: training.draw_plan(k, B, SIZE, manifold, (0, 1)),
                        jax.random.key(0))
  assert plan.params.more_perms.shape == (B, 1)
  c.alpha = None  # ResizeMix takes no alpha (below); its section and mode still reach it.
  assert training.mixer_from_config(c, "resizemix") == mx.ResizeMix(scope=(0.2, 0.5),
                                                                    mode="elem")


@pytest.mark.parametrize("fields, method, match", [
    # An override a method cannot take names the field and the method.
    ({"alpha": 0.5}, "resizemix",
     r"config.alpha=0.5 sets 'alpha' .* but resizemix takes no 'alpha' \(it takes"),
    ({"alpha": 0.5}, "smoothmix", "but smoothmix takes no 'alpha'"),
    ({"alpha": 0.5}, "policy", r"policy takes no 'alpha' \(it takes \['mode', .*'mixup_alpha'"),
    ({"alpha": 0.5, "methods": ("erm",)}, "erm",
     r"config.alpha=0.5 set, but no method in config.methods \('erm',\) mixes"),
    ({"prob": 0.5, "methods": ("erm",)}, "erm", "config.prob=0.5 set"),
    ({}, "mixdown", "method must be one of"),
])
def test_a_field_a_method_cannot_take_is_an_error(fields, method, match):
  with pytest.raises(ValueError, match=match):
    training.mixer_from_config(_config(**fields), method)


def test_bad_sections_and_mixers_are_errors():
  c = _config()
  with c.unlocked():
    c.mixers.mixup.scope = (0.1, 0.2)
  with pytest.raises(ValueError, match=r"method 'mixup' does not take \['scope'\]"):
    training.mixer_from_config(c, "mixup")
  with c.unlocked():
    c.mixers.mixdown = {"alpha": 1.0}
  with pytest.raises(ValueError, match="config.mixers.mixdown: not a mixing method"):
    training.mixer_from_config(c, "cutmix")
  with pytest.raises(ValueError, match="erm trains without a mixer"):
    training.method_mixer("erm", alpha=1.0)
  # ERM in a comparison with a mixing method: the shared fields are the mixers'.
  assert training.mixer_from_config(_config(alpha=0.5), "erm") is None
  model = get_model("small_cnn", 10)
  augment = training.Augment()
  step = lambda mixer, **kw: training.make_train_step(model, mixer, 10, augment, **kw)
  with pytest.raises(ValueError, match="CutMix mixes in input pixels .* cannot mix hidden"):
    step(mx.CutMix(), manifold=True)
  with pytest.raises(ValueError, match="takes a mixjax.Mixer .* got 'mixup'"):
    step("mixup")
  with pytest.raises(ValueError, match="num_classes=5, the data 10 classes"):
    step(mx.Mixup(num_classes=5))
  with pytest.raises(ValueError, match="label_smoothing=0.1 and the trainer 0.2"):
    step(mx.Mixup(label_smoothing=0.1), label_smoothing=0.2)
  with pytest.raises(ValueError, match="cannot mix hidden"):
    training.draw_plan(jax.random.key(0), B, SIZE, mx.FMix(), LAYERS)


def test_config_sections_declare_every_field_of_every_mixing_method():
  sections = training.config_sections()
  assert set(sections) == set(training.method_names()) - {"erm"}
  for name in sections:
    assert sorted(sections[name]) == sorted(training.method_fields(name))
    assert "num_classes" not in sections[name] and "label_smoothing" not in sections[name]
  assert sorted(sections.manifold_mixup) == sorted(training.method_fields("mixup"))
  sections.resizemix.tau_alpha = 1  # Typed placeholders: int -> float, as the CLI parses.
  assert sections.resizemix.tau_alpha == 1.0 and isinstance(sections.resizemix.tau_alpha, float)
  with pytest.raises(TypeError):
    sections.cutmix.alpha = "one"


def test_a_registered_mixer_is_a_trainer_method_and_trains(tmp_path):
  @dataclasses.dataclass(frozen=True, kw_only=True)
  class Swap(mx.Mixer):
    """Replaces each image by its partner's, labels likewise (w = 0)."""
    spatial = True

    def draw(self, key, batch_size, image_shape):
      height, width = mx.spatial_size(image_shape)
      mask = jnp.ones((batch_size, height, width), bool)
      return mx.mask_params(mx.sample_partners(key, batch_size, self.pairing), mask)

  mx.register_mixer("swap_test", Swap)
  try:
    assert "swap_test" in training.method_names()
    c = digits.get_config()  # Made now: it has a section for the new mixer.
    c.mixers.swap_test.mode = "elem"
    assert training.mixer_from_config(c, "swap_test") == Swap(mode="elem")
    c.alpha = 0.3
    with pytest.raises(ValueError, match="swap_test takes no 'alpha'"):
      training.mixer_from_config(c, "swap_test")
    c.alpha = None
    plan = jax.jit(lambda k: training.draw_plan(k, B, SIZE, Swap()))(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(plan.params.label_weight), 0.0)
    c.tensorboard, c.num_epochs, c.log_every_epochs = False, 1, 100
    result = training.train_and_evaluate(c, str(tmp_path / "swap"), "swap_test")
    assert np.isfinite(result["history"][-1]["train_loss"])
  finally:
    _MIXERS.pop("swap_test")
