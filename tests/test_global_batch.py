"""Mixing across the global batch on several devices (issue 20).

A mix drawn for the global batch and applied on each device's shard with
``axis_name`` (inside ``shard_map`` or ``pmap``), or under ``jax.jit`` on a batch
sharded over the devices, gives every example the same partner and the same
values as one device mixing the whole batch, whatever the pairing; and only the
rows a pairing needs move between devices (checked in the compiled programs).
Runs on the 4 CPU devices the conftest forces.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import mixjax as mx
from mixjax.params import common_structure, select_params
from tests.tolerances import assert_close_in_ulps

DEVICES = 4
H, W, C, K = 8, 8, 3, 5
PAIRINGS = ("permute", "roll", "flip")


def _mesh():
  return jax.sharding.Mesh(np.asarray(jax.devices()[:DEVICES]), ("data",))


def _batch(global_batch: int, dtype=jnp.float32):
  rng = np.random.default_rng(global_batch)
  images = jnp.asarray(rng.integers(0, 256, (global_batch, H, W, C)) / 256, dtype)
  labels = jnp.asarray(np.arange(global_batch) % K)
  return images, labels


@functools.partial(jax.jit, static_argnums=(1, 2))
def _everything(key, global_batch: int, pairing: str) -> mx.MixParams:
  """Per example one of 3-way Mixup, ResizeMix, a soft mask, CutMix or nothing,
  all with ``pairing``: every branch of the kernel in one mix."""
  keys = jax.random.split(key, 6)
  shape = (H, W, C)
  n = 2 if pairing == "flip" else 3   # flip pairs with one partner only.
  mixes = (mx.Mixup(n=n, mode="elem", pairing=pairing).sample(keys[0], global_batch, shape),
           mx.ResizeMix(mode="elem", pairing=pairing).sample(keys[1], global_batch, shape),
           mx.SmoothMix(mode="elem", pairing=pairing).sample(keys[2], global_batch, shape),
           mx.CutMix(mode="elem", pairing=pairing).sample(keys[3], global_batch, shape),
           mx.identity_params(global_batch))
  assert all(m.pairing == pairing for m in mixes[:-1]), [m.pairing for m in mixes]
  which = jax.random.randint(keys[4], (global_batch,), 0, len(mixes))
  return select_params(which, common_structure(*mixes))


@functools.cache
def _sharded_apply(backend: str):
  """``apply_mix`` on each device's shard with ``axis_name``, under shard_map or pmap."""
  step = lambda params, x, y: mx.apply_mix(params, x, y, K, axis_name="data")
  if backend == "pmap":
    mapped = jax.pmap(step, axis_name="data", in_axes=(None, 0, 0),
                      devices=jax.devices()[:DEVICES])

    def run(params, x, y):
      split = lambda v: v.reshape((DEVICES, v.shape[0] // DEVICES) + v.shape[1:])
      xs, ys = mapped(params, split(x), split(y))
      return xs.reshape(x.shape), ys.reshape((-1, K))
    return run
  mesh = _mesh()
  mapped = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P("data"), P("data")),
                                 out_specs=(P("data"), P("data"))))
  sharded = NamedSharding(mesh, P("data"))
  return lambda params, x, y: mapped(params, jax.device_put(x, sharded),
                                     jax.device_put(y, sharded))


_whole_apply = jax.jit(lambda params, x, y: mx.apply_mix(params, x, y, K))


@pytest.mark.parametrize("pairing", PAIRINGS)
@pytest.mark.parametrize("global_batch, backend", [
    (4, "shard_map"), (16, "pmap")])  # One example and four per device; the same kernel.
