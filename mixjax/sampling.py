"""Random draws shared by every mixing method: λ and partners."""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mixjax import _validation

# Jöhnk's sampler draws enough candidates per value that a draw needs a second
# round (some value had all of its candidates rejected) with at most this
# probability.
_JOHNK_MISS = 1e-4


def _open_uniform(key: chex.PRNGKey, shape) -> chex.Array:
  """float32 uniform on ``(0, 1]`` (its log is finite)."""
  return 1.0 - jax.random.uniform(key, shape, jnp.float32)


def _beta_ulrich(key: chex.PRNGKey, alpha, shape) -> chex.Array:
  """``Beta(α, α)`` for ``α ≥ ½`` without rejection (Ulrich, 1984).

  A point of the unit disc with density ``∝ (1 − ρ²)^(α − 3/2)`` has first
  coordinate ``Z`` with density ``∝ (1 − z²)^(α − 1)``, so ``(1 + Z)/2 ~ Beta(α, α)``.
  Its squared radius is ``Beta(1, α − ½)``: ``ρ² = 1 − U^(1/(α − ½))``; its
  angle is uniform. With ``|cos θ|`` drawn as ``cos φ``, ``φ ~ U[0, π/2)``, and an
  independent sign, the distance to the nearer end,
  ``d = (1 − ρ·cos φ)/2 = (q/(1 + ρ) + 2ρ·sin²(φ/2))/2`` with ``q = 1 − ρ²``,
  is computed without cancellation, so ``λ`` near 0 keeps its relative precision.

  ``alpha`` is a float32 scalar: a NumPy ``float32`` (known at trace time) or a
  traced array. ``1/(α − ½)`` is computed in float32 either way and multiplies
  (XLA turns a division by a constant into that product), so both draw the same.
  """
  key_radius, key_angle = jax.random.split(key)
  half = alpha - np.float32(0.5)
  if not _validation.is_traced(alpha) and half == 0:  # ρ = 1: the arcsine law.
    q, rho = jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32)
  else:
    log_u = jnp.log(_open_uniform(key_radius, shape))
    if _validation.is_traced(alpha):
      arcsine = half == 0
      log_q = log_u * (jnp.float32(1) / jnp.where(arcsine, jnp.float32(1), half))
      q = jnp.where(arcsine, jnp.float32(0), jnp.exp(log_q))
      rho = jnp.where(arcsine, jnp.float32(1), jnp.sqrt(-jnp.expm1(log_q)))
    else:
      log_q = log_u * (np.float32(1) / half)
      q, rho = jnp.exp(log_q), jnp.sqrt(-jnp.expm1(log_q))
  v = jax.random.uniform(key_angle, shape, jnp.float32)
  upper = v >= 0.5
  half_phi = (jnp.pi / 4) * (2 * v - upper)  # 2v mod 1 is exact in float32.
  d = 0.5 * (q / (1 + rho) + 2 * rho * jnp.square(jnp.sin(half_phi)))
  return jnp.where(upper, 1 - d, d)


def _johnk_candidates(key: chex.PRNGKey, inv_alpha, shape, tries: int, limit=None):
  """``tries`` Jöhnk candidates per value: the first accepted ``z``, and whether any was.

  ``inv_alpha``: ``1/α`` in float32 (a NumPy ``float32``, or traced).

  ``limit`` (a traced int, ``≤ tries``): only the first ``limit`` candidates count.
  The candidates of ``tries`` rows begin with those of fewer rows (JAX's default,
  partitionable, threefry draws each value from its own index), so a traced ``α``
  with ``limit`` candidates counting sees exactly those of a static ``α``.
  """
  key_x, key_y = jax.random.split(key)
  log_x = jnp.log(_open_uniform(key_x, (tries, *shape))) * inv_alpha
  log_y = jnp.log(_open_uniform(key_y, (tries, *shape))) * inv_alpha
  accepted = jnp.logaddexp(log_x, log_y) <= 0
  if limit is not None:
    row = jnp.arange(tries, dtype=jnp.int32).reshape((tries,) + (1,) * len(shape))
    accepted = accepted & (row < limit)
  first = jnp.argmax(accepted, axis=0)[None]
  return (jnp.take_along_axis(log_x - log_y, first, axis=0)[0],
          accepted.any(axis=0))


def _johnk_tries(accept: float, count: int) -> int:
  """Candidates per value: the least ``K`` with ``count·(1 − accept)^K ≤ _JOHNK_MISS``."""
  if accept >= 1:
    return 1
  return max(1, math.ceil(math.log(_JOHNK_MISS / count) / math.log1p(-accept)))


