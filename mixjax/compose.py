"""Composition: pick one of several mixers, per batch or per example, in one program.

``Choice(mixers=(m_1, …, m_k), probs=(p_1, …, p_k))`` draws every mixer's
:class:`~mixjax.MixParams` (each from its own key), brings them to one
structure (:func:`~mixjax.common_structure`: a field one lacks gets its neutral
value) and selects, per example or for the whole batch, the mix of mixer ``c``
with ``P(c = j) = p_j``. So one compiled program serves every outcome, and the
mixed pixels and labels of each example are exactly those its chosen mixer's
draw gives (for finite pixels: a neutral field adds ``0·x``).

timm's Mixup/CutMix switch is the two-mixer case
``Choice(mixers=(Mixup(alpha=a), CutMix(alpha=c)), probs=(1 − s, s), prob=p)``;
:class:`~mixjax.MixConfig` / :func:`~mixjax.mix` keep their own draws.
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mixjax.mixer import Mixer
from mixjax.params import MixParams, common_structure, select_params


@dataclasses.dataclass(frozen=True, kw_only=True)
class Choice(Mixer):
  """Mixes with one of ``mixers``, chosen with probabilities ``probs``.

  ``mode`` says whether one mixer is chosen for the batch (``"batch"``) or one
  per example (``"elem"``); each mixer draws in its own ``mode``. ``prob`` then
  keeps the chosen mix with that probability (the identity elsewhere), as for
  any mixer. ``num_classes`` and ``label_smoothing`` of the choice apply in
  :meth:`__call__`; those of the inner mixers are unused.

  Attributes:
    mixers: the mixers to choose from (at least one).
    probs: their probabilities (non-negative, summing to one); ``None``: uniform.
  """
  mixers: tuple[Mixer, ...] = ()
  probs: tuple[float, ...] | None = None

  @property
  def spatial(self) -> bool:
    return any(m.spatial for m in self.mixers)

  def validate(self):
    mixers = tuple(self.mixers)
    if not mixers or not all(isinstance(m, Mixer) for m in mixers):
      raise ValueError(f"Choice needs a non-empty tuple of Mixers, got {self.mixers!r}.")
    object.__setattr__(self, "mixers", mixers)
    if self.probs is None:
      return
    probs = tuple(float(p) for p in self.probs)
    if len(probs) != len(mixers):
      raise ValueError(
          f"Choice needs one probability per mixer: {len(mixers)} mixers, got "
          f"{len(probs)} probs {probs!r}.")
    # Probabilities from a config: their sum is checked to float64 rounding.
    if any(p < 0 for p in probs) or abs(sum(probs) - 1.0) > 1e-9:
      raise ValueError(f"Choice probs must be >= 0 and sum to 1, got {probs!r}.")
    object.__setattr__(self, "probs", probs)

  def choose(self, key: chex.PRNGKey, batch_size: int) -> chex.Array:
    """int32 ``[B]``: the chosen mixer of each example (all equal in batch mode).

    ``c = #{j < k − 1 : u ≥ p_1 + … + p_{j+1}}`` for ``u ~ U[0, 1)``.
    """
    k = len(self.mixers)
    probs = self.probs or (1.0 / k,) * k
    edges = jnp.asarray(np.cumsum(probs)[:-1], jnp.float32)
    num = 1 if self.mode == "batch" else batch_size
    u = jax.random.uniform(key, (num,))
    which = jnp.sum(u[:, None] >= edges[None, :], axis=1, dtype=jnp.int32)
    return jnp.broadcast_to(which, (batch_size,))

  @property
  def uses_images(self) -> bool:
    return any(m.uses_images for m in self.mixers)

  def draw(self, key, batch_size, image_shape, images=None) -> MixParams:
    key_choice, *keys = jax.random.split(key, len(self.mixers) + 1)
    drawn = [m.sample(k, batch_size, image_shape, images=images)
             for m, k in zip(self.mixers, keys, strict=True)]
    return select_params(self.choose(key_choice, batch_size), common_structure(*drawn))
