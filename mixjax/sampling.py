"""Random draws shared by every mixing method: λ and partners."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from mixjax import _validation


def sample_lambda(
    key: chex.PRNGKey,
    batch_size: int,
    alpha: float,
    mode: str = "batch",
) -> chex.Array:
  """Draws mixing weights ``λ ~ Beta(α, α)``.

  Args:
    key: a PRNG key.
    batch_size: ``B``.
    alpha: ``α > 0``. ``α = 1`` is uniform on ``[0, 1]``; small ``α`` puts the mass
      near 0 and 1 (weak mixing), large ``α`` near 0.5.
    mode: ``"batch"`` draws one ``λ`` shared by the batch, ``"elem"`` one per example.

  Returns:
    float32 ``[B]`` (all equal in ``"batch"`` mode).
  """
  _validation.check_alpha(alpha)
  _validation.check_mode(mode)
  shape = (1,) if mode == "batch" else (batch_size,)
  lam = jax.random.beta(key, alpha, alpha, shape, dtype=jnp.float32)
  return jnp.broadcast_to(lam, (batch_size,))


def sample_partners(
    key: chex.PRNGKey, batch_size: int, pairing: str = "permute"
) -> chex.Array:
  """Chooses each example's partner: example ``i`` is mixed with ``perm[i]``.

  Args:
    key: a PRNG key (unused for the deterministic pairings).
    batch_size: ``B``.
    pairing: ``"permute"`` a uniformly random permutation of the batch;
      ``"flip"`` the reversed batch (``perm[i] = B − 1 − i``, as timm); ``"roll"``
      the next example (``perm[i] = i − 1 mod B``, as torchvision).

  Returns:
    int32 ``[B]``, a bijection of ``{0, …, B − 1}``. With ``B = 1`` it is ``[0]``:
    the example is mixed with itself, which leaves it unchanged.
  """
  _validation.check_pairing(pairing)
  index = jnp.arange(batch_size, dtype=jnp.int32)
  if pairing == "permute":
    return jax.random.permutation(key, index)
  if pairing == "flip":
    return index[::-1]
  return jnp.roll(index, 1)
