"""Train state, optimiser and learning-rate schedule (optax)."""

from __future__ import annotations

from collections.abc import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  """``flax.training.train_state.TrainState`` plus BatchNorm statistics."""
  batch_stats: chex.ArrayTree


def make_schedule(
    base_lr: float,
    total_steps: int,
    steps_per_epoch: int,
    schedule: str = "step",
    warmup_epochs: float = 0.0,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> optax.Schedule:
  """The learning rate per step.

  ``"step"``: ``lr·γ^k`` after the ``k``-th milestone epoch (the papers' recipes);
  ``"cosine"``: cosine decay to 0. Both with an optional linear warm-up from 0.
  """
  warmup = int(round(warmup_epochs * steps_per_epoch))
  if schedule == "cosine":
    main = optax.cosine_decay_schedule(base_lr, max(total_steps - warmup, 1))
  elif schedule == "step":
    boundaries = {int(m * steps_per_epoch) - warmup: gamma for m in milestones}
    main = optax.piecewise_constant_schedule(base_lr, boundaries)
  elif schedule == "constant":
    main = optax.constant_schedule(base_lr)
  else:
    raise ValueError(
        f"schedule must be 'step', 'cosine' or 'constant', got {schedule!r}.")
  if warmup <= 0:
    return main
  return optax.join_schedules(
      [optax.linear_schedule(0.0, base_lr, warmup), main], [warmup])


def make_optimizer(
    learning_rate: optax.ScalarOrSchedule,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 1e-4,
) -> optax.GradientTransformation:
  """SGD with Nesterov momentum and L2 weight decay added to the gradient.

  ``g ← g + wd·θ`` before momentum, as PyTorch's ``SGD(weight_decay=wd)`` that
  the papers used (applied to every parameter, BatchNorm included).
  """
  return optax.chain(
      optax.add_decayed_weights(weight_decay),
      optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov))


def create_train_state(
    model: nn.Module,
    key: chex.PRNGKey,
    image_shape: tuple[int, ...],
    tx: optax.GradientTransformation,
) -> TrainState:
  """Initialises the model on a dummy batch of one and wraps it with ``tx``."""
  variables = jax.jit(lambda k: model.init(
      k, jnp.zeros((1,) + tuple(image_shape), jnp.float32), train=False))(key)
  return TrainState.create(
      apply_fn=model.apply, params=variables["params"],
      batch_stats=variables.get("batch_stats", {}), tx=tx)
