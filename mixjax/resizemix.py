"""ResizeMix (Qin et al., 2020): paste the whole partner, shrunk, into a box.

"ResizeMix: Mixing Data with Preserved Object Information and True Labels"
(arXiv:2012.11101). A scale ``τ ~ U(τ_min, τ_max)`` (``(0.1, 0.8)`` in the paper
and OpenMixup) gives a box of side ``⌊H·τ⌋ × ⌊W·τ⌋`` with a uniformly drawn
centre, clipped to the image; the partner image, resized (nearest neighbour) to
the clipped box, replaces the box's pixels:

  ``x̃_i = R_i ⊙ resize(x_p, R_i) + (1 − R_i) ⊙ x_i``,
  ``ỹ_i = w_i·y_i + (1 − w_i)·y_p``, ``w_i = 1 − |R_i|/(H·W)``, exact.

The reference is OpenMixup's ``resizemix`` (``openmixup/models/augments/
resizemix.py`` at commit 37e1372): ``τ`` at lines 86–93 (``U(scope)``, "original
settings in ResizeMix"; with ``use_alpha``, ``Beta(α, α)`` redrawn uniformly
when outside ``scope``, which its CIFAR configs use: ``configs/classification/
cifar10/mixups/basic/r18_mixups_CE_none.py`` lines 10 and 22), the box
``rand_bbox_tao`` at lines 45–59, the nearest resize at line 102 and the exact
label weight at line 108.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp

from mixjax import _validation
from mixjax.boxes import box_area
from mixjax.mixer import Mixer, spatial_size
from mixjax.params import MixParams, apply_mix
from mixjax.sampling import sample_partners, symmetric_beta

PAPER_SCOPE = (0.1, 0.8)


def _check_scope(scope: Sequence[float]) -> tuple[float, float]:
  scope = _validation.static_value(scope)
  if (not isinstance(scope, tuple) or len(scope) != 2
      or not all(isinstance(v, numbers.Real) for v in scope)):
    raise ValueError(f"scope must be a pair (min, max) of box side ratios, got {scope!r}.")
  lo, hi = float(scope[0]), float(scope[1])
  if not 0.0 <= lo <= hi <= 1.0:
    raise ValueError(f"scope must satisfy 0 <= min <= max <= 1, got {scope!r}.")
  return lo, hi


def sample_resizemix_boxes(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int],
    *,
    scope: Sequence[float] = PAPER_SCOPE,
    mode: str = "batch",
    tau_alpha: float | None = None,
) -> tuple[chex.Array, chex.Array]:
  """Draws ResizeMix boxes and their exact kept fractions.

  ``τ ~ U(min, max)`` (float32; with ``tau_alpha``, OpenMixup's ``use_alpha`` rule:
  ``τ ~ Beta(α, α)``, replaced by a ``U(min, max)`` draw when outside),
  ``cut_h = ⌊H·τ⌋``, ``cut_w = ⌊W·τ⌋``, centre ``c_y ~ U{0, …, H − 1}``,
  ``c_x ~ U{0, …, W − 1}``, rows ``[c_y − ⌊cut_h/2⌋, c_y + ⌊cut_h/2⌋)`` and
  columns alike, clipped to the image (OpenMixup ``rand_bbox_tao``,
  ``resizemix.py`` lines 45–59). The reference takes both sides from one NCHW
  ``size`` whose axes it names the other way round (its ``W`` is the row
  count), which only matters for non-square images;
  here rows come from ``H`` and columns from ``W``.

  Args:
    key: a PRNG key.
    batch_size: ``B``.
    image_size: ``(H, W)``.
    scope: ``(min, max)`` of ``τ``; the paper's ``(0.1, 0.8)`` by default.
    mode: ``"batch"`` (one box, as the reference) or ``"elem"`` (one per example).
    tau_alpha: ``None`` (the paper's uniform ``τ``) or ``α > 0``: OpenMixup's
      ``alpha`` with ``use_alpha=True`` (named apart from Mixup's ``alpha``, so a
      config's ``alpha`` does not change ResizeMix).

  Returns:
    ``(boxes, w)``: int32 ``[B, 4]`` boxes and float32 ``[B]`` label weights
    ``w = 1 − area/(H·W)``.
  """
  _validation.check_mode(mode)
  lo, hi = _check_scope(scope)
  height, width = image_size
  num = 1 if mode == "batch" else batch_size
  key_tau, key_y, key_x = jax.random.split(key, 3)
  tau = jax.random.uniform(key_tau, (num,), jnp.float32, lo, hi)
  if tau_alpha is not None:
    key_beta = jax.random.fold_in(key_tau, 1)
    beta = symmetric_beta(key_beta, tau_alpha, (num,))
    tau = jnp.where((beta < lo) | (beta > hi), tau, beta)
  cut_h = jnp.floor(height * tau).astype(jnp.int32)
  cut_w = jnp.floor(width * tau).astype(jnp.int32)
  centre_y = jax.random.randint(key_y, (num,), 0, height, dtype=jnp.int32)
  centre_x = jax.random.randint(key_x, (num,), 0, width, dtype=jnp.int32)
  boxes = jnp.stack([
      jnp.clip(centre_y - cut_h // 2, 0, height),
      jnp.clip(centre_x - cut_w // 2, 0, width),
      jnp.clip(centre_y + cut_h // 2, 0, height),
      jnp.clip(centre_x + cut_w // 2, 0, width),
  ], axis=-1)
  boxes = jnp.broadcast_to(boxes, (batch_size, 4))
  weight = 1.0 - box_area(boxes).astype(jnp.float32) / (height * width)
  return boxes, weight


def sample_resizemix(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int],
    *,
    scope: Sequence[float] = PAPER_SCOPE,
    mode: str = "batch",
    pairing: str = "permute",
    tau_alpha: float | None = None,
) -> MixParams:
  """Draws a ResizeMix: boxes (:func:`sample_resizemix_boxes`), weights and partners.

  Returns:
    :class:`~mixjax.MixParams` with ``boxes``, ``source_boxes = (0, 0, H, W)``
    (the whole partner is resized into the box) and no ``lam``: pixels are
    copied, so the dtype is kept.
  """
  key_box, key_perm = jax.random.split(key)
  height, width = image_size
  boxes, weight = sample_resizemix_boxes(key_box, batch_size, image_size, scope=scope,
                                         mode=mode, tau_alpha=tau_alpha)
  whole = jnp.broadcast_to(jnp.asarray([0, 0, height, width], jnp.int32), (batch_size, 4))
  params = MixParams(perm=sample_partners(key_perm, batch_size, pairing),
                     label_weight=weight, boxes=boxes, source_boxes=whole, pairing=pairing)
  # The draw is computed apart from the resize that uses it: fused into the resize's
  # per-pixel loop, elem-mode boxes made XLA:CPU's program 1.1-1.8x slower (bfloat16
  # 64x224^2: 16.9 -> 9.5 ms). A barrier changes no value.
  return jax.lax.optimization_barrier(params)


@_validation.jit_with_hyperparameters(
    ("scope", "num_classes", "mode", "pairing", "label_smoothing", "layout", "tau_alpha"),
    traceable=("tau_alpha",))
def resizemix(
    key: chex.PRNGKey,
    images: chex.Array,
    labels: chex.Array,
    *,
    scope: tuple[float, float] = PAPER_SCOPE,
    num_classes: int | None = None,
    mode: str = "batch",
    pairing: str = "permute",
    label_smoothing: float = 0.0,
    layout: str | None = None,
    tau_alpha: float | None = None,
) -> tuple[chex.Array, chex.Array]:
  """Mixes a batch with ResizeMix.

  Each example's box (side ratio ``τ ~ U(scope)``, uniform centre, clipped) is
  replaced by its whole partner image resized to the box by nearest neighbour
  (source pixel ``⌊dst·in/out⌋`` in exact integer arithmetic; PyTorch's
  ``interpolate(mode="nearest")``, which OpenMixup uses, rounds ``in/out`` to
  float32 first). Labels are mixed by the exact box fraction. Pixels are copied,
  so the dtype is kept (uint8 stays uint8). Unlike CutMix, an example paired
  with itself (a batch of one) does change: it gets a shrunk copy of itself.

  Args:
    key: a PRNG key.
    images: ``[B, H, W, C]`` or ``[B, H, W]``, float or integer.
    labels: int class ids ``[B]`` (with ``num_classes``) or rows ``[B, K]``.
    scope: ``(min, max)`` of ``τ``; the paper's ``(0.1, 0.8)``.
    num_classes: ``K``.
    mode: ``"batch"`` or ``"elem"``.
    pairing: ``"permute"`` (default), ``"flip"`` or ``"roll"``.
    label_smoothing: ``ε`` applied to the labels before mixing.
    layout: as in :func:`~mixjax.cutmix`.
    tau_alpha: ``None`` (the paper's ``τ ~ U(scope)``) or ``α`` for OpenMixup's
      ``use_alpha`` rule (see :func:`sample_resizemix_boxes`); may be traced (it
      then draws what the same value known at trace time draws).

  Returns:
    ``(x̃, ỹ)``: mixed images (input dtype) and float32 soft labels ``[B, K]``.

  Raises:
    ValueError: at trace time for a bad ``scope``/``mode``/``pairing``/``layout``,
      images without two spatial axes or that look channels-first, a batch
      mismatch or labels that do not fit ``num_classes``.
  """
  batch = _validation.check_batch(images)
  height, width = _validation.check_spatial(images, layout)
  params = sample_resizemix(key, batch, (height, width), scope=scope, mode=mode,
                            pairing=pairing, tau_alpha=tau_alpha)
  return apply_mix(params, images, labels, num_classes, label_smoothing, layout=layout)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResizeMix(Mixer):
  """ResizeMix as a :class:`~mixjax.Mixer` (registered as ``"resizemix"``).

  Attributes:
    scope: ``(min, max)`` of the box side ratio ``τ``; the paper's ``(0.1, 0.8)``.
    tau_alpha: ``None`` (the paper's uniform ``τ``) or ``α`` (OpenMixup's ``use_alpha``);
      may be traced.
  """
  scope: tuple[float, float] = PAPER_SCOPE
  tau_alpha: float | None = None

  spatial = True
  traceable = ("tau_alpha",)

  def validate(self):
    object.__setattr__(self, "scope", _check_scope(self.scope))
    if self.tau_alpha is not None:
      _validation.check_alpha(self.tau_alpha, "tau_alpha")

  def draw(self, key, batch_size, image_shape):
    return sample_resizemix(key, batch_size, spatial_size(image_shape), scope=self.scope,
                            mode=self.mode, pairing=self.pairing, tau_alpha=self.tau_alpha)
