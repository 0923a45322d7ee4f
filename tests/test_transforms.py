"""The ops (Mixup, CutMix, the policy and the mask methods) under jit, vmap, grad,
shard_map and pmap, with typed and legacy keys."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import mixjax
from mixjax import MixConfig
from tests.tolerances import assert_close_in_ulps

B = 8  # Batch == num_classes with labels = arange(B), as in the other test files, so the
SHAPE = (B, 8, 8, 3)  # canonical calls below reuse their compilations.
LABELS = jnp.arange(B, dtype=jnp.int32)
POLICY = MixConfig(mixup_alpha=1.0, cutmix_alpha=1.0, mode="elem", num_classes=B)
BLEND_ATOL = 2.0**-22  # float32 rounding of λ·x + (1 − λ)·p for values in [0, 1].


def _mixup(key, x, labels=LABELS):
  return mixjax.mixup(key, x, labels, num_classes=B, mode="elem", pairing="permute")


def _cutmix(key, x, labels=LABELS):
  return mixjax.cutmix(key, x, labels, num_classes=B, mode="elem", minmax=None,
                       pairing="permute")


def _mix(key, x, labels=LABELS):
  return mixjax.mix(key, x, labels, POLICY)


def _eager_mixup(key, x, labels=LABELS):
  return mixjax.apply_mix(mixjax.sample_mixup(key, B, mode="elem"), x, labels, B)


def _eager_cutmix(key, x, labels=LABELS):
  return mixjax.apply_mix(mixjax.sample_cutmix(key, B, (8, 8), mode="elem"), x, labels, B)


def _eager_mix(key, x, labels=LABELS):
  return mixjax.apply_mix(mixjax.sample_mix(key, B, (8, 8), POLICY), x, labels, B)


# The mask methods, elem mode. GridMix's CIFAR defaults (2–6 holes) do not fit 8×8
# images (at most 2 holes across the narrowest crop, 4 pixels wide): 1–2 holes here.
GRID = {"n_holes": (1, 2)}


def _fmix(key, x, labels=LABELS):
  return mixjax.fmix(key, x, labels, num_classes=B, mode="elem")


def _gridmix(key, x, labels=LABELS):
  return mixjax.gridmix(key, x, labels, num_classes=B, mode="elem", **GRID)


def _smoothmix(key, x, labels=LABELS):
  return mixjax.smoothmix(key, x, labels, num_classes=B, mode="elem")


def _saliencymix(key, x, labels=LABELS):
  return mixjax.saliencymix(key, x, labels, num_classes=B, mode="elem")


def _eager_fmix(key, x, labels=LABELS):
  return mixjax.apply_mix(mixjax.sample_fmix(key, B, (8, 8), mode="elem"), x, labels, B)


def _eager_gridmix(key, x, labels=LABELS):
  return mixjax.apply_mix(mixjax.sample_gridmix(key, B, (8, 8), mode="elem", **GRID), x,
                          labels, B)


def _eager_smoothmix(key, x, labels=LABELS):
  return mixjax.apply_mix(mixjax.sample_smoothmix(key, B, (8, 8), mode="elem"), x, labels, B)


def _eager_saliencymix(key, x, labels=LABELS):
  return mixjax.apply_mix(mixjax.sample_saliencymix(key, x, mode="elem"), x, labels, B)


OPS = {"mixup": _mixup, "cutmix": _cutmix, "policy": _mix, "fmix": _fmix,
       "gridmix": _gridmix, "smoothmix": _smoothmix, "saliencymix": _saliencymix}
EAGER = {"mixup": _eager_mixup, "cutmix": _eager_cutmix, "policy": _eager_mix,
         "fmix": _eager_fmix, "gridmix": _eager_gridmix, "smoothmix": _eager_smoothmix,
         "saliencymix": _eager_saliencymix}
PASTE = ("cutmix", "fmix", "gridmix", "saliencymix")  # Pixels copied: exact everywhere.
MASKS = ("fmix", "gridmix", "smoothmix", "saliencymix")


def _images(shape=SHAPE, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), jnp.float32)


def _partner(labels):
  """Each example's partner, read off soft labels of arange(B) ids."""
  y = np.asarray(labels)
  off = y - np.diag(np.diag(y))
  return np.where(off.max(axis=1) > 0, off.argmax(axis=1), np.arange(y.shape[0]))


