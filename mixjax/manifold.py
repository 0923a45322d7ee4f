"""Manifold Mixup (Verma et al., 2019): mix hidden states at a random layer.

A :class:`MixPlan` holds the drawn layer ``k`` (a traced int32, so one compiled
program serves every layer), ``λ`` and the partners. A model calls
``plan.mix_at(i, h)`` at each of its eligible layers ``i`` (0 = the input); only
the call with ``i == k`` mixes, ``h̃ = λ·h + (1 − λ)·h[perm]``, the others pass
``h`` through. The loss uses ``plan.mix_labels(y)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import flax.struct
import jax
import jax.numpy as jnp

from mixjax.mixup import sample_mixup
from mixjax.params import MixParams, mix_images, mix_labels, mixed_dtype


@flax.struct.dataclass
class MixPlan:
  """Where and how a batch is mixed inside a model (a pytree of arrays).

  Attributes:
    layer: int32 scalar, the index of the layer whose output is mixed
      (0 = the input).
    params: the :class:`~mixjax.MixParams` applied there.
    layers: static: the layers ``layer`` was drawn from, so a model can check
      at trace time that it mixes at every one of them (None: unknown).
    axis_name: static: inside ``shard_map`` / ``pmap``, the mapped axis the global
      batch is split over; ``params`` are then drawn for the global batch and
      every device mixes its rows with partners from any device (see
      :func:`~mixjax.mix_images`). None (default): ``params`` are for the batch
      the model sees (also under ``jax.jit`` with a batch sharded over devices).
  """
  layer: chex.Array
  params: MixParams
  layers: tuple[int, ...] | None = flax.struct.field(pytree_node=False, default=None)
  axis_name: str | None = flax.struct.field(pytree_node=False, default=None)

  @classmethod
  def at_input(cls, params: MixParams, axis_name: str | None = None) -> MixPlan:
    """A plan that applies ``params`` (Mixup, CutMix or the policy) to the input."""
    return cls(layer=jnp.zeros((), jnp.int32), params=params, layers=(0,),
               axis_name=axis_name)

  def mix_at(self, index: int, hidden: chex.Array) -> chex.Array:
    """Mixes ``hidden`` if ``index`` is the drawn layer, else returns it.

    Args:
      index: the static index of the calling layer (0 = the input).
      hidden: ``[B, ...]`` activations of that layer.

    Returns:
      ``hidden``, mixed when ``index == layer``; dtype :func:`mixed_dtype`.
      Plans with CutMix boxes or pixel masks mix only at layer 0: they are in
      input pixels.
    """
    if (self.params.boxes is not None or self.params.mask is not None) and index != 0:
      return hidden
    out_dtype = mixed_dtype(self.params, hidden.dtype)
    return jax.lax.cond(
        self.layer == index,
        lambda h: mix_images(self.params, h, axis_name=self.axis_name),
        lambda h: h.astype(out_dtype),
        hidden)

  def mix_labels(
      self,
      labels: chex.Array,
      num_classes: int | None = None,
      label_smoothing: float = 0.0,
  ) -> chex.Array:
    """The soft labels that match the mixed hidden states, float32 ``[B, K]``."""
    return mix_labels(self.params, labels, num_classes, label_smoothing,
                      axis_name=self.axis_name)


def sample_plan(
    key: chex.PRNGKey,
    batch_size: int,
    layers: int | Sequence[int],
    *,
    alpha: float = 2.0,
    mode: str = "batch",
    pairing: str = "permute",
    n: int = 2,
    axis_name: str | None = None,
) -> MixPlan:
  """Draws a Manifold Mixup plan: a layer uniformly from ``layers``, ``λ``, partners.

  Args:
    key: a PRNG key.
    batch_size: ``B``.
    layers: the eligible layer indices, or their number ``L`` for ``0, …, L − 1``.
      The paper mixes PreActResNets at ``(0, 1, 2)``: the input and the outputs
      of the first two stages.
    alpha: ``α > 0`` of ``Beta(α, α)``; the paper uses 2.0.
    mode: ``"batch"`` (one ``λ``, as in the paper) or ``"elem"``.
    pairing: ``"permute"``, ``"flip"`` or ``"roll"``.
    n: examples per mix; ``n ≥ 3`` mixes the hidden states n-way with
      ``Dirichlet(α·1_n)`` weights (:func:`~mixjax.sample_mixup`); ``n = 2``
      draws exactly what it always drew.
    axis_name: inside ``shard_map`` / ``pmap``, the axis the global batch of
      ``batch_size`` examples is split over (see :class:`MixPlan`), or None.

  Returns:
    a :class:`MixPlan` with a traced int32 layer.
  """
  if isinstance(layers, int):
    if layers < 1:
      raise ValueError(f"layers must be >= 1 (their number), got {layers}.")
    layers = tuple(range(layers))
  layers = tuple(layers)
  if not layers or any(not isinstance(i, int) or i < 0 for i in layers):
    raise ValueError(
        f"layers must be a non-empty sequence of indices >= 0, got {layers!r}.")
  key_layer, key_mix = jax.random.split(key)
  choice = jax.random.randint(key_layer, (), 0, len(layers))
  layer = jnp.asarray(layers, jnp.int32)[choice]
  params = sample_mixup(key_mix, batch_size, alpha=alpha, mode=mode,
                        pairing=pairing, n=n)
  return MixPlan(layer=layer, params=params, layers=layers, axis_name=axis_name)
