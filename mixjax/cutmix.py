"""CutMix (Yun et al., 2019): paste a box from a partner, mix labels by area.

  ``λ ~ Beta(α, α)``, box of area about ``(1 − λ)·H·W`` centred uniformly and
  clipped (by default the reference ``rand_bbox`` rule of CutMix-PyTorch and
  timm, see :func:`~mixjax.sample_boxes`),
  ``x̃ = M ⊙ x[perm] + (1 − M) ⊙ x``, ``ỹ = w·y + (1 − w)·y[perm]`` with the exact
  kept fraction ``w = 1 − |M|/(H·W)`` after clipping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp

from mixjax import _validation
from mixjax.boxes import box_area, sample_boxes, sample_boxes_minmax
from mixjax.mixer import Mixer, spatial_size, with_partners
from mixjax.params import MixParams, apply_mix
from mixjax.sampling import sample_lambda, sample_partners


def sample_cutmix_boxes(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int],
    *,
    alpha: float = 1.0,
    mode: str = "batch",
    minmax: Sequence[float] | None = None,
    box_rule: str = "reference",
) -> tuple[chex.Array, chex.Array]:
  """Draws CutMix boxes and their exact kept fractions.

  ``λ ~ Beta(α, α)`` (:func:`~mixjax.sample_lambda`), then a box from
  :func:`~mixjax.sample_boxes` with ``box_rule`` (``"reference"``: CutMix-PyTorch's
  and timm's ``rand_bbox``; ``"full_side"``: mixjax 0.1.0's rule), one for the
  batch (``mode="batch"``) or one per example (``"elem"``); with ``minmax``, from
  :func:`~mixjax.sample_boxes_minmax` instead (``box_rule`` is then unused).

  Returns:
    ``(boxes, w)``: int32 ``[B, 4]`` boxes and float32 ``[B]`` label weights
    ``w = 1 − area/(H·W)``.
  """
  _validation.check_mode(mode)
  _validation.check_box_rule(box_rule)
  minmax = _validation.check_minmax(minmax)
  height, width = image_size
  num = 1 if mode == "batch" else batch_size
  if minmax is None:
    key_lam, key_box = jax.random.split(key)
    lam = sample_lambda(key_lam, num, alpha, "elem")
    boxes = sample_boxes(key_box, lam, height, width, box_rule)
  else:
    boxes = sample_boxes_minmax(key, num, height, width, minmax)
  boxes = jnp.broadcast_to(boxes, (batch_size, 4))
  weight = 1.0 - box_area(boxes).astype(jnp.float32) / (height * width)
  return boxes, weight


def sample_cutmix(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int],
    *,
    alpha: float = 1.0,
    mode: str = "batch",
    minmax: Sequence[float] | None = None,
    pairing: str = "permute",
    box_rule: str = "reference",
) -> MixParams:
  """Draws a CutMix: boxes (one, or one per example), exact weights and partners.

  Args:
    key: a PRNG key.
    batch_size: ``B``.
    image_size: ``(H, W)``.
    alpha: ``α > 0`` of ``Beta(α, α)``; ignored when ``minmax`` is given. May be
      traced (see :func:`~mixjax.symmetric_beta`).
    mode: ``"batch"`` (one box, as in the paper) or ``"elem"`` (one per example).
    minmax: optional ``(min, max)`` box side ratios (timm's ``cutmix_minmax``), a
      tuple, list or array.
    pairing: ``"permute"``, ``"flip"`` or ``"roll"``.
    box_rule: ``"reference"`` (default; CutMix-PyTorch's and timm's
      ``rand_bbox``) or ``"full_side"`` (mixjax 0.1.0's rule, to replay old
      draws); see :func:`~mixjax.sample_boxes`.

  Returns:
    :class:`MixParams` with boxes and no ``lam`` (pixels are pasted, not blended).
  """
  key_box, key_perm = jax.random.split(key)
  boxes, weight = sample_cutmix_boxes(
      key_box, batch_size, image_size, alpha=alpha, mode=mode, minmax=minmax,
      box_rule=box_rule)
  return MixParams(perm=sample_partners(key_perm, batch_size, pairing),
                   label_weight=weight, boxes=boxes, pairing=pairing)


@_validation.jit_with_hyperparameters(
    ("alpha", "num_classes", "mode", "minmax", "pairing", "label_smoothing", "box_rule",
     "layout"), traceable=("alpha",))
def cutmix(
    key: chex.PRNGKey,
    images: chex.Array,
    labels: chex.Array,
    *,
    alpha: float = 1.0,
    num_classes: int | None = None,
    mode: str = "batch",
    minmax: tuple[float, float] | None = None,
    pairing: str = "permute",
    label_smoothing: float = 0.0,
    box_rule: str = "reference",
    layout: str | None = None,
) -> tuple[chex.Array, chex.Array]:
  """Mixes a batch with CutMix.

  A box of area ratio about ``1 − λ``, ``λ ~ Beta(α, α)``, with a uniformly drawn
  centre and clipped to the image, is copied from each example's partner; by
  default it is drawn as CutMix-PyTorch's ``rand_bbox`` (``train.py`` line 279)
  and timm's (``timm/data/mixup.py`` line 30) draw it. The
  labels are mixed by the exact pasted fraction after clipping. Pixels are
  copied, never blended, so the output keeps the input dtype (uint8 stays uint8).
  A batch of one pastes from itself and comes back unchanged.

  Args:
    key: a PRNG key.
    images: ``[B, H, W, C]`` or ``[B, H, W]``, float or integer.
    labels: int class ids ``[B]`` (with ``num_classes``) or rows ``[B, K]``.
    alpha: ``α > 0``. May be traced (e.g. scheduled inside a jitted step): it then
      draws what the same value known at trace time draws, and is checked only
      when concrete. The other hyper-parameters are static.
    num_classes: ``K``.
    mode: ``"batch"`` or ``"elem"``.
    minmax: optional ``(min, max)`` box side ratios (a tuple or list); replaces the
      Beta draw.
    pairing: ``"permute"`` (default), ``"flip"`` or ``"roll"``.
    label_smoothing: ``ε`` applied to the labels before mixing.
    box_rule: ``"reference"`` (default) or ``"full_side"`` (mixjax 0.1.0's
      boxes); see :func:`~mixjax.sample_boxes`.
    layout: ``None`` (default): ``images`` are NHWC/NHW, and a batch that looks
      channels-first (see below) is refused; ``"NHWC"``: they are NHWC even if
      they look channels-first (e.g. 3 rows of 8 channels), so skip that check.

  Returns:
    ``(x̃, ỹ)``: mixed images (input dtype) and float32 soft labels ``[B, K]``.

  Raises:
    ValueError: at trace time for ``α ≤ 0``, images without two spatial axes,
      rank-4 images that look channels-first ``[B, C, H, W]`` (axis 1 of size 1,
      3 or 4 and a last axis larger than 4; transpose them with
      ``jnp.transpose(x, (0, 2, 3, 1))``, or pass ``layout="NHWC"``), unknown
      ``mode``/``pairing``/``box_rule``/``layout``, bad ``minmax``, a batch
      mismatch, labels that do not fit ``num_classes`` or a traced value for a
      hyper-parameter other than ``alpha``.
  """
  batch = _validation.check_batch(images)
  height, width = _validation.check_spatial(images, layout)
  params = sample_cutmix(key, batch, (height, width), alpha=alpha, mode=mode,
                         minmax=minmax, pairing=pairing, box_rule=box_rule)
  return apply_mix(params, images, labels, num_classes, label_smoothing,
                   layout=layout)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CutMix(Mixer):
  """CutMix as a :class:`~mixjax.Mixer` (registered as ``"cutmix"``).

  :meth:`sample` draws exactly what :func:`sample_cutmix` draws (``prob = 1``) or,
  for ``prob < 1``, what :func:`~mixjax.sample_mix` draws for
  ``MixConfig(mixup_alpha=0, cutmix_alpha=alpha, cutmix_minmax=minmax, prob=prob,
  mode=mode, pairing=pairing, box_rule=box_rule)``.

  Attributes:
    alpha: ``α > 0`` of ``Beta(α, α)``; 1.0 in the paper (CIFAR and ImageNet).
      May be traced (``traceable``).
    minmax: optional ``(min, max)`` box side ratios (timm's ``cutmix_minmax``).
    box_rule: ``"reference"`` or ``"full_side"`` (see :func:`~mixjax.sample_boxes`).
  """
  alpha: float = 1.0
  minmax: tuple[float, float] | None = None
  box_rule: str = "reference"

  spatial = True
  segments = True   # sample_boxes cuts 1 − λ of a segment.
  traceable = ("alpha",)

  def validate(self):
    _validation.check_alpha(self.alpha)
    _validation.check_box_rule(self.box_rule)
    object.__setattr__(self, "minmax", _validation.check_minmax(self.minmax))

  def draw(self, key, batch_size, image_shape):
    return sample_cutmix(key, batch_size, spatial_size(image_shape), alpha=self.alpha,
                         mode=self.mode, minmax=self.minmax, pairing=self.pairing,
                         box_rule=self.box_rule)

  def sample(self, key, batch_size, image_shape=(), *, images=None, partners=None):
    if self.prob < 1.0:
      from mixjax.policy import MixConfig, sample_mix  # policy builds on this module.
      params = sample_mix(key, batch_size, spatial_size(image_shape), MixConfig(
          mixup_alpha=0.0, cutmix_alpha=self.alpha, cutmix_minmax=self.minmax,
          prob=self.prob, mode=self.mode, pairing=self.pairing, box_rule=self.box_rule))
      return with_partners(params, self._check_partners(partners, batch_size))
    return super().sample(key, batch_size, image_shape, images=images, partners=partners)
