"""The ``Mixer`` contract: one small, hashable config per mixing method.

A mixer holds a method's hyper-parameters and the options every method shares
(``num_classes``, ``mode``, ``pairing``, ``label_smoothing``, ``prob``) and does
two things:

* ``mixer.sample(key, batch_size, image_shape) -> MixParams`` draws a mix (pure,
  no images needed: ``image_shape`` is ``images.shape[1:]``, or ``(H, W)``);
* ``mixer(key, images, labels) -> (x̃, ỹ)`` draws and applies it in one jitted
  program (the mixer is a static argument: it is a frozen dataclass).

A new method is a module with a subclass that implements :meth:`Mixer.draw`
(returning :class:`~mixjax.MixParams`, see that class for what each field does)
plus one line in :mod:`mixjax.registry`. For example a mask method::

  @dataclasses.dataclass(frozen=True, kw_only=True)
  class FMix(Mixer):
    alpha: float = 1.0
    spatial = True

    def draw(self, key, batch_size, image_shape):
      height, width = spatial_size(image_shape)
      key_mask, key_perm = jax.random.split(key)
      masks, _ = sample_fmix_masks(key_mask, batch_size, height, width,
                                   alpha=self.alpha, mode=self.mode)
      return mask_params(sample_partners(key_perm, batch_size, self.pairing), masks,
                         pairing=self.pairing)

:func:`mask_params` (a mask) and :func:`box_params` (a box pasted in place) build
the :class:`~mixjax.MixParams` with exact label weights; a mixer that needs the
pixels to draw (SaliencyMix) sets ``uses_images = True`` and gets ``images=``.
Given partners (``sample(..., partners=)``, as :class:`~mixjax.Choice` shares one
draw among its mixers) replace the drawn ones (:meth:`Mixer.draw_with_partners`);
a method whose other draws depend on the partners overrides that method.

Hyper-parameters may be given as Python or NumPy numbers, 0-d arrays, lists or
tuples: the mixer keeps them as Python numbers and tuples, so it stays hashable.
They are static (they fix the program and are checked when the mixer is built),
except those a class lists in ``traceable`` (the Beta ``alpha``), which may be
traced values, e.g. ``Mixup(alpha=schedule(step))`` inside a jitted step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from mixjax import _validation
from mixjax.axes import from_spatial, to_spatial
from mixjax.boxes import box_area
from mixjax.params import MixParams, apply_mix, gate_params, identity_params


def spatial_size(image_shape: Sequence[int]) -> tuple[int, int]:
  """``(H, W)`` of an image shape ``(H, W)`` or ``(H, W, C)``, or of a clip ``(T, H, W, C)``.

  (The batch axis left off.) A clip's frames share one box or mask.
  """
  shape = tuple(image_shape)
  if len(shape) not in (2, 3, 4) or any(not isinstance(d, int) or d < 1 for d in shape):
    raise ValueError(
        "this mixer needs images with two spatial axes: image_shape (H, W) or (H, W, C), "
        f"or clips (T, H, W, C) (images.shape[1:]), got {shape!r}.")
  return (shape[1], shape[2]) if len(shape) == 4 else (shape[0], shape[1])


def mask_params(perm: chex.Array, mask: chex.Array, pairing: str = "permute") -> MixParams:
  """The mix that takes each example's masked pixels from its partner.

  Args:
    perm: int32 ``[B]`` partners.
    mask: ``[B, H, W]`` weight of the partner's pixel: bool (pixels copied) or
      float in ``[0, 1]`` (blended); for clips ``[B, T, H, W]``, one per frame.
    pairing: how ``perm`` was drawn (:func:`~mixjax.sample_partners`), recorded in
      :attr:`MixParams.pairing`; ``"permute"`` for any partners.

  Returns:
    :class:`~mixjax.MixParams` with ``label_weight = 1 − mean(mask)`` per example,
    the exact pixel fraction kept (exact for bool masks: a count over ``H·W``).
  """
  if mask.ndim not in (3, 4) or mask.shape[0] != perm.shape[0]:
    raise ValueError(
        f"mask must be [B, H, W] (or one per frame, [B, T, H, W]) with B = {perm.shape[0]}, "
        f"got {tuple(mask.shape)}.")
  axes = tuple(range(1, mask.ndim))
  if mask.dtype == jnp.bool_:
    taken = jnp.sum(mask, axis=axes, dtype=jnp.int32).astype(jnp.float32)
  else:
    taken = jnp.sum(mask.astype(jnp.float32), axis=axes)
  weight = 1.0 - taken / math.prod(mask.shape[1:])
  return MixParams(perm=perm.astype(jnp.int32), label_weight=weight, mask=mask,
                   pairing=pairing)


def box_params(perm: chex.Array, boxes: chex.Array, image_size: tuple[int, int],
               pairing: str = "permute") -> MixParams:
  """The mix that pastes each partner's ``boxes`` rectangle in place (CutMix, SaliencyMix).

  Args:
    perm: int32 ``[B]`` partners.
    boxes: int32 ``[B, 4]`` ``(top, left, bottom, right)``, inside ``image_size``.
    image_size: ``(H, W)``.
    pairing: how ``perm`` was drawn, recorded in :attr:`MixParams.pairing`.

  Returns:
    :class:`~mixjax.MixParams` with ``label_weight = 1 − area/(H·W)``, as
    :func:`~mixjax.sample_cutmix_boxes` computes it.
  """
  if boxes.shape != (perm.shape[0], 4):
    raise ValueError(f"boxes must be [B, 4] with B = {perm.shape[0]}, got {tuple(boxes.shape)}.")
  height, width = image_size
  weight = 1.0 - box_area(boxes).astype(jnp.float32) / (height * width)
  return MixParams(perm=perm.astype(jnp.int32), label_weight=weight,
                   boxes=boxes.astype(jnp.int32), pairing=pairing)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Mixer:
  """Base of every mixer: the options all methods share.

  Subclasses are frozen ``kw_only`` dataclasses adding their paper's
  hyper-parameters, and implement :meth:`draw` (and :meth:`validate`).

  Attributes:
    num_classes: ``K``, needed for integer labels in :meth:`__call__`.
    mode: ``"batch"`` (one draw for the batch, as the papers do) or ``"elem"``
      (one per example).
    pairing: ``"permute"``, ``"flip"`` or ``"roll"`` (:func:`~mixjax.sample_partners`).
    label_smoothing: ``ε`` applied to the labels before mixing.
    prob: probability of mixing (per batch or per example, as ``mode``); an
      example not mixed comes back bit for bit unchanged.
    spatial: class attribute: the method needs ``(H, W)`` images.
    segments: class attribute: a spatial method that also draws 1-D masks on a
      segment view ``(T, 1)`` (``axes=`` with one axis, see :mod:`mixjax.axes`).
    uses_images: class attribute: the draw looks at the pixels (SaliencyMix's
      boxes follow the partner's saliency), so :meth:`sample` needs ``images``
      and passes them to :meth:`draw` as the keyword ``images``.
    traceable: class attribute: the fields that may hold traced values (e.g.
      ``("alpha",)``); every other field must be known at trace time. A mixer
      holding a traced value is not hashable, so :meth:`__call__` then runs
      inside the caller's trace instead of as a jitted program of its own.
  """
  num_classes: int | None = None
  mode: str = "batch"
  pairing: str = "permute"
  label_smoothing: float = 0.0
  prob: float = 1.0

  spatial: ClassVar[bool] = False
  segments: ClassVar[bool] = False
  uses_images: ClassVar[bool] = False
  traceable: ClassVar[tuple[str, ...]] = ()

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = _validation.static_value(getattr(self, field.name), arrays=False)
      if field.name not in self.traceable:
        _validation.check_static(value, f"{type(self).__name__}.{field.name}", self.traceable)
      object.__setattr__(self, field.name, value)
    _validation.check_mode(self.mode)
    _validation.check_pairing(self.pairing)
    _validation.check_probability(self.prob, "prob")
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(
          f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}.")
    if self.num_classes is not None and (
        not isinstance(self.num_classes, int) or self.num_classes < 1):
      raise ValueError(f"num_classes must be a positive int, got {self.num_classes!r}.")
    self.validate()

  def validate(self) -> None:
    """Raises ``ValueError`` for bad hyper-parameters (subclasses override)."""

  def draw(self, key: chex.PRNGKey, batch_size: int, image_shape: tuple[int, ...]
           ) -> MixParams:
    """Draws the method's mix for every example (``prob`` is applied by :meth:`sample`).

    A mixer with ``uses_images = True`` also gets ``images=`` (``[B, ...]``).
    """
    raise NotImplementedError(f"{type(self).__name__} does not implement draw().")

  @property
  def num_partners(self) -> int:
    """Partners per example (n-way Mixup: ``n − 1``), the columns of ``partners`` it reads."""
    return 1

  def draw_with_partners(self, key: chex.PRNGKey, batch_size: int,
                         image_shape: tuple[int, ...], partners: chex.Array,
                         **images) -> MixParams:
    """:meth:`draw` with the partners given (a :class:`~mixjax.Choice` shares one draw).

    The default draws with :meth:`draw` and puts ``partners`` in place of the
    partners it drew (:func:`with_partners`): right for every mixer whose other
    draws do not look at the partners. A mixer whose draw does (SaliencyMix
    centres its box on the partner's salient peak) overrides this; one without
    partners (:class:`Identity`) ignores them.

    Args:
      key: a PRNG key.
      batch_size: ``B``.
      image_shape: as for :meth:`draw`.
      partners: int32 ``[B, k]``, ``k ≥`` :attr:`num_partners`, drawn with this
        mixer's ``pairing`` (:func:`~mixjax.sample_partner_sets`).
      **images: ``images=`` for a mixer with ``uses_images``.
    """
    return with_partners(self.draw(key, batch_size, image_shape, **images), partners)

  def _draw(self, key, batch_size, image_shape, images, partners=None):
    kwargs = {}
    if self.uses_images:
      if images is None:
        raise ValueError(
            f"{type(self).__name__} draws its mix from the pixels: pass images= to sample().")
      if tuple(images.shape) != (batch_size, *image_shape):
        raise ValueError(
            f"images must be [B, *image_shape] = {(batch_size, *image_shape)}, got "
            f"{tuple(images.shape)}.")
      kwargs["images"] = images
    if partners is None:
      return self.draw(key, batch_size, image_shape, **kwargs)
    return self.draw_with_partners(key, batch_size, image_shape, partners, **kwargs)

  def _check_partners(self, partners, batch_size: int):
    """``partners`` as int32 ``[B, k]`` with ``k ≥ num_partners``, or None."""
    if partners is None:
      return None
    partners = jnp.asarray(partners)
    if partners.ndim == 1:
      partners = partners[:, None]
    if (partners.ndim != 2 or partners.shape[0] != batch_size
        or partners.shape[1] < self.num_partners
        or not jnp.issubdtype(partners.dtype, jnp.integer)):
      raise ValueError(
          f"partners must be int [B, k] with B = {batch_size} and k >= {self.num_partners} "
          f"(the partners {type(self).__name__} reads), got {partners.dtype} "
          f"{tuple(partners.shape)}.")
    return partners.astype(jnp.int32)

  def sample(self, key: chex.PRNGKey, batch_size: int,
             image_shape: Sequence[int] = (), *,
             images: chex.Array | None = None,
             partners: chex.Array | None = None) -> MixParams:
    """Draws a mix: :meth:`draw`, kept with probability ``prob``.

    With ``prob < 1`` the key is split into ``(key_apply, key_draw)``; an
    example (``"elem"``) or the batch (``"batch"``) is mixed where
    ``U(key_apply) < prob``, and is the identity mix elsewhere.

    Args:
      key: a PRNG key.
      batch_size: ``B``.
      image_shape: ``images.shape[1:]`` (``(H, W)`` is enough for most mixers).
      images: the batch, for mixers that draw from the pixels (``uses_images``);
        ignored by the others.
      partners: optional int ``[B, k]`` partners drawn by the caller with this
        mixer's ``pairing`` (:func:`~mixjax.sample_partner_sets`; ``[B]`` for
        one): the mix pairs example ``i`` with ``partners[i, 0]`` (n-way Mixup
        also with ``partners[i, 1:n − 1]``) instead of drawing its own
        (:meth:`draw_with_partners`). :class:`~mixjax.Choice` passes one draw
        to all its mixers.
    """
    image_shape = tuple(int(d) for d in image_shape)
    partners = self._check_partners(partners, batch_size)
    if self.prob == 1.0:
      return self._draw(key, batch_size, image_shape, images, partners)
    key_apply, key_draw = jax.random.split(key)
    params = self._draw(key_draw, batch_size, image_shape, images, partners)
    num = 1 if self.mode == "batch" else batch_size
    apply = jax.random.uniform(key_apply, (num,)) < self.prob
    return gate_params(params, jnp.broadcast_to(apply, (batch_size,)))

  def __call__(self, key: chex.PRNGKey, images: chex.Array, labels: chex.Array, *,
               layout: str | None = None, axes: Sequence[int] | None = None
               ) -> tuple[chex.Array, chex.Array]:
    """Mixes a batch: ``(x̃, ỹ)``, float32 soft labels ``[B, K]``.

    ``layout`` is that of :func:`~mixjax.mix_images` (``"NHWC"`` to trust a batch
    that looks channels-first, ``"NTHWC"`` clips). ``axes`` names the axes a box or
    mask spans in any batch ``[B, ...]``: two (e.g. ``(1, 2)``, a spectrogram's time ×
    frequency) or one (``(1,)``, a time segment of a sequence ``[B, T, D]``); see
    :mod:`mixjax.axes`. ``None``: the images' ``H × W``. A mixer holding a traced
    hyper-parameter (see ``traceable``) mixes inside the caller's trace; any other is
    a jitted program.
    """
    _validation.check_label_ids(labels, self.num_classes)  # Concrete ids, before jit.
    if axes is not None:
      if layout is not None:
        raise ValueError(f"layout is for image and clip batches; with axes={axes!r} the "
                         f"batch is viewed as [B, A1, A2, rest] for you: pass one of them.")
      view = to_spatial(images, axes)
      if view.shape[2] == 1 and self.spatial and not self.segments:
        raise ValueError(
            f"{type(self).__name__} draws 2-D boxes or masks, which have no 1-D form: with "
            f"axes={tuple(axes)!r} (one axis, a segment) use CutMix, FMix "
            "(spectrum='paper'), Mixup or the policy.")
      mixed, targets = self(key, view, labels, layout="NHWC")
      return from_spatial(mixed, images.shape, axes), targets
    if _validation.has_tracer(self):
      return _mix_batch(self, key, images, labels, layout)
    return _mix(self, key, images, labels, layout)


def with_partners(params: MixParams, partners: chex.Array | None) -> MixParams:
  """``params`` with the partners ``partners`` (int ``[B, k]``) in place of its own.

  ``perm = partners[:, 0]`` and, for n-way mixes, ``more_perms`` the next
  columns; every other field is kept. ``None`` returns ``params``.
  """
  if partners is None:
    return params
  more = params.more_perms
  if more is not None:
    more = partners[:, 1:1 + more.shape[1]].astype(jnp.int32)
  return params.replace(perm=partners[:, 0].astype(jnp.int32), more_perms=more)


def _mix_batch(mixer: Mixer, key, images, labels, layout):
  batch = _validation.check_batch(images)
  if mixer.spatial:
    _validation.check_spatial(images, layout)
  params = mixer.sample(key, batch, images.shape[1:], images=images)
  return apply_mix(params, images, labels, mixer.num_classes, mixer.label_smoothing,
                   layout=layout)


_mix = jax.jit(_mix_batch, static_argnames=("mixer", "layout"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Identity(Mixer):
  """The mix that changes nothing (ERM), e.g. as one choice of :class:`~mixjax.Choice`."""

  def draw(self, key, batch_size, image_shape):
    del key, image_shape
    return identity_params(batch_size)

  def draw_with_partners(self, key, batch_size, image_shape, partners):
    del partners  # Every example stays its own partner.
    return self.draw(key, batch_size, image_shape)
