"""The per-device train and eval steps.

They are written for one device's shard of the batch and reduce across devices
with collectives over ``axis_name``; :mod:`mixjax.training.parallel` maps them
over devices with ``jax.shard_map`` or ``jax.pmap``.

Every device gets the same step key, and nothing it draws depends on how the
global batch is split over devices (or processes):

* crops and flips are drawn for the whole global batch from the step key, and
  each device takes its examples' rows (by global example index);
* the mix is drawn for the whole global batch from the step key on every device
  (one ``λ`` / box / layer per global batch in ``mode="batch"``, one per global
  example in ``mode="elem"``), partners come from the whole global batch, and each
  device applies its rows of it (:class:`~mixjax.MixPlan` with ``axis_name``, see
  :func:`mixjax.mix_images`): the ``pairing`` decides what moves between devices
  (``"permute"`` gathers the batch on every device, ``"roll"`` one row, ``"flip"``
  one shard); mixers that draw from the pixels (SaliencyMix) see the gathered
  global batch;
* dropout masks are drawn per device (the one draw that depends on the device
  count).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from mixjax.data.augment import crop_flip, normalize, sample_crop_flip
from mixjax.labels import soft_labels
from mixjax.losses import get_loss
from mixjax.manifold import MixPlan
from mixjax.mixer import Mixer
from mixjax.random_erasing import random_erasing
from mixjax.training.methods import check_mixer, draw_plan
from mixjax.training.metrics import eval_sums
from mixjax.training.state import TrainState, update_ema


@dataclasses.dataclass(frozen=True)
class Augment:
  """On-device augmentation: pad-and-crop, horizontal flip, normalisation, then random
  erasing with probability ``random_erasing`` per image (timm's, ``"pixel"`` mode; 0: off)."""
  padding: int = 4
  flip: bool = True
  mean: tuple[float, ...] = (0.0,)
  std: tuple[float, ...] = (255.0,)
  random_erasing: float = 0.0


def device_key(key: chex.PRNGKey, axis_name: str) -> chex.PRNGKey:
  """``key`` folded with this device's index on the mapped axis ``axis_name``."""
  return jax.random.fold_in(key, jax.lax.axis_index(axis_name))


def shard_rows(values: chex.Array, local_batch: int, axis_name: str) -> chex.Array:
  """This device's rows of ``values`` drawn for the whole global batch.

  Device ``d`` of the mapped axis holds global examples ``d·b … (d + 1)·b − 1``
  (``b = local_batch``), the split ``shard_map`` and ``pmap`` make of a batch.
  """
  start = jax.lax.axis_index(axis_name) * local_batch
  return jax.lax.dynamic_slice_in_dim(values, start, local_batch)


def draw_shard_plan(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int],
    mixer: Mixer | None,
    layers: tuple[int, ...] | None,
    axis_name: str,
    images: chex.Array | None = None,
) -> MixPlan | None:
  """The plan of the global batch, applied by this device to its shard.

  Every device draws the same plan for the global batch (``batch_size`` rows on
  each of the devices of ``axis_name``) from the same ``key``; the plan carries
  ``axis_name``, so the model and :meth:`~mixjax.MixPlan.mix_labels` mix this
  device's rows with partners from the whole global batch: the step mixes as
  one device mixing the global batch does. ``mixer`` and ``layers`` are
  :func:`~mixjax.training.draw_plan`'s (``None``: ERM / the input). ``images``,
  this shard's batch, is gathered over the devices for mixers that draw from the
  pixels.
  """
  global_batch = batch_size * jax.lax.axis_size(axis_name)
  if images is not None and mixer is not None and mixer.uses_images:
    images = jax.lax.all_gather(images, axis_name, axis=0, tiled=True)
  else:
    images = None
  plan = draw_plan(key, global_batch, image_size, mixer, layers, images=images)
  return None if plan is None else plan.replace(axis_name=axis_name)


def _prepare(images: chex.Array, augment: Augment, key: chex.PRNGKey | None,
             axis_name: str | None = None) -> chex.Array:
  """Crops, flips (drawn for the global batch when ``axis_name``), normalises, erases."""
  if key is not None and (augment.padding > 0 or augment.flip):
    local = images.shape[0]
    total = local * (jax.lax.axis_size(axis_name) if axis_name else 1)
    offsets, flips = sample_crop_flip(key, total, augment.padding, augment.flip)
    if axis_name:
      offsets, flips = (shard_rows(v, local, axis_name) for v in (offsets, flips))
    images = crop_flip(images, offsets, flips, augment.padding)
  images = normalize(images, augment.mean, augment.std)
  if key is not None and augment.random_erasing > 0:
    # Drawn for the global batch like the crops; each device erases its rows.
    images = random_erasing(jax.random.fold_in(key, 1), images, augment.random_erasing,
                            "pixel", axis_name=axis_name)
  return images