@pytest.mark.parametrize("name", list(OPS))
def test_jit_equals_eager(name):
  # The jitted op against the un-jitted sample_* + apply_mix path, op by op. Pasted
  # pixels agree exactly; blends to float32 rounding (XLA may fuse multiply-adds).
  x = _images()
  for seed in range(2):
    key = jax.random.key(seed)
    jitted, eager = OPS[name](key, x), EAGER[name](key, x)
    chex.assert_trees_all_close(jitted, eager, rtol=0, atol=BLEND_ATOL)
    if name in PASTE:
      chex.assert_trees_all_equal(jitted[0], eager[0])


@pytest.mark.parametrize("name", list(OPS))
def test_same_key_same_output_and_new_key_new_draw(name):
  x = _images(seed=1)
  op = OPS[name]
  outs = [op(jax.random.key(seed), x) for seed in range(4)]
  chex.assert_trees_all_equal(outs[0], op(jax.random.key(0), x))
  labels = [np.asarray(y) for _, y in outs]
  partners = [tuple(_partner(y)) for y in labels]
  assert len(set(partners)) == 4, "different keys should draw different partners"
  for a in range(4):
    for b in range(a):
      assert not np.array_equal(labels[a], labels[b])
      assert not np.array_equal(outs[a][0], outs[b][0])


@pytest.mark.parametrize("name", list(OPS))
def test_vmap_over_groups_equals_loop(name):
  groups = 3
  op = OPS[name]
  keys = jax.random.split(jax.random.key(5), groups)
  xs = _images((groups,) + SHAPE, seed=2)
  ys = jnp.stack([jnp.roll(LABELS, g) for g in range(groups)])
  out, y = jax.vmap(op)(keys, xs, ys)
  assert out.shape == xs.shape and y.shape == (groups, B, B)
  for g in range(groups):
    out_g, y_g = op(keys[g], xs[g], ys[g])
    np.testing.assert_allclose(out[g], out_g, rtol=0, atol=BLEND_ATOL)
    np.testing.assert_allclose(y[g], y_g, rtol=0, atol=1e-7)
    if name in PASTE:
      np.testing.assert_array_equal(out[g], out_g)


def test_grad_of_mixup_is_analytic():
  # d Σ c·x̃ / dx_j = λ_j·c_j + Σ_{i: perm[i] = j} (1 − λ_i)·c_i; with c = 1 this is
  # λ_j + Σ_{i: perm[i] = j} (1 − λ_i) for every pixel of x_j.
  x = _images(seed=3)
  rng = np.random.default_rng(4)
  for seed in range(2):
    key = jax.random.key(seed)
    _, y = _mixup(key, x)
    lam = np.diag(np.asarray(y)).astype(np.float64)
    perm = _partner(y)
    for c in (np.ones(SHAPE), rng.normal(size=SHAPE)):
      grad = jax.grad(lambda x, c=c, key=key: (_mixup(key, x)[0] * c).sum())(x)
      expected = lam[:, None, None, None] * c
      for i in range(B):
        if perm[i] != i:
          expected[perm[i]] += (1 - lam[i]) * c[i]
      # λ·c and (1 − λ)·c rounded, and their sum: ≤ 2 ulps of max|c|, plus
      # ½ ulp for c itself in float32.
      assert_close_in_ulps(grad, expected, 3, scale=c)
    sum_grad = jax.grad(lambda x, key=key: _mixup(key, x)[0].sum())(x)
    per_example = lam.copy()
    for i in range(B):
      if perm[i] != i:
        per_example[perm[i]] += 1 - lam[i]
    np.testing.assert_allclose(sum_grad, np.broadcast_to(
        per_example[:, None, None, None], SHAPE), rtol=1e-6)


def test_grad_of_cutmix_routes_pixels():
  # d Σ c·x̃ / dx_j = (1 − M_j)·c_j + Σ_{i: perm[i] = j} M_i·c_i, M the pasted masks.
  x = _images(seed=5)
  c = np.random.default_rng(6).normal(size=SHAPE)
  key = jax.random.key(7)
  grad = jax.grad(lambda x: (_cutmix(key, x)[0] * c).sum())(x)
  params = mixjax.sample_cutmix(key, B, (8, 8), mode="elem")
  mask = np.asarray(mixjax.box_mask(params.boxes, 8, 8))[..., None].astype(np.float64)
  perm = np.asarray(params.perm)
  expected = (1 - mask) * c
  for i in range(B):
    expected[perm[i]] += mask[i] * c[i]
  np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-6)
  assert mask.any() and not mask.all()


KEY_STYLES = {"typed": jax.random.key, "legacy": jax.random.PRNGKey}


