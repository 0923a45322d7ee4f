"""Mixup (Zhang et al., 2018): convex combinations of examples and labels.

  ``λ ~ Beta(α, α)``, ``x̃ = λ·x + (1 − λ)·x[perm]``, ``ỹ = λ·y + (1 − λ)·y[perm]``.

n-way Mixup (``n = k``, big_vision's ``mixup(..., n=k)``) mixes each example
with ``k − 1`` partners: ``w ~ Dirichlet(α·1_k)``, ``x̃_i = Σ_j w_j·x_{p_j(i)}``,
``ỹ_i = Σ_j w_j·y_{p_j(i)}`` with ``p_0(i) = i``.
"""

from __future__ import annotations

import dataclasses

import chex
import jax

from mixjax import _validation
from mixjax.mixer import Mixer, with_partners
from mixjax.params import MixParams, apply_mix
from mixjax.sampling import (
    sample_dirichlet,
    sample_lambda,
    sample_partner_sets,
    sample_partners,
)


def sample_mixup(
    key: chex.PRNGKey,
    batch_size: int,
    *,
    alpha: float = 1.0,
    mode: str = "batch",
    pairing: str = "permute",
    n: int = 2,
) -> MixParams:
  """Draws a Mixup: ``λ ~ Beta(α, α)`` (one, or one per example) and partners.

  With ``n ≥ 3`` (n-way Mixup) the weights are ``w ~ Dirichlet(α·1_n)``
  (:func:`~mixjax.sampling.sample_dirichlet`) and the ``n − 1`` partners come
  from :func:`~mixjax.sampling.sample_partner_sets`: ``lam = label_weight = w_0``,
  ``perm`` the first partner, ``more_perms``/``more_weights`` the others and
  ``w_2, …, w_{n−1}``; the first partner's weight ``w_1`` is represented as
  ``1 − w_0 − Σ_{j≥2} w_j``, within rounding of the drawn one. ``n = 2`` draws
  exactly what it always drew.

  Args:
    key: a PRNG key.
    batch_size: ``B``.
    alpha: ``α > 0``; may be traced (see :func:`~mixjax.symmetric_beta`).
    mode: ``"batch"`` (one ``λ``, as in the paper) or ``"elem"`` (one per example).
    pairing: ``"permute"``, ``"flip"`` or ``"roll"`` (see :func:`sample_partners`);
      ``"flip"`` only for ``n = 2``.
    n: examples per mix, ``≥ 2``.

  Returns:
    :class:`MixParams` with ``lam == label_weight`` and no boxes.
  """
  n = _validation.static_value(n)
  if n == 2:
    key_lam, key_perm = jax.random.split(key)
    lam = sample_lambda(key_lam, batch_size, alpha, mode)
    return MixParams(perm=sample_partners(key_perm, batch_size, pairing),
                     label_weight=lam, lam=lam, pairing=pairing)
  _validation.check_pairing(pairing)
  key_lam, key_perm = jax.random.split(key)
  weights = sample_dirichlet(key_lam, batch_size, n, alpha, mode)
  partners = sample_partner_sets(key_perm, batch_size, n - 1, pairing)
  lam = weights[:, 0]
  return MixParams(perm=partners[:, 0], label_weight=lam, lam=lam,
                   more_perms=partners[:, 1:], more_weights=weights[:, 2:], pairing=pairing)


@_validation.jit_with_hyperparameters(
    ("alpha", "num_classes", "mode", "pairing", "label_smoothing", "n"), traceable=("alpha",))