def _johnk(key: chex.PRNGKey, inv_alpha, shape, tries: int, limit=None) -> chex.Array:
  """Jöhnk's rejection (see :func:`_beta_johnk`) with ``tries`` candidates per round.

  ``inv_alpha`` is ``1/α`` in float32: multiplying by it is what XLA makes of a
  division by a constant ``α``, so a traced ``α`` draws what a static one does.
  """

  def redraw(state):
    key, z, found = state
    key, sub = jax.random.split(key)
    z_new, found_new = _johnk_candidates(sub, inv_alpha, shape, tries, limit)
    return key, jnp.where(found, z, z_new), found | found_new

  key, sub = jax.random.split(key)
  z, found = _johnk_candidates(sub, inv_alpha, shape, tries, limit)
  _, z, _ = jax.lax.while_loop(lambda state: ~state[2].all(), redraw, (key, z, found))
  # λ = sigmoid(z); the smaller of λ and 1 − λ is computed first, so λ near 0
  # keeps its relative precision and λ near 1 is rounded once, as float32 must.
  ratio = jnp.exp(-jnp.abs(z))
  small = ratio / (1 + ratio)
  return jnp.where(z > 0, 1 - small, small)


# Compiled once per (α, shape): called outside jit, a fresh while_loop body would
# otherwise be compiled anew on every call.
@functools.partial(jax.jit, static_argnums=(1, 2))
def _beta_johnk(key: chex.PRNGKey, alpha: float, shape) -> chex.Array:
  """``Beta(α, α)`` for ``α < ½`` by Jöhnk's (1964) rejection, vectorised.

  With ``X = U^(1/α)``, ``Y = V^(1/α)``, ``X/(X + Y) ~ Beta(α, α)`` given
  ``X + Y ≤ 1``, which happens with probability ``p = Γ(α + 1)²/Γ(2α + 1)``
  (0.79 at ``α = ½``, 0.95 at ``α = 0.2``). ``K`` candidates per value are drawn
  at once, ``K`` the least with ``n·(1 − p)^K ≤ 10⁻⁴`` for ``n`` values, and the
  first accepted one is kept. In the rare draw where some value has none, a loop
  draws ``K`` more for those values until each has one: plain rejection
  sampling, so the result is exact; the loop normally runs zero times (also
  under ``vmap``). Worked in logs: ``λ = sigmoid(log X − log Y)``.
  """
  count = max(1, math.prod(shape))
  accept = math.exp(2 * math.lgamma(alpha + 1) - math.lgamma(2 * alpha + 1))
  inv_alpha = np.float32(1) / np.float32(alpha)
  return _johnk(key, inv_alpha, shape, _johnk_tries(accept, count))


def _beta_johnk_traced(key: chex.PRNGKey, alpha: chex.Array, shape) -> chex.Array:
  """:func:`_beta_johnk` for a traced ``α < ½``: the same draws.

  ``K`` depends on ``α`` but fixes a shape, so the candidates of the largest ``K``
  (``p ≥ π/4`` for ``α ≤ ½``) are drawn and only the first ``K(α)`` count, ``K(α)``
  computed in float32 (the static ``K`` in float64 may differ at a few ``α``; the
  draws then differ only where some value had no accepted candidate among the fewer).
  """
  count = max(1, math.prod(shape))
  most = _johnk_tries(math.pi / 4, count)
  accept = jnp.exp(2 * jax.lax.lgamma(alpha + 1) - jax.lax.lgamma(2 * alpha + 1))
  if most == 1:
    limit = jnp.int32(1)
  else:
    tries = jnp.ceil(jnp.log(jnp.float32(_JOHNK_MISS / count)) / jnp.log1p(-accept))
    limit = jnp.clip(jnp.where(accept >= 1, 1, tries), 1, most).astype(jnp.int32)
  return _johnk(key, jnp.float32(1) / alpha, shape, most, limit)


