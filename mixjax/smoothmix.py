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

import numbers

import chex
import jax
import jax.numpy as jnp

from mixjax import _validation


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


def sample_smoothmix_masks(
    key: chex.PRNGKey,
    batch_size: int,
    height: int,
    width: int,
    *,
    sigma=(0.25, 0.5),
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
  pair = (sigma, sigma) if isinstance(sigma, numbers.Real) else tuple(sigma)
  if (len(pair) != 2 or not all(isinstance(v, numbers.Real) for v in pair)
      or not 0 < pair[0] <= pair[1]):
    raise ValueError(
        f"sigma must be a positive number or a pair (lo, hi) with 0 < lo <= hi (sigma/H), "
        f"got {sigma!r}.")
  num = 1 if mode == "batch" else batch_size
  key_y, key_x, key_s = jax.random.split(key, 3)
  centre_y = jax.random.randint(key_y, (num,), 0, height).astype(jnp.float32) - 0.5
  centre_x = jax.random.randint(key_x, (num,), 0, width).astype(jnp.float32) - 0.5
  scale = jax.random.uniform(key_s, (num,), jnp.float32, float(pair[0]), float(pair[1]))
  masks = gaussian_masks(centre_y, centre_x, scale * height, height, width)
  return jnp.broadcast_to(masks, (batch_size, height, width))
