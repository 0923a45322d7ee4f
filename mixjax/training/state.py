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
    warmup_lr: float = 0.0,
    min_lr: float = 0.0,
    step_epochs: int | None = None,
) -> optax.Schedule:
  """The learning rate per step.

  ``"step"``: ``lr·γ^k`` after the ``k``-th milestone epoch (the papers' recipes);
  ``"step_every"``: ``lr·γ^⌊e / step_epochs⌋`` in epoch ``e`` (PyTorch's ``StepLR``);
  ``"cosine"``: cosine decay to 0; ``"constant"``. These with an optional linear
  warm-up from 0, per step.

  ``"deit_cosine"``: timm's ``CosineLRScheduler`` (``timm/scheduler/cosine_lr.py``),
  ``c(t) = warmup_lr + t·(lr − warmup_lr)/W`` for ``t < W = warmup_epochs``, then
  ``min_lr + ½·(lr − min_lr)·(1 + cos(π·t/E))`` over the run's ``E`` epochs, stepped as
  DeiT's ``main.py`` steps it: ``lr_scheduler.step(epoch)`` *after* epoch ``epoch``
  (``main.py:420-432``; the scheduler starts at ``warmup_lr``), so epoch 0 trains at
  ``c(0)`` and epoch ``e ≥ 1`` at ``c(e − 1)``, constant within the epoch.
  """
  if schedule != "deit_cosine" and (warmup_lr or min_lr):
    raise ValueError(f"warmup_lr and min_lr apply to schedule 'deit_cosine'; got "
                     f"warmup_lr={warmup_lr}, min_lr={min_lr} with {schedule!r}.")
  if (schedule == "step_every") != (step_epochs is not None):
    raise ValueError(f"step_epochs is the period of schedule 'step_every' (and only its); "
                     f"got step_epochs={step_epochs!r} with {schedule!r}.")
  if schedule == "deit_cosine":
    return _deit_cosine(base_lr, total_steps, steps_per_epoch, warmup_epochs, warmup_lr,
                        min_lr)
  if schedule == "step_every":
    if not isinstance(step_epochs, int) or step_epochs < 1:
      raise ValueError(f"step_epochs must be an int >= 1, got {step_epochs!r}.")
    epochs = total_steps // max(steps_per_epoch, 1)
    milestones = tuple(range(step_epochs, epochs + 1, step_epochs))
    schedule = "step"
  warmup = int(round(warmup_epochs * steps_per_epoch))
  if schedule == "cosine":
    main = optax.cosine_decay_schedule(base_lr, max(total_steps - warmup, 1))
  elif schedule == "step":
    boundaries = {int(m * steps_per_epoch) - warmup: gamma for m in milestones}
    main = optax.piecewise_constant_schedule(base_lr, boundaries)
  elif schedule == "constant":
    main = optax.constant_schedule(base_lr)
  else:
    raise ValueError(f"schedule must be 'step', 'step_every', 'cosine', 'constant' or "
                     f"'deit_cosine', got {schedule!r}.")
  if warmup <= 0:
    return main
  return optax.join_schedules(
      [optax.linear_schedule(0.0, base_lr, warmup), main], [warmup])


def _deit_cosine(base_lr: float, total_steps: int, steps_per_epoch: int,
                 warmup_epochs: float, warmup_lr: float, min_lr: float) -> optax.Schedule:
  """:func:`make_schedule`'s ``"deit_cosine"``."""
  epochs = max(total_steps // max(steps_per_epoch, 1), 1)
  warmup = float(warmup_epochs)

  def schedule(count):
    # The rate set after the previous epoch (DeiT steps the scheduler after each epoch).
    epoch = jnp.maximum(jnp.asarray(count // steps_per_epoch - 1, jnp.float32), 0.0)
    rising = warmup_lr + epoch * (base_lr - warmup_lr) / max(warmup, 1.0)
    cosine = min_lr + 0.5 * (base_lr - min_lr) * (1.0 + jnp.cos(jnp.pi * epoch / epochs))
    return jnp.where(epoch < warmup, rising, cosine)

  return schedule


def create_train_state(
    model: nn.Module,
    key: chex.PRNGKey,
    image_shape: tuple[int, ...],
    tx: optax.GradientTransformation,
    ema: bool = False,
) -> TrainState:
  """Initialises the model for a batch of one image of ``image_shape``; wraps it with ``tx``.

  ``ema``: also keep an exponential moving average, starting at the initial values.
  """
  # lazy_init: the initialisers alone, without the forward pass (the same values as
  # model.init, and ~6x less to compile for a ResNet-50).
  batch = jax.ShapeDtypeStruct((1,) + tuple(image_shape), jnp.float32)
  variables = jax.jit(lambda k: model.lazy_init(k, batch, train=False))(key)
  params, batch_stats = variables["params"], variables.get("batch_stats", {})
  # Copies: a train step that donates its state must not see one buffer twice.
  average = (jax.tree.map(jnp.copy, {"params": params, "batch_stats": batch_stats})
             if ema else None)
  return TrainState.create(apply_fn=model.apply, params=params, batch_stats=batch_stats,
                           tx=tx, ema=average)
