"""Trainer methods come from the registry: the preset methods draw what they always drew,
any registered mixer trains by name, config.mix_kwargs reach the methods that take them."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixjax as mx
from configs import digits
from mixjax import training
from mixjax.registry import _MIXERS

B, SIZE = 16, (8, 8)


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_preset_methods_draw_what_they_always_drew(mode):
  for seed in range(2):
    key = jax.random.key(seed)
    draw = lambda name, key=key, **kw: training.draw_plan(
        key, B, SIZE, training.Method.from_preset(name, mode=mode, **kw), (0, 1, 2))
    chex.assert_trees_all_equal(draw("mixup").params,
                                mx.sample_mixup(key, B, alpha=1.0, mode=mode))
    chex.assert_trees_all_equal(draw("cutmix", prob=1.0).params,
                                mx.sample_cutmix(key, B, SIZE, alpha=1.0, mode=mode))
    chex.assert_trees_all_equal(
        draw("cutmix").params,  # The preset's prob = 0.5: the policy's draw.
        mx.sample_mix(key, B, SIZE, mx.MixConfig(mixup_alpha=0.0, cutmix_alpha=1.0,
                                                 prob=0.5, mode=mode)))
    chex.assert_trees_all_equal(
        draw("mixup", prob=0.3).params,
        mx.sample_mix(key, B, SIZE, mx.MixConfig(mixup_alpha=1.0, cutmix_alpha=0.0,
                                                 prob=0.3, mode=mode)))
    chex.assert_trees_all_equal(
        draw("policy").params,
        mx.sample_mix(key, B, SIZE, mx.MixConfig(mixup_alpha=0.8, cutmix_alpha=1.0,
                                                 switch_prob=0.5, mode=mode)))
    chex.assert_trees_all_equal(draw("manifold_mixup"),
                                mx.sample_plan(key, B, (0, 1, 2), alpha=2.0, mode=mode))
    assert draw("erm") is None


def test_config_fields_and_mix_kwargs_reach_the_methods_that_take_them():
  c = digits.get_config()
  c.alpha, c.mix_mode = 0.4, "elem"
  c.mix_kwargs.n, c.mix_kwargs.scope = 3, (0.2, 0.5)
  mixup = training.method_from_config(c, "mixup")
  assert mixup.mixer() == mx.Mixup(alpha=0.4, n=3, mode="elem")
  resize = training.method_from_config(c, "resizemix")  # Takes no alpha and no n.
  assert resize.mixer() == mx.ResizeMix(scope=(0.2, 0.5), mode="elem")
  manifold = training.method_from_config(c, "manifold_mixup")
  assert dict(manifold.hparams) == {"n": 3} and manifold.alpha == 0.4
  plan = jax.eval_shape(lambda k: training.draw_plan(k, B, SIZE, manifold, (0, 1)),
                        jax.random.key(0))
  assert plan.params.more_perms.shape == (B, 1)
  assert training.method_from_config(c, "cutmix").mixer() == mx.CutMix(
      alpha=0.4, prob=0.5, mode="elem")
  with pytest.raises(ValueError, match="method must be one of"):
    training.Method.from_preset("mixdown")
  with pytest.raises(ValueError, match=r"does not take \['scope'\]"):
    training.Method.from_preset("mixup", scope=(0.1, 0.2)).validate()


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
    assert "swap_test" in training.METHODS
    method = training.Method.from_preset("swap_test", alpha=0.3)  # Swap takes no alpha.
    assert method.mixer() == Swap()
    plan = jax.jit(lambda k: training.draw_plan(k, B, SIZE, method, (0,)))(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(plan.params.label_weight), 0.0)
    c = digits.get_config()
    c.tensorboard, c.num_epochs, c.log_every_epochs = False, 1, 100
    result = training.train_and_evaluate(c, str(tmp_path / "swap"), "swap_test")
    assert np.isfinite(result["history"][-1]["train_loss"])
  finally:
    _MIXERS.pop("swap_test")


def test_resizemix_trains_on_digits(tmp_path):
  c = digits.get_config()
  c.tensorboard, c.num_epochs, c.log_every_epochs = False, 1, 100
  c.methods = ("resizemix",)
  rows = training.compare(c, str(tmp_path))
  assert rows[0]["method"] == "resizemix" and np.isfinite(rows[0]["train_loss"])