def mixup(
    key: chex.PRNGKey,
    images: chex.Array,
    labels: chex.Array,
    *,
    alpha: float = 1.0,
    num_classes: int | None = None,
    mode: str = "batch",
    pairing: str = "permute",
    label_smoothing: float = 0.0,
    n: int = 2,
) -> tuple[chex.Array, chex.Array]:
  """Mixes a batch with Mixup.

  ``x̃ = λ·x + (1 − λ)·x[perm]`` and ``ỹ = λ·y + (1 − λ)·y[perm]`` with
  ``λ ~ Beta(α, α)``. Not image-specific: ``images`` may be any ``[B, ...]``
  array (features, sequences, hidden states). A batch of one is mixed with
  itself and comes back unchanged.

  Args:
    key: a PRNG key.
    images: ``[B, ...]`` float (kept) or integer (returned as float32, so uint8
      never wraps or rounds).
    labels: int class ids ``[B]`` (with ``num_classes``) or rows ``[B, K]``.
    alpha: ``α > 0``; the paper uses 0.2–0.4 on ImageNet and 1.0 on CIFAR. May be
      traced (e.g. scheduled inside a jitted step): it then draws what the same
      value known at trace time draws, and is checked only when concrete.
    num_classes: ``K``.
    mode: ``"batch"`` or ``"elem"``.
    pairing: ``"permute"`` (default), ``"flip"`` or ``"roll"``.
    label_smoothing: ``ε`` applied to the labels before mixing.
    n: examples per mix; ``n ≥ 3`` is n-way Mixup, ``Dirichlet(α·1_n)`` weights
      over the example and ``n − 1`` partners (see :func:`sample_mixup`).

  Returns:
    ``(x̃, ỹ)``: mixed images and float32 soft labels ``[B, K]``.

  The other hyper-parameters are static (NumPy numbers and lists are accepted).

  Raises:
    ValueError: at trace time for ``α ≤ 0``, unknown ``mode``/``pairing``, a
      batch mismatch, labels that do not fit ``num_classes`` or a traced value
      for a hyper-parameter other than ``alpha``.
  """
  batch = _validation.check_batch(images)
  params = sample_mixup(key, batch, alpha=alpha, mode=mode, pairing=pairing, n=n)
  return apply_mix(params, images, labels, num_classes, label_smoothing)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Mixup(Mixer):
  """Mixup as a :class:`~mixjax.Mixer` (registered as ``"mixup"``).

  :meth:`sample` draws exactly what :func:`sample_mixup` draws (``prob = 1``) or,
  for ``prob < 1`` and ``n = 2``, what :func:`~mixjax.sample_mix` draws for
  ``MixConfig(mixup_alpha=alpha, cutmix_alpha=0, prob=prob, mode=mode,
  pairing=pairing)``, timm's Mixup-only policy.

  Attributes:
    alpha: ``α > 0`` of ``Beta(α, α)`` (``Dirichlet(α·1_n)``); 1.0 on CIFAR in
      the paper, 0.2–0.4 on ImageNet. May be traced (``traceable``).
    n: examples per mix (``n ≥ 3``: n-way Mixup).
  """
  alpha: float = 1.0
  n: int = 2

  traceable = ("alpha",)

  @property
  def num_partners(self) -> int:
    return self.n - 1

  def validate(self):
    _validation.check_alpha(self.alpha)
    if not isinstance(self.n, int) or self.n < 2:
      raise ValueError(f"n (examples per mix) must be an int >= 2, got {self.n!r}.")
    if self.n > 2 and self.pairing == "flip":
      raise ValueError("pairing='flip' has one partner per example; n-way Mixup needs "
                       "'permute' or 'roll'.")

  def draw(self, key, batch_size, image_shape):
    del image_shape
    return sample_mixup(key, batch_size, alpha=self.alpha, mode=self.mode,
                        pairing=self.pairing, n=self.n)

  def sample(self, key, batch_size, image_shape=(), *, images=None, partners=None):
    if self.prob < 1.0 and self.n == 2:
      from mixjax.policy import MixConfig, sample_mix  # policy builds on this module.
      params = sample_mix(key, batch_size, None, MixConfig(
          mixup_alpha=self.alpha, cutmix_alpha=0.0, prob=self.prob, mode=self.mode,
          pairing=self.pairing))
      return with_partners(params, self._check_partners(partners, batch_size))
    return super().sample(key, batch_size, image_shape, images=images, partners=partners)
