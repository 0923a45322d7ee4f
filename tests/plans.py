"""Manifold Mixup plans for tests."""

import jax

import mixjax


def plans_for_every_layer(layers, batch):
  """Plans drawn by sample_plan with different keys until each layer has one."""
  plans = {}
  for seed in range(100):
    plan = mixjax.sample_plan(jax.random.key(seed), batch, layers, alpha=2.0)
    plans.setdefault(int(plan.layer), plan)
    if len(plans) == len(layers):
      return [plans[i] for i in layers]
  raise AssertionError("sample_plan never drew some layer")