def test_shards_mix_as_one_device_mixes_the_global_batch(pairing, global_batch, backend):
  """Bit for bit: each row is computed by the same float operations either way.

  A global batch of 4 on 4 devices (one example each) mixes as on one device:
  partners come from the other devices (3-way Mixup's second partner two rows
  back comes through the all-gather path).
  """
  params = _everything(jax.random.key(global_batch), global_batch, pairing)
  images, labels = _batch(global_batch)
  want = jax.device_get(_whole_apply(params, images, labels))
  got = jax.device_get(_sharded_apply(backend)(params, images, labels))
  np.testing.assert_array_equal(got[0], want[0])
  np.testing.assert_array_equal(got[1], want[1])
  moved = np.asarray(params.perm) != np.arange(global_batch)
  assert moved.sum() >= global_batch // 2   # Most examples really have another partner,
  devices_apart = np.asarray(params.perm)[moved] // (global_batch // DEVICES)
  assert (devices_apart != (np.arange(global_batch) // (global_batch // DEVICES))[moved]).any()


@pytest.mark.parametrize("pairing", PAIRINGS)
def test_jit_over_a_sharded_batch_mixes_as_one_device(pairing):
  """Under jax.jit with the batch sharded over 4 devices (no axis_name): the same
  values as unsharded; XLA places the partners."""
  params = _everything(jax.random.key(7), 16, pairing)
  images, labels = _batch(16)
  want = jax.device_get(_whole_apply(params, images, labels))
  sharded = NamedSharding(_mesh(), P("data"))
  got = jax.device_get(_whole_apply(params, jax.device_put(images, sharded),
                                    jax.device_put(labels, sharded)))
  np.testing.assert_array_equal(got[0], want[0])
  np.testing.assert_array_equal(got[1], want[1])


def _collectives(hlo: str) -> set[str]:
  names = ("all-gather", "collective-permute", "all-to-all", "all-reduce")
  return {n for n in names if n in hlo}


@pytest.mark.parametrize("pairing,moves", [
    ("roll", {"collective-permute"}),
    ("flip", {"collective-permute"}),
    ("permute", {"all-gather"}),
])
def test_pairings_move_only_what_they_need(pairing, moves):
  """Pixels of a 2-way mix inside shard_map: roll sends one row to the next device,
  flip one shard to the mirror device (collective permutes); only a random
  permutation gathers the whole batch. (The labels' gather is excluded: the
  pixels alone are compiled.)"""
  mixer = mx.Mixup(mode="elem", pairing=pairing)
  params = mixer.sample(jax.random.key(0), 16, (H, W, C))
  assert params.pairing == pairing
  images, _ = _batch(16)
  mesh = _mesh()
  step = jax.jit(jax.shard_map(lambda p, x: mx.mix_images(p, x, axis_name="data"),
                               mesh=mesh, in_specs=(P(), P("data")), out_specs=P("data")))
  sharded = jax.device_put(images, NamedSharding(mesh, P("data")))
  hlo = step.lower(params, sharded).compile().as_text()
  assert _collectives(hlo) == moves


def test_a_mix_for_another_batch_is_refused():
  params = mx.Mixup().sample(jax.random.key(0), 8)
  images, labels = _batch(16)
  mesh = _mesh()
  step = jax.shard_map(lambda p, x, y: mx.apply_mix(p, x, y, K, axis_name="data"),
                       mesh=mesh, in_specs=(P(), P("data"), P("data")),
                       out_specs=(P("data"), P("data")))
  sharded = NamedSharding(mesh, P("data"))
  with pytest.raises(ValueError, match="global batch: 4 examples on each of 4 devices is 16"):
    jax.eval_shape(step, params, jax.device_put(images, sharded),
                   jax.device_put(labels, sharded))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_manifold_plan_mixes_hidden_states_across_devices(dtype):
  """A MixPlan with axis_name mixes a hidden layer of the shards as one device does,
  and its gradient (of a loss summed over devices) is the single device's."""
  plan = mx.sample_plan(jax.random.key(3), 16, (0, 1), n=3, mode="elem", pairing="roll")
  assert plan.params.pairing == "roll"
  plan = plan.replace(layer=jnp.ones((), jnp.int32))
  hidden = _batch(16, dtype)[0].reshape(16, 4, 6, 8)
  weights = jnp.asarray(np.random.default_rng(0).normal(size=hidden.shape), jnp.float32)

  def loss(h, w, plan):
    return jnp.sum(plan.mix_at(1, plan.mix_at(0, h)).astype(jnp.float32) * w)

  want = jax.device_get(jax.jit(jax.value_and_grad(loss))(hidden, weights, plan))
  mesh = _mesh()

  def shard_loss(h, w, plan):
    value, grad = jax.value_and_grad(loss)(h, w, plan.replace(axis_name="data"))
    return jax.lax.psum(value, "data"), grad

  step = jax.jit(jax.shard_map(shard_loss, mesh=mesh, in_specs=(P("data"), P("data"), P()),
                               out_specs=(P(), P("data"))))
  sharded = NamedSharding(mesh, P("data"))
  got = jax.device_get(step(jax.device_put(hidden, sharded), jax.device_put(weights, sharded),
                            plan))
  # Each hidden value's gradient sums its own term and its partners' (3-way: 3
  # terms) in another order on the devices: 4 ulps of the weights' scale.
  assert_close_in_ulps(np.asarray(got[1], np.float32), np.asarray(want[1], np.float32), 4,
                       scale=weights, eps=float(jnp.finfo(dtype).eps))
  # The loss is summed in another order (per device, then over devices): a few
  # float32 ulps of the sum of |terms|.
  scale = float(np.sum(np.abs(np.asarray(hidden, np.float32) * np.asarray(weights))))
  assert abs(float(got[0]) - float(want[0])) <= 64 * np.finfo(np.float32).eps * scale


@pytest.mark.parametrize("pairing", PAIRINGS)
def test_every_sampler_records_its_pairing(pairing):
  """Each registered mixer's draw says how its partners were drawn (what the
  kernel relies on to move only a row or a shard; traced only)."""
  for name in mx.list_mixers():
    if name in ("identity", "choice"):
      continue
    mixer = mx.get_mixer(name, pairing=pairing)
    images = jnp.zeros((8, 24, 24, 3)) if mixer.uses_images else None
    sample = functools.partial(mixer.sample, batch_size=8, image_shape=(24, 24, 3),
                               images=images)
    params = jax.eval_shape(sample, jax.random.key(0))
    assert params.pairing == pairing, name


@pytest.mark.parametrize("pairing", PAIRINGS)
def test_jit_over_an_explicitly_sharded_batch_mixes_as_one_device(pairing):
  """``jax.make_mesh`` makes Explicit axes, over which a gather must name its
  result's sharding: the kernel does, for every pairing. XLA may fuse a blend
  into an FMA differently for the sharded program: 2 ulps of the pixels' scale."""
  mesh = jax.make_mesh((DEVICES,), ("data",),
                       axis_types=(jax.sharding.AxisType.Explicit,))
  params = _everything(jax.random.key(9), 16, pairing)
  images, labels = _batch(16)
  want = jax.device_get(_whole_apply(params, images, labels))
  sharded = NamedSharding(mesh, P("data"))
  got = jax.device_get(_whole_apply(params, jax.device_put(images, sharded),
                                    jax.device_put(labels, sharded)))
  assert_close_in_ulps(got[0], want[0], 2, scale=1.0)
  assert_close_in_ulps(got[1], want[1], 2, scale=1.0)