@pytest.mark.parametrize("style", list(KEY_STYLES))
def test_shard_map_equals_per_shard_calls(style):
  devices = 4
  assert len(jax.devices()) >= devices, "tests/conftest.py forces 4 CPU devices"
  mesh = jax.make_mesh((devices,), ("data",))
  keys = jax.random.split(KEY_STYLES[style](0), devices)
  x = _images((devices * B,) + SHAPE[1:], seed=8)
  y = np.tile(np.asarray(LABELS), devices)
  sharded = jax.device_put((keys, x, y), NamedSharding(mesh, P("data")))

  @jax.jit
  @jax.shard_map(mesh=mesh, in_specs=(P("data"), P("data"), P("data")),
                 out_specs=(P("data"), P("data")))
  def per_device(key, x, y):
    return _mixup(key[0], x, y)  # Each device: its own key and B examples.

  out, labels = per_device(*sharded)
  assert out.sharding.spec[0] == "data"
  out, labels = np.asarray(out), np.asarray(labels)
  assert out.shape == x.shape and labels.shape == (devices * B, B)
  x, y = np.asarray(x), np.asarray(y)  # Sliced by NumPy: no eager slice programs.
  for d in range(devices):
    part = slice(d * B, (d + 1) * B)
    out_d, labels_d = _mixup(keys[d], x[part], y[part])
    np.testing.assert_allclose(out[part], out_d, rtol=0, atol=BLEND_ATOL)
    np.testing.assert_allclose(labels[part], labels_d, rtol=0, atol=1e-7)
  # Devices draw independently.
  assert len({tuple(_partner(labels[d * B:(d + 1) * B])) for d in range(devices)}) > 1


@pytest.mark.parametrize("name", MASKS)
def test_mask_methods_under_shard_map_equal_per_shard_calls(name):
  """Each of the 4 devices mixes its own shard with its own key (elem mode)."""
  devices = 4
  mesh = jax.make_mesh((devices,), ("data",))
  op = OPS[name]
  keys = jax.random.split(jax.random.key(11), devices)
  x = _images((devices * B,) + SHAPE[1:], seed=12)
  y = np.tile(np.asarray(LABELS), devices)
  sharded = jax.device_put((keys, x, y), NamedSharding(mesh, P("data")))
  per_device = jax.jit(jax.shard_map(
      lambda key, x, y: op(key[0], x, y), mesh=mesh,
      in_specs=(P("data"), P("data"), P("data")), out_specs=(P("data"), P("data"))))
  out, labels = per_device(*sharded)
  assert out.sharding.spec[0] == "data"
  out, labels = np.asarray(out), np.asarray(labels)
  x, y = np.asarray(x), np.asarray(y)  # Sliced by NumPy: no eager slice programs.
  for d in range(devices):
    part = slice(d * B, (d + 1) * B)
    out_d, labels_d = op(keys[d], x[part], y[part])
    if name in PASTE:
      np.testing.assert_array_equal(out[part], out_d)
    else:
      np.testing.assert_allclose(out[part], out_d, rtol=0, atol=BLEND_ATOL)
    np.testing.assert_allclose(labels[part], labels_d, rtol=0, atol=1e-7)
  assert len({tuple(_partner(labels[d * B:(d + 1) * B])) for d in range(devices)}) > 1


@pytest.mark.parametrize("style", list(KEY_STYLES))
def test_pmap_equals_per_device_calls(style):
  devices = 4
  keys = jax.random.split(KEY_STYLES[style](1), devices)
  x = _images((devices,) + SHAPE, seed=9)
  y = np.tile(np.asarray(LABELS), (devices, 1))
  out, labels = jax.pmap(_mixup)(keys, x, y)
  x, y = np.asarray(x), np.asarray(y)  # Sliced by NumPy: no eager slice programs.
  for d in range(devices):
    out_d, labels_d = _mixup(keys[d], x[d], y[d])
    np.testing.assert_allclose(out[d], out_d, rtol=0, atol=BLEND_ATOL)
    np.testing.assert_allclose(labels[d], labels_d, rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", ["cutmix", "policy"])
def test_legacy_keys_match_typed_keys(name):
  # PRNGKey(s) holds the same bits as key(s), so every op draws the same mix.
  x = _images(seed=10)
  for seed in range(2):
    chex.assert_trees_all_close(OPS[name](jax.random.PRNGKey(seed), x),
                                OPS[name](jax.random.key(seed), x), rtol=0, atol=BLEND_ATOL)
  legacy = mixjax.sample_plan(jax.random.PRNGKey(3), B, 3)
  typed = mixjax.sample_plan(jax.random.key(3), B, 3)
  chex.assert_trees_all_equal(legacy, typed)