def make_train_step(
    model: nn.Module,
    mixer: Mixer | None,
    num_classes: int,
    augment: Augment,
    label_smoothing: float = 0.0,
    axis_name: str = "data",
    dtype=jnp.float32,
    loss: str = "ce",
    *,
    manifold: bool = False,
    ema_decay: float | None = None,
    accumulate: int = 1,
) -> Callable[[TrainState, dict, chex.PRNGKey], tuple[TrainState, dict]]:
  """Builds ``train_step(state, batch, key) -> (state, metrics)`` for one device.

  augment(key_a) → plan = draw(key_m) → logits = model(x, plan) →
  loss = mean ``loss``(logits, plan's soft labels) (a name in
  :data:`mixjax.losses.LOSSES`: ``"ce"`` or ``"softmax_bce"``) → gradients and BatchNorm
  statistics averaged over ``axis_name`` → optax update. The batch is a dict of
  uint8 ``image`` ``[b, H, W, C]`` and int ``label`` ``[b]``, this device's rows
  of the global batch; partners come from the whole global batch. ``key`` is the
  step's key, the same on every device (see the module docstring for what is drawn
  once and what per device). A model built
  with ``axis_name`` set to this ``axis_name`` normalises with the statistics
  of the global batch.

  ``mixer`` is any :class:`~mixjax.Mixer` (its fields are the method's
  hyper-parameters; :func:`~mixjax.training.mixer_from_config` builds it from a
  config), or ``None`` for ERM. It mixes the input, or with ``manifold=True`` the
  hidden states at a layer drawn each step from ``model.mix_layers`` (Manifold
  Mixup: a :class:`~mixjax.Mixup`).

  ``ema_decay``: the state keeps an exponential moving average of its parameters and
  BatchNorm statistics (:func:`~mixjax.training.state.update_ema`), updated after each
  optimiser update: every ``accumulate``-th step when the optimiser accumulates
  gradients over ``accumulate`` micro-batches (``optax.MultiSteps``).

  Metrics (averaged over devices): ``loss``, ``grad_norm`` and ``accuracy`` (of
  the mixed batch against its unmixed labels: a rough guide only).

  Raises:
    ValueError: a bad mixer (see :func:`~mixjax.training.methods.check_mixer`) or
      an unknown ``loss``.
  """
  label_smoothing = check_mixer(mixer, manifold=manifold, num_classes=num_classes,
                                label_smoothing=label_smoothing)
  if ema_decay is not None and not 0.0 < ema_decay < 1.0:
    raise ValueError(f"ema_decay must be in (0, 1) or None, got {ema_decay!r}.")
  loss_of = get_loss(loss)
  layers = tuple(getattr(model, "mix_layers", (0,))) if manifold else None

  def train_step(state: TrainState, batch: dict, key: chex.PRNGKey):
    key_aug, key_mix, key_dropout = jax.random.split(key, 3)
    images = _prepare(batch["image"], augment, key_aug, axis_name).astype(dtype)
    labels = batch["label"]
    dropout_key = device_key(key_dropout, axis_name)
    plan = draw_shard_plan(key_mix, images.shape[0], images.shape[1:3], mixer, layers,
                           axis_name, images=images)
    if plan is None:
      targets = soft_labels(labels, num_classes, label_smoothing)
    else:
      targets = plan.mix_labels(labels, num_classes, label_smoothing)

    def loss_fn(params):
      logits, updates = state.apply_fn(
          {"params": params, "batch_stats": state.batch_stats}, images, plan=plan,
          train=True, mutable=["batch_stats"], rngs={"dropout": dropout_key})
      loss = loss_of(logits, targets).mean()
      return loss, (logits, updates.get("batch_stats", {}))

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    grads = jax.lax.pmean(grads, axis_name)
    batch_stats = jax.lax.pmean(batch_stats, axis_name)
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    if ema_decay is not None:
      current = {"params": state.params, "batch_stats": state.batch_stats}
      state = state.replace(ema=update_ema(state.ema, current, ema_decay,
                                           state.step % accumulate == 0))
    metrics = {
        "loss": jax.lax.pmean(loss, axis_name),
        "accuracy": jax.lax.pmean(
            jnp.mean((logits.argmax(-1) == labels).astype(jnp.float32)), axis_name),
        "grad_norm": optax.tree.norm(grads),
    }
    return state, metrics

  return train_step


def make_eval_step(
    model: nn.Module,
    augment: Augment,
    num_bins: int = 15,
    axis_name: str = "data",
    dtype=jnp.float32,
) -> Callable[[TrainState, dict], dict]:
  """Builds ``eval_step(state, batch) -> sums`` (summed over devices).

  The batch holds ``image``, ``label`` and a bool ``mask`` of real examples;
  see :func:`~mixjax.training.metrics.eval_sums`.
  """
  del model

  def eval_step(state: TrainState, batch: dict) -> dict:
    images = _prepare(batch["image"], augment, None).astype(dtype)
    logits = state.apply_fn(
        {"params": state.params, "batch_stats": state.batch_stats}, images,
        plan=None, train=False)
    sums = eval_sums(logits, batch["label"], batch["mask"], num_bins)
    return jax.lax.psum(sums, axis_name)

  return eval_step
