"""Manifold Mixup plans for tests."""

import jax

import mixjax


def plans_for_every_layer(layers, batch, sample=None):
  """Plans drawn with different keys until each layer has one, in ``layers``' order.

  ``sample(key, batch, layers)``: the sampler; default ``sample_plan`` with α = 2.
  """
  if sample is None:
    sample = lambda key, batch, layers: mixjax.sample_plan(key, batch, layers, alpha=2.0)
  plans = {}
  for seed in range(100):
    plan = sample(jax.random.key(seed), batch, layers)
    plans.setdefault(int(plan.layer), plan)
    if len(plans) == len(layers):
      return [plans[i] for i in layers]
  raise AssertionError("sample_plan never drew some layer")
