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
  """``flax.training.train_state.TrainState`` plus BatchNorm statistics and an EMA.

  ``ema``: None, or ``{"params": ..., "batch_stats": ...}``, the exponential moving
  average of both (:func:`update_ema`), evaluated and checkpointed beside them.
  """
  batch_stats: chex.ArrayTree
  ema: chex.ArrayTree | None = None

  def ema_view(self) -> TrainState:
    """This state with the EMA's parameters and statistics in place of the raw ones."""
    if self.ema is None:
      raise ValueError("this train state keeps no EMA (set config.ema_decay).")
    return self.replace(params=self.ema["params"], batch_stats=self.ema["batch_stats"])


def update_ema(ema: chex.ArrayTree, params: chex.ArrayTree, decay: float,
               updated: chex.Array | bool = True) -> chex.ArrayTree:
  """``ema ← decay·ema + (1 − decay)·params`` where ``updated``, else ``ema``.

  timm's ``ModelEma`` / ``ModelEmaV2`` (``timm/utils/model_ema.py``, DeiT's
  ``--model-ema``): after every optimiser update, every parameter and buffer
  (BatchNorm statistics too), starting from a copy of the initial model. ``updated``
  is False on the micro-batches of gradient accumulation that make no update.
  """
  def step(e, p):
    new = decay * e + (1.0 - decay) * p.astype(e.dtype)
    return jnp.where(updated, new, e)
  return jax.tree.map(step, ema, params)


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


def create_train_state(
    model: nn.Module,
    key: chex.PRNGKey,
    image_shape: tuple[int, ...],
    tx: optax.GradientTransformation,
    ema: bool = False,
) -> TrainState:
  """Initialises the model on a dummy batch of one and wraps it with ``tx``.

  ``ema``: also keep an exponential moving average, starting at the initial values.
  """
  variables = jax.jit(lambda k: model.init(
      k, jnp.zeros((1,) + tuple(image_shape), jnp.float32), train=False))(key)
  params, batch_stats = variables["params"], variables.get("batch_stats", {})
  # Copies: a train step that donates its state must not see one buffer twice.
  average = (jax.tree.map(jnp.copy, {"params": params, "batch_stats": batch_stats})
             if ema else None)
  return TrainState.create(apply_fn=model.apply, params=params, batch_stats=batch_stats,
                           tx=tx, ema=average)
