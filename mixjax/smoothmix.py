"""SmoothMix masks (Lee et al., 2020): a soft Gaussian blob of the partner.

SmoothMix ("SmoothMix: a Simple Yet Effective Data Augmentation to Train Robust
Classifiers", CVPR Workshops 2020) blends in the partner through a mask with soft
edges, so the mixed image has no sharp seams. The paper has no public code; this
module follows OpenMixup's ``openmixup/models/augments/smoothmix.py`` at commit
37e1372 (the implementation behind the issue's SmoothMix row), its "circle"
(Gaussian) mask:

* ``gaussian_kernel`` (lines 34–50) builds the ``2h × 2h`` grid of coordinates,
  rolls it by ``(r_h, r_w)`` and crops its middle ``h × h``, then evaluates
  ``G(i, j) = exp(−((i − μ_i)² + (j − μ_j)²)/(2σ²))``; the roll never wraps inside the
  crop, so ``G`` is a Gaussian centred at ``μ_i = k_i − ½``, ``μ_j = k_j − ½`` (on the
  corner between four pixels) with ``k_i ~ U{0, …, H − 1}``, ``k_j ~ U{0, …, W − 1}``
  (``r = int(randint(0, n) − n/2)``, lines 69–70).
* ``σ = (U/4 + ¼)·h``, ``U ~ U[0, 1)`` (line 71): ``σ/H ~ U[¼, ½)``.
* ``img·(1 − kernel) + img_·kernel`` (line 73): the kernel is the **partner's**
  weight, mixjax's convention.

Where this module differs, and why:

* The reference builds an ``h × h`` kernel from the image height alone, so it only
  runs on square images of even side (an odd side makes its crop ``h + 1`` wide
  and ``view(h, h)`` fails; a non-square batch fails to broadcast). Here rows
  and columns use ``H`` and ``W``, with the centres above and ``σ`` relative to
  ``H``; on even square images the masks are the reference's.
* The reference returns ``λ = Σ G/(h·w)``, the partner's mass, as the weight of
  the example's own label (line 74, used as ``loss(y_a)·λ + loss(y_b)·(1 − λ)``
  by ``cls_mixup_head.py`` lines 298–299), which gives each label the other's
  share. The own label weight here is ``1 − mean(mask)``, the pixels' own share.
* The paper's other, square mask with a linear ramp is not in the reference and
  is not implemented.
"""

from __future__ import annotations

import dataclasses
import numbers

import chex
import jax
import jax.numpy as jnp

from mixjax import _validation
from mixjax.mixer import Mixer, mask_params, spatial_size
from mixjax.params import MixParams, apply_mix
from mixjax.sampling import sample_partners

PAPER_SIGMA = (0.25, 0.5)  # σ/H ~ U[¼, ½): OpenMixup smoothmix.py line 71.


def gaussian_masks(centre_y: chex.Array, centre_x: chex.Array, sigma: chex.Array,
                   height: int, width: int) -> chex.Array:
  """``G(i, j) = exp(−((i − μ_i)² + (j − μ_j)²)/(2σ²))`` per example.

  Args:
    centre_y: float ``[N]`` row centres ``μ_i`` (pixel ``i`` is at ``i``).
    centre_x: float ``[N]`` column centres ``μ_j``.
    sigma: float ``[N]`` widths ``σ > 0`` in pixels.
    height: ``H``.
    width: ``W``.

  Returns:
    float32 ``[N, H, W]`` in ``(0, 1]``: the partner's weight per pixel.
  """
  rows = jnp.arange(height, dtype=jnp.float32)[None, :, None] - centre_y[:, None, None]
  cols = jnp.arange(width, dtype=jnp.float32)[None, None, :] - centre_x[:, None, None]
  var = jnp.square(sigma.astype(jnp.float32))[:, None, None]
  return jnp.exp(-(jnp.square(rows) + jnp.square(cols)) / (2 * var))


def _check_sigma(sigma) -> tuple[float, float]:
  """``sigma`` (a number or ``(lo, hi)``) as a checked pair of floats."""
  sigma = _validation.static_value(sigma)
  pair = (sigma, sigma) if isinstance(sigma, numbers.Real) else sigma
  if (not isinstance(pair, tuple) or len(pair) != 2
      or not all(isinstance(v, numbers.Real) for v in pair) or not 0 < pair[0] <= pair[1]):
    raise ValueError(
        f"sigma must be a positive number or a pair (lo, hi) with 0 < lo <= hi (sigma/H), "
        f"got {sigma!r}.")
  return float(pair[0]), float(pair[1])