def symmetric_beta(key: chex.PRNGKey, alpha, shape) -> chex.Array:
  """float32 draws of ``Beta(α, α)``: exact, and on CPU cheaper than ``jax.random.beta``.

  ``jax.random.beta`` draws two Gammas by rejection in ``while`` loops, which on
  CPU cost more than the mix itself for a CIFAR batch. For a symmetric Beta
  there are exact samplers without them: Ulrich's transformation for ``α ≥ ½``
  (no rejection at all) and a vectorised Jöhnk rejection for ``α < ½`` (a loop
  that normally runs zero times). On a 2-core CPU they took 0.06–0.14 ms for 256
  values where ``jax.random.beta`` took 0.20–0.39 ms; one value with ``α < ½``
  costs about the same as with ``jax.random.beta``.

  ``α`` may be traced (e.g. a schedule inside a jitted step): the program then
  takes it as an argument, chooses the sampler when it runs, and draws the same
  values as ``α`` known at trace time (both work on ``α`` rounded to float32, with
  JAX's default partitionable threefry); it is checked only when concrete.

  Args:
    key: a PRNG key.
    alpha: ``α > 0``, a Python or NumPy number or a scalar array (traced or not).
    shape: the output shape.

  Returns:
    float32 ``shape`` in ``[0, 1]``. As with any float32 sampler, values near 1
    round to 1.0 (within ``2^-25``), and on XLA:CPU, which flushes subnormals,
    values below ``2^-126`` become 0.0; both matter only for ``α`` well below 1.
  """
  _validation.check_alpha(alpha)
  shape = tuple(shape)
  value = _validation.concrete_number(alpha)
  if value is None:
    alpha = jnp.asarray(alpha).astype(jnp.float32)
    return jax.lax.cond(alpha >= 0.5, lambda k, a: _beta_ulrich(k, a, shape),
                        lambda k, a: _beta_johnk_traced(k, a, shape), key, alpha)
  alpha = np.float32(value)
  if alpha >= 0.5:
    return _beta_ulrich(key, alpha, shape)
  return _beta_johnk(key, float(alpha), shape)


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
      near 0 and 1 (weak mixing), large ``α`` near 0.5. May be traced
      (:func:`symmetric_beta`).
    mode: ``"batch"`` draws one ``λ`` shared by the batch, ``"elem"`` one per example.

  Returns:
    float32 ``[B]`` (all equal in ``"batch"`` mode).
  """
  _validation.check_alpha(alpha)
  _validation.check_mode(mode)
  shape = (1,) if mode == "batch" else (batch_size,)
  lam = symmetric_beta(key, alpha, shape)
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


def sample_partner_sets(
    key: chex.PRNGKey, batch_size: int, num: int, pairing: str = "permute"
) -> chex.Array:
  """Chooses ``num`` partners per example (n-way Mixup mixes with ``n − 1``).

  ``num = 1`` is :func:`sample_partners` (the same draw). For ``num ≥ 2`` the
  batch is put in a cyclic order and example ``i`` is paired with the ``j``-th
  example before it, ``j = 1, …, num``, as big_vision's n-way ``mixup`` pairs
  with ``jnp.roll(batch, j)`` (``big_vision/utils.py`` lines 729–731 at commit
  95ccb15): ``"roll"`` keeps the batch order, ``"permute"`` uses a uniformly
  random order. So each column is a bijection and, for ``num < B``, an example's
  partners are distinct and never itself. ``"flip"`` has one partner only.

  Returns:
    int32 ``[B, num]``.
  """
  _validation.check_pairing(pairing)
  num = _validation.static_value(num)
  if not isinstance(num, int) or isinstance(num, bool) or num < 1:
    raise ValueError(f"the number of partners must be an int >= 1, got {num!r}.")
  if num == 1:
    return sample_partners(key, batch_size, pairing)[:, None]
  if pairing == "flip":
    raise ValueError(
        "pairing='flip' gives one partner per example (B - 1 - i); n-way mixing with "
        f"{num} partners needs pairing='permute' or 'roll'.")
  index = jnp.arange(batch_size, dtype=jnp.int32)
  shifts = jnp.arange(1, num + 1, dtype=jnp.int32)
  if pairing == "roll":
    return (index[:, None] - shifts[None, :]) % batch_size
  order = jax.random.permutation(key, index)
  position = jnp.argsort(order).astype(jnp.int32)
  return order[(position[:, None] - shifts[None, :]) % batch_size]


def sample_dirichlet(
    key: chex.PRNGKey, batch_size: int, n: int, alpha, mode: str = "batch"
) -> chex.Array:
  """Draws n-way mixing weights ``(w_0, …, w_{n−1}) ~ Dirichlet(α·1_n)``.

  For ``n = 2`` this is ``(λ, 1 − λ)`` with ``λ`` from :func:`sample_lambda`
  (the same draw, ``Dirichlet(α, α)`` being ``Beta(α, α)``). For ``n ≥ 3`` it is
  ``jax.random.dirichlet``, as big_vision's n-way ``mixup`` draws it
  (``big_vision/utils.py`` line 723 at commit 95ccb15); big_vision then sorts the
  weights so the example keeps the largest (line 726), which mixjax does not:
  ``w_0``, the example's own weight, is ``Beta(α, (n − 1)·α)``, as Dirichlet says.

  Returns:
    float32 ``[B, n]`` rows summing to one (all rows equal in ``"batch"`` mode).
  """
  _validation.check_alpha(alpha)
  _validation.check_mode(mode)
  n = _validation.static_value(n)
  if not isinstance(n, int) or isinstance(n, bool) or n < 2:
    raise ValueError(f"n (examples per mix) must be an int >= 2, got {n!r}.")
  if n == 2:
    lam = sample_lambda(key, batch_size, alpha, mode)
    return jnp.stack([lam, 1 - lam], axis=1)
  num = 1 if mode == "batch" else batch_size
  concentration = jnp.full((n,), alpha, jnp.float32)
  weights = jax.random.dirichlet(key, concentration, (num,), dtype=jnp.float32)
  return jnp.broadcast_to(weights, (batch_size, n))
