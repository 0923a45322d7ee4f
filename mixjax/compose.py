"""Composition: pick one of several mixers, per batch or per example, in one program.

``Choice(mixers=(m_1, …, m_k), probs=(p_1, …, p_k))`` draws the partners once
for the batch, then every mixer's :class:`~mixjax.MixParams` with those partners
(each from its own key), brings them to one structure
(:func:`~mixjax.common_structure`: a field one lacks gets its neutral value) and
selects, per example or for the whole batch, the mix of mixer ``c`` with
``P(c = j) = p_j``. So one compiled program serves every outcome, the partners
of the mixed examples come from one permutation of the batch whatever each
chose (an example left unmixed, by :class:`~mixjax.Identity` or ``prob``, is its
own partner), and the mixed pixels and labels of each example are exactly those
its chosen mixer's draw gives (for finite pixels: a neutral field adds ``0·x``).

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
from mixjax.sampling import sample_partner_sets


@dataclasses.dataclass(frozen=True, kw_only=True)
class Choice(Mixer):
  """Mixes with one of ``mixers``, chosen with probabilities ``probs``.

  ``mode`` says whether one mixer is chosen for the batch (``"batch"``) or one
  per example (``"elem"``). ``prob`` then keeps the chosen mix with that
  probability (the identity elsewhere), as for any mixer. What the choice sets
  for its mixers, so that each example's mix is what a user expects:

  * ``mode="elem"``: every mixer draws per example too (its ``mode`` becomes
    ``"elem"``), so each example that chose Mixup has its own ``λ``, each that
    chose CutMix its own box. With ``mode="batch"`` the one chosen mixer draws
    in its own ``mode``.
  * ``pairing``: the partners are drawn once, with the choice's ``pairing``
    (:func:`~mixjax.sample_partner_sets`, as many per example as the mixer that
    needs the most, n-way Mixup ``n − 1``), and every mixer mixes with them
    (:meth:`~mixjax.Mixer.sample` with ``partners=``): the partners of the batch
    are one permutation, whichever mixer each example chose. A mixer left at the
    default ``"permute"`` takes the choice's pairing; one with another pairing
    that differs from the choice's is refused (``ValueError`` naming both).
  * ``num_classes`` and ``label_smoothing`` apply in :meth:`__call__`. A value
    set on the inner mixers is taken when the choice has none (``None``, resp.
    0); different values (between the choice and a mixer, or between mixers) are
    refused, naming both.

  The mixers are stored as they draw (``choice.mixers`` shows the modes and
  pairing set here); an inner mixer's ``prob`` applies to its own draw.

  Attributes:
    mixers: the mixers to choose from (at least one).
    probs: their probabilities (non-negative, summing to one); ``None``: uniform.
  """
  mixers: tuple[Mixer, ...] = ()
  probs: tuple[float, ...] | None = None

  @property
  def spatial(self) -> bool:
    return any(m.spatial for m in self.mixers)

  @property
  def segments(self) -> bool:
    return all(m.segments or not m.spatial for m in self.mixers)

  @property
  def num_partners(self) -> int:
    return max(m.num_partners for m in self.mixers)

  def validate(self):
    mixers = tuple(self.mixers)
    if not mixers or not all(isinstance(m, Mixer) for m in mixers):
      raise ValueError(f"Choice needs a non-empty tuple of Mixers, got {self.mixers!r}.")
    mixers = tuple(self._adopt(j, m) for j, m in enumerate(mixers))
    object.__setattr__(self, "mixers", mixers)
    for name, unset in (("num_classes", None), ("label_smoothing", 0.0)):
      object.__setattr__(self, name, self._shared(name, unset))
    if self.probs is None:
      return
    probs = tuple(float(p) for p in self.probs)
    if len(probs) != len(mixers):
      raise ValueError(
          f"Choice needs one probability per mixer: {len(mixers)} mixers, got "
          f"{len(probs)} probs {probs!r}.")
    # Probabilities from a config: their sum is checked to float32 rounding (NumPy float32
    # probabilities sum to one only to that; choose() compares in float32 anyway).
    if any(p < 0 for p in probs) or abs(sum(probs) - 1.0) > 1e-6:
      raise ValueError(f"Choice probs must be >= 0 and sum to 1, got {probs!r}.")
    object.__setattr__(self, "probs", probs)

  def _adopt(self, j: int, mixer: Mixer) -> Mixer:
    """``mixer`` drawing as this choice needs: its mode (elem) and the shared pairing."""
    changes = {}
    if mixer.pairing != self.pairing:
      if mixer.pairing != "permute":
        raise ValueError(
            f"Choice draws one set of partners for all its mixers, with its pairing="
            f"{self.pairing!r}, but mixers[{j}] ({type(mixer).__name__}) has pairing="
            f"{mixer.pairing!r}: set pairing={mixer.pairing!r} on the Choice.")
      changes["pairing"] = self.pairing
    if self.mode == "elem" and mixer.mode != "elem":
      changes["mode"] = "elem"
    return dataclasses.replace(mixer, **changes) if changes else mixer

  def _shared(self, name: str, unset):
    """The choice's ``name``, or the one its mixers set; ``ValueError`` on a conflict."""
    owners = [("the Choice", getattr(self, name))] if getattr(self, name) != unset else []
    owners += [(f"mixers[{j}] ({type(m).__name__})", getattr(m, name))
               for j, m in enumerate(self.mixers) if getattr(m, name) != unset]
    for owner, value in owners[1:]:
      if value != owners[0][1]:
        raise ValueError(
            f"Choice applies one {name} to every example, but {owners[0][0]} has "
            f"{name}={owners[0][1]!r} and {owner} has {name}={value!r}.")
    return owners[0][1] if owners else unset

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
    """The keys: ``(key_choice, key_partners, key_1, …, key_k)`` from ``key``;
    partners :func:`~mixjax.sample_partner_sets` ``(key_partners, B,``
    :attr:`num_partners` ``, pairing)``, mixer ``j`` drawn from ``key_j``."""
    key_partners = jax.random.split(key, len(self.mixers) + 2)[1]
    partners = sample_partner_sets(key_partners, batch_size, self.num_partners, self.pairing)
    return self.draw_with_partners(key, batch_size, image_shape, partners, images=images)

  def draw_with_partners(self, key, batch_size, image_shape, partners, images=None):
    key_choice, _, *keys = jax.random.split(key, len(self.mixers) + 2)
    drawn = [m.sample(k, batch_size, image_shape, images=images, partners=partners)
             for m, k in zip(self.mixers, keys, strict=True)]
    return select_params(self.choose(key_choice, batch_size), common_structure(*drawn))