def sample_smoothmix_masks(
    key: chex.PRNGKey,
    batch_size: int,
    height: int,
    width: int,
    *,
    sigma=PAPER_SIGMA,
    mode: str = "batch",
) -> chex.Array:
  """Draws SmoothMix partner masks: a Gaussian at a random corner, ``σ/H ~ U(sigma)``.

  Centres ``μ_i = k_i − ½``, ``μ_j = k_j − ½`` with ``k_i ~ U{0, …, H − 1}``,
  ``k_j ~ U{0, …, W − 1}``, and ``σ = s·H`` with ``s`` uniform in ``sigma``;
  rasterised by :func:`gaussian_masks`. The defaults are the reference's.

  Args:
    key: a PRNG key.
    batch_size: ``B``.
    height: ``H``.
    width: ``W``.
    sigma: ``σ/H``: a number (fixed) or a range ``(lo, hi)``, ``0 < lo ≤ hi``; the
      reference draws ``U[¼, ½)``.
    mode: ``"batch"``: one mask for the batch (the reference), broadcast to
      ``[B, H, W]``; ``"elem"``: one per example.

  Returns:
    float32 ``[B, H, W]`` in ``(0, 1]``, the partner's weight per pixel. The own
    label weight is ``1 − mean(mask)`` over ``H × W``.

  Raises:
    ValueError: at trace time for an unknown ``mode``, a malformed ``sigma`` or
      non-positive sizes.
  """
  _validation.check_mode(mode)
  for name, value in (("batch_size", batch_size), ("height", height), ("width", width)):
    if not isinstance(value, numbers.Integral) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}.")
  pair = _check_sigma(sigma)
  num = 1 if mode == "batch" else batch_size
  key_y, key_x, key_s = jax.random.split(key, 3)
  centre_y = jax.random.randint(key_y, (num,), 0, height).astype(jnp.float32) - 0.5
  centre_x = jax.random.randint(key_x, (num,), 0, width).astype(jnp.float32) - 0.5
  scale = jax.random.uniform(key_s, (num,), jnp.float32, float(pair[0]), float(pair[1]))
  masks = gaussian_masks(centre_y, centre_x, scale * height, height, width)
  return jnp.broadcast_to(masks, (batch_size, height, width))


def sample_smoothmix(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int],
    *,
    sigma=PAPER_SIGMA,
    mode: str = "batch",
    pairing: str = "permute",
) -> MixParams:
  """Draws a SmoothMix: soft masks (:func:`sample_smoothmix_masks`), weights and partners.

  The key is split into ``(key_mask, key_perm)``: masks from the first, partners
  (:func:`~mixjax.sample_partners`) from the second.

  Returns:
    :class:`~mixjax.MixParams` with a float32 ``mask`` (the partner's weight per
    pixel) and ``label_weight = 1 − mean(mask)`` (:func:`~mixjax.mask_params`): the
    example's own share of the pixels (not the reference's swapped ``λ``, see the
    module docstring).
  """
  _validation.check_pairing(pairing)
  height, width = image_size
  key_mask, key_perm = jax.random.split(key)
  masks = sample_smoothmix_masks(key_mask, batch_size, height, width, sigma=sigma, mode=mode)
  return mask_params(sample_partners(key_perm, batch_size, pairing), masks, pairing=pairing)


@_validation.jit_with_hyperparameters(
    ("sigma", "num_classes", "mode", "pairing", "label_smoothing", "layout"))
def smoothmix(
    key: chex.PRNGKey,
    images: chex.Array,
    labels: chex.Array,
    *,
    sigma=PAPER_SIGMA,
    num_classes: int | None = None,
    mode: str = "batch",
    pairing: str = "permute",
    label_smoothing: float = 0.0,
    layout: str | None = None,
) -> tuple[chex.Array, chex.Array]:
  """Mixes a batch with SmoothMix (Lee et al., 2020), OpenMixup's Gaussian mask.

  A Gaussian ``G`` centred on a random pixel corner, ``σ/H ~ U(sigma)``, is the
  partner's weight per pixel:

    ``x̃_i = G_i ⊙ x_p + (1 − G_i) ⊙ x_i``,  ``ỹ_i = w_i·y_i + (1 − w_i)·y_p``,
    ``w_i = 1 − mean(G_i)``.

  The blend is computed in at least float32: float inputs keep their dtype,
  integer inputs (uint8) become float32 (:func:`~mixjax.mixed_dtype`). An
  example paired with itself comes back bit for bit.

  Args:
    key: a PRNG key.
    images: ``[B, H, W, C]`` or ``[B, H, W]``, float or integer.
    labels: int class ids ``[B]`` (with ``num_classes``) or rows ``[B, K]``.
    sigma: ``σ/H``, a number or a range ``(lo, hi)``; the reference's ``(¼, ½)``.
    num_classes: ``K``.
    mode: ``"batch"`` (one mask, the reference) or ``"elem"`` (one per example).
    pairing: ``"permute"`` (default), ``"flip"`` or ``"roll"``.
    label_smoothing: ``ε`` applied to the labels before mixing.
    layout: as in :func:`~mixjax.cutmix`.

  Returns:
    ``(x̃, ỹ)``: mixed images (:func:`~mixjax.mixed_dtype`) and float32 soft labels.

  Raises:
    ValueError: at trace time for a malformed ``sigma``, an unknown
      ``mode``/``pairing``/``layout``, images without two spatial axes or that look
      channels-first, a batch mismatch or labels that do not fit ``num_classes``.
  """
  batch = _validation.check_batch(images)
  height, width = _validation.check_spatial(images, layout)
  params = sample_smoothmix(key, batch, (height, width), sigma=sigma, mode=mode,
                            pairing=pairing)
  return apply_mix(params, images, labels, num_classes, label_smoothing, layout=layout)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SmoothMix(Mixer):
  """SmoothMix as a :class:`~mixjax.Mixer` (registered as ``"smoothmix"``).

  Draws :func:`sample_smoothmix`.

  Attributes:
    sigma: ``σ/H`` as a range ``(lo, hi)`` (a number ``v`` is kept as ``(v, v)``,
      which draws the same); the reference's ``(¼, ½)``.
  """
  sigma: tuple[float, float] = PAPER_SIGMA

  spatial = True

  def validate(self):
    object.__setattr__(self, "sigma", _check_sigma(self.sigma))

  def draw(self, key, batch_size, image_shape):
    return sample_smoothmix(key, batch_size, spatial_size(image_shape), sigma=self.sigma,
                            mode=self.mode, pairing=self.pairing)
