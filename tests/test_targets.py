"""Mixing more than class labels (issue 23): dense maps, clips, multi-hot rows, bad ids.

A drawn mix says pixel by pixel where each output pixel comes from, so the checks are
exact: images whose pixel values are their own global indices (each example's
``H·W`` pixels numbered ``i·H·W + p``), mixed by a mix that only pastes, give the
source of every output pixel; a label map mixed by the same draw must be the
source's label, pixel for pixel. Blends are checked against the one-hot maps mixed
as images (the same kernel: bit for bit), clips frame by frame against the frame
mixed as an image, and derivatives in 16 bits against float32's to 16-bit rounding.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import mixjax as mx
from tests.tolerances import F32_EPS, assert_close_in_ulps

B, T, H, W, C, K = 4, 3, 24, 24, 3, 5   # 24 pixels: the least GridMix's defaults fit.
IGNORE = 255                             # A segmentation "ignore" id, outside [0, K).


def _mixers():
  """Every registered mixer, per example, mixing half the examples (the gated path too)."""
  out = {}
  for name in mx.list_mixers():
    extra = {"mixers": (mx.CutMix(), mx.FMix())} if name == "choice" else {}
    out[name] = mx.get_mixer(name, mode="elem", prob=0.75, **extra)
  return out


MIXERS = _mixers()
PASTE = tuple(n for n, m in MIXERS.items()
              if not mx.dense.blends(m.sample(jax.random.key(0), B, (H, W, C),
                                              images=jnp.zeros((B, H, W, C)))))


def _images(seed=0, shape=(B, H, W, C)):
  return jnp.asarray(np.random.default_rng(seed).integers(0, 256, shape) / 256, jnp.float32)


def _maps(seed=1, shape=(B, H, W)):
  maps = np.random.default_rng(seed).integers(0, K, shape).astype(np.int32)
  maps.flat[::7] = IGNORE
  return jnp.asarray(maps)


@functools.cache
def _draws(frames: int = 1) -> dict:
  """name -> a mix of every registered mixer for images (or clips of ``frames``)."""
  shape = (H, W, C) if frames == 1 else (frames, H, W, C)
  images = _images(2, (B,) + shape)
  keys = jax.random.split(jax.random.key(frames), len(MIXERS))
  return {n: m.sample(k, B, shape, images=images)
          for k, (n, m) in zip(keys, MIXERS.items(), strict=True)}


def test_the_registry_has_pasting_and_blending_mixers():
  assert {"cutmix", "fmix", "resizemix", "saliencymix", "gridmix", "choice"} <= set(PASTE)
  assert not {"mixup", "smoothmix", "policy"} & set(PASTE)


@functools.cache
def _sources_and_maps():
  """Per pasting mixer: each output pixel's source, the mixed maps, the own label weight."""
  index = jnp.arange(B * H * W, dtype=jnp.int32).reshape(B, H, W)

  @jax.jit
  def run(draws, maps):
    return {n: (mx.mix_images(draws[n], index), mx.mix_dense(draws[n], maps),
                jnp.diagonal(mx.mix_labels(draws[n], jnp.arange(B), B))) for n in PASTE}

  return jax.device_get(run(_draws(), _maps()))


@pytest.mark.parametrize("name", PASTE)
def test_integer_maps_take_the_label_of_each_pixels_source(name):
  source, mixed, weight = _sources_and_maps()[name]   # source: where each pixel comes from.
  index = np.arange(B * H * W).reshape(B, H, W)
  maps = _maps()
  assert mixed.dtype == jnp.int32 and mixed.shape == (B, H, W)
  np.testing.assert_array_equal(mixed, np.asarray(maps).reshape(-1)[source])
  moved = source != index
  assert name == "identity" or (moved.any() and (~moved).any()), name  # Some pasted.
  # The own label's weight (an example paired with itself keeps all of it) is the
  # exact fraction of the example's own pixels.
  own = (source // (H * W)) == np.arange(B)[:, None, None]
  np.testing.assert_allclose(weight, own.mean(axis=(1, 2)), rtol=0, atol=2 * F32_EPS)


def test_vmap_over_groups_mixes_each_group_with_its_draw():
  draws = [_draws()["cutmix"], _draws()["fmix"]]
  draws = mx.common_structure(*draws)
  stacked = jax.tree.map(lambda *v: jnp.stack(v), *draws)
  maps = jnp.stack([_maps(3), _maps(4)])
  got = jax.vmap(mx.mix_dense)(stacked, maps)
  for g in range(2):
    np.testing.assert_array_equal(got[g], mx.mix_dense(draws[g], maps[g]))


@pytest.mark.parametrize("name", ["mixup", "smoothmix", "policy"])
def test_a_blend_of_integer_maps_gives_soft_maps(name):
  params = _draws()[name]
  maps = _maps()
  with pytest.raises(ValueError, match="num_classes"):
    mx.mix_dense(params, maps)
  soft = mx.mix_dense(params, maps, num_classes=K)
  assert soft.dtype == jnp.float32 and soft.shape == (B, H, W, K)
  np.testing.assert_array_equal(
      soft, mx.mix_images(params, jax.nn.one_hot(maps, K), "NHWC"))
  # A pixel's row sums to the weight of its in-range sources: 1 where none is ignored,
  # less where one is (an ignored id has an all-zero one-hot row). To float32 rounding
  # of the blends' sums: 4 ulps of 1.
  valid = jnp.asarray(np.asarray(maps) != IGNORE, jnp.float32)
  weight = np.asarray(mx.mix_images(params, valid))
  assert_close_in_ulps(soft.sum(-1), weight, 4, scale=1.0)
  assert (weight > 1 - 4 * F32_EPS).mean() > 0.5 and (weight < 1 - 4 * F32_EPS).any()


def test_soft_maps_mix_like_images_and_keep_their_dtype():
  params = _draws()["cutmix"]
  soft = jax.nn.softmax(_images(5, (B, H, W, K)) * 4, axis=-1).astype(jnp.bfloat16)
  got = mx.mix_dense(params, soft)
  assert got.dtype == jnp.bfloat16
  np.testing.assert_array_equal(got, mx.mix_images(params, soft, "NHWC"))
  with pytest.raises(ValueError, match="K = num_classes"):
    mx.mix_dense(params, soft, num_classes=K + 1)
  with pytest.raises(ValueError, match=r"\[B, H, W, K\]"):
    mx.mix_dense(params, soft[..., 0])
  with pytest.raises(ValueError, match=r"\[B, H, W\]"):
    mx.mix_dense(params, _maps()[:, :, :, None, None])


@functools.cache
def _clip_results():
  """Every mixer's clip mix, applied to clips, to each frame, and to clip label maps."""
  clips = _images(6, (B, T, H, W, C))
  maps = jnp.asarray(np.random.default_rng(7).integers(0, K, (B, T, H, W)), jnp.int32)
  labels = jnp.arange(B) % K

  @jax.jit
  def run(draws):
    out = {}
    for name, params in draws.items():
      frames = [mx.apply_mix(params, clips[:, t], labels, K) for t in range(T)]
      mixed, y = mx.apply_mix(params, clips, labels, K)
      dense = mx.mix_dense(params, maps, num_classes=None if name in PASTE else K)
      dense_frames = [mx.mix_dense(params, maps[:, t], num_classes=None if name in PASTE
                                   else K) for t in range(T)]
      out[name] = (mixed, y, frames, dense, dense_frames)
    return out

  return jax.device_get(run(_draws(frames=T)))


@pytest.mark.parametrize("name", tuple(MIXERS))
def test_a_clip_takes_its_mix_in_every_frame(name):
  mixed, y, frames, dense, dense_frames = _clip_results()[name]
  assert mixed.shape == (B, T, H, W, C)
  for t in range(T):
    np.testing.assert_array_equal(mixed[:, t], frames[t][0], err_msg=f"frame {t}")
    np.testing.assert_array_equal(y, frames[t][1])
    np.testing.assert_array_equal(dense[:, t], dense_frames[t], err_msg=f"map {t}")


def test_vmap_over_groups_of_clips_and_sequences():
  """Two groups (e.g. two hosts' batches), each with its own draw, under vmap."""
  clips = jnp.stack([_images(23, (B, T, H, W, C)), _images(24, (B, T, H, W, C))])
  draws = mx.common_structure(_draws(frames=T)["cutmix"], _draws(frames=T)["fmix"])
  stacked = jax.tree.map(lambda *v: jnp.stack(v), *draws)
  got = jax.vmap(mx.mix_images)(stacked, clips)
  seqs = clips[:, :, 0, :, 0]                                     # [2, B, H, W]: [B, T, D]
  mix_seq = lambda key, x: mx.CutMix(num_classes=K, mode="elem")(key, x, jnp.arange(B) % K,
                                                                  axes=(1,))[0]
  keys = jax.random.split(jax.random.key(8), 2)
  got_seq = jax.vmap(mix_seq)(keys, seqs)
  for g in range(2):
    np.testing.assert_array_equal(got[g], mx.mix_images(draws[g], clips[g]))
    np.testing.assert_array_equal(got_seq[g], mix_seq(keys[g], seqs[g]))


def test_clip_layout_is_checked_and_mixers_take_clips():
  clips = _images(8, (B, T, H, W, C))
  x, y = mx.CutMix(num_classes=K)(jax.random.key(0), clips, jnp.arange(B) % K)
  assert x.shape == clips.shape and y.shape == (B, K)
  channels_first = jnp.transpose(clips, (0, 4, 1, 2, 3))        # [B, C, T, H, W]
  with pytest.raises(ValueError, match="channels-first"):
    mx.CutMix(num_classes=K)(jax.random.key(0), channels_first, jnp.arange(B) % K)
  with pytest.raises(ValueError, match="NTHWC"):
    mx.cutmix(jax.random.key(0), clips, jnp.arange(B) % K, num_classes=K, layout="NHWC")
  with pytest.raises(ValueError, match="for clips"):
    mx.cutmix(jax.random.key(0), clips[:, 0], jnp.arange(B) % K, num_classes=K,
              layout="NTHWC")
  assert mx.spatial_size((T, H, W, C)) == (H, W)


# Boxes, a soft mask, boxes from the pixels, and a choice of boxes or a bool mask (FMix).
PER_FRAME = ("cutmix", "smoothmix", "saliencymix", "choice")


@functools.cache
def _per_frame():
  """Per mixer: its per-frame draw, the clips' pixel sources (or the soft mix) and the
  soft mix frame by frame."""
  clips = _images(9, (B, T, H, W, C))
  index = jnp.arange(B * T * H * W, dtype=jnp.int32).reshape(B, T, H, W, 1)

  @jax.jit
  def run(key):
    out = {}
    for name, k in zip(PER_FRAME, jax.random.split(key, len(PER_FRAME)), strict=True):
      params = mx.sample_per_frame(MIXERS[name], k, B, clips.shape[1:], images=clips)
      if params.mask.dtype == jnp.bool_:
        out[name] = (params, mx.mix_images(params, index)[..., 0], None)
      else:
        frames = [mx.mix_images(params.replace(mask=params.mask[:, t]), clips[:, t])
                  for t in range(T)]
        out[name] = (params, mx.mix_images(params, clips), jnp.stack(frames, axis=1))
    return out

  return jax.device_get(run(jax.random.key(11))), np.asarray(index)[..., 0]


@pytest.mark.parametrize("name", PER_FRAME)
def test_per_frame_masks_paste_the_partner_clips_frame(name):
  (params, mixed, frames), own = _per_frame()[0][name], _per_frame()[1]
  assert params.mask.shape == (B, T, H, W)
  mask = np.asarray(params.mask, np.float64)
  np.testing.assert_allclose(params.label_weight, 1 - mask.mean(axis=(1, 2, 3)), rtol=0,
                             atol=4 * F32_EPS)
  assert (np.asarray(params.perm) != np.arange(B)).any() and mask.any()
  assert len({mask[i, t].tobytes() for i in range(B) for t in range(T)}) > B  # Per frame.
  if params.mask.dtype == jnp.bool_:
    source, perm = mixed, np.asarray(params.perm)
    partner = own[perm]
    expected = np.where(mask.astype(bool), partner, own)
    self_paired = perm == np.arange(B)
    expected[self_paired] = own[self_paired]
    np.testing.assert_array_equal(source, expected)
  else:
    np.testing.assert_array_equal(mixed, frames)


def test_per_frame_refuses_what_has_no_mask():
  for mixer, match in ((mx.CutMix(), "mode='elem'"), (mx.Mixup(mode="elem"), "blends"),
                       (mx.ResizeMix(mode="elem"), "resized")):
    with pytest.raises(ValueError, match=match):
      mx.sample_per_frame(mixer, jax.random.key(0), B, (T, H, W, C))
  with pytest.raises(ValueError, match=r"\(T, H, W, C\)"):
    mx.sample_per_frame(mx.CutMix(mode="elem"), jax.random.key(0), B, (H, W, C))


def _per_frame_soft_mask(seed: int) -> mx.MixParams:
  """A soft mask per frame (the per-frame kernel path), built without a sampler."""
  rng = np.random.default_rng(seed)
  mask = jnp.asarray(rng.integers(0, 5, (B, T, H, W)) / 4, jnp.float32)
  return mx.mask_params(jnp.asarray([1, 0, 3, 2], jnp.int32), mask)


@functools.cache
def _dense_and_clip_derivatives(dtype_name):
  """grad (fixed cotangent) of soft-map and clip mixes of every kind in ``dtype``."""
  dtype = jnp.dtype(dtype_name)
  draws, clip_draws = _draws(), {**_draws(frames=T), "per-frame": _per_frame_soft_mask(25)}
  soft = _images(12, (B, H, W, K)).astype(dtype)
  clips = _images(13, (B, T, H, W, C)).astype(dtype)
  w_soft = _images(14, (B, H, W, K)) - 0.5
  w_clip = _images(15, (B, T, H, W, C)) - 0.5

  @jax.jit
  def run(draws, clip_draws, soft, clips):
    out = {}
    for name, clip_params in clip_draws.items():
      g = lambda x, p=clip_params: jnp.sum(mx.mix_images(p, x).astype(jnp.float32) * w_clip)
      soft_grad = None
      if name in draws:
        f = lambda x, p=draws[name]: jnp.sum(mx.mix_dense(p, x).astype(jnp.float32) * w_soft)
        soft_grad = jax.grad(f)(soft)
      out[name] = (soft_grad, jax.grad(g)(clips))
    return out

  return jax.device_get(run(draws, clip_draws, soft, clips))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_soft_map_and_clip_gradients_equal_float32s_to_16_bit_rounding(dtype):
  """As tests/test_gradients.py: a cotangent term is rounded once to 16 bits and an
  input gets at most a few terms (itself, the examples that take it as a partner, a
  resized box reading it twice): 8 ulps of the cotangent's scale (0.5)."""
  want, got = _dense_and_clip_derivatives("float32"), _dense_and_clip_derivatives(dtype)
  eps = float(jnp.finfo(dtype).eps)
  assert "per-frame" in want
  for name in want:
    for a, b, what in zip(got[name], want[name], ("soft map", "clip"), strict=True):
      if b is None:
        continue
      assert a.dtype == jnp.dtype(dtype)
      assert np.abs(b).max() > 0, (name, what)
      assert_close_in_ulps(a.astype(np.float32), b, 8, scale=0.5, eps=eps,
                           err_msg=f"{what} grad of {name} in {dtype}")


def test_dense_maps_and_clips_mix_across_devices_as_on_one():
  """4 devices, a mix drawn for the global batch, each device its rows (shard_map):
  the same values as one device, for label maps and for clips."""
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:4]), ("data",))
  params = mx.CutMix(mode="elem").sample(jax.random.key(3), B, (T, H, W, C))
  soft_params = mx.SmoothMix(mode="elem").sample(jax.random.key(4), B, (H, W, C))
  per_frame = _per_frame_soft_mask(26)
  maps, clips = _maps(16), _images(17, (B, T, H, W, C))

  def step(p, q, r, maps, clips):
    return (mx.mix_dense(p, maps, axis_name="data"),
            mx.mix_dense(q, maps, num_classes=K, axis_name="data"),
            mx.mix_images(p, clips, axis_name="data"),
            mx.mix_images(r, clips, axis_name="data"))

  mapped = jax.jit(jax.shard_map(step, mesh=mesh,
                                 in_specs=(P(), P(), P(), P("data"), P("data")),
                                 out_specs=P("data")))
  shard = NamedSharding(mesh, P("data"))
  got = mapped(params, soft_params, per_frame, jax.device_put(maps, shard),
               jax.device_put(clips, shard))
  want = (mx.mix_dense(params, maps), mx.mix_dense(soft_params, maps, num_classes=K),
          mx.mix_images(params, clips), mx.mix_images(per_frame, clips))
  for g, w in zip(got, want, strict=True):
    np.testing.assert_array_equal(g, w)


def test_multi_hot_rows_mix_without_renormalising():
  rows = jnp.asarray([[1, 0, 1, 0, 0], [1, 1, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]],
                     jnp.float32)
  params = mx.Mixup(mode="elem").sample(jax.random.key(2), B)
  got = np.asarray(jax.jit(mx.mix_labels)(params, rows))
  w = np.asarray(params.label_weight, np.float32)[:, None]
  r, p = np.asarray(rows), np.asarray(rows)[np.asarray(params.perm)]
  own = np.asarray(params.perm) == np.arange(B)
  want = np.where(own[:, None], r, w * r + (1 - w) * p)
  assert_close_in_ulps(got, want, 2)
  both = (r == 1) & (p == 1)
  assert_close_in_ulps(got[both], np.ones(both.sum()), 2)         # In both: stays 1.
  assert not np.allclose(got.sum(1), 1)                            # Not renormalised.


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_sigmoid_bce_is_the_per_class_mean_and_linear_in_the_target(dtype):
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(B, K)) * 3, dtype)
  y1 = jnp.asarray(rng.integers(0, 2, (B, K)), jnp.float32)
  y2 = jnp.asarray(rng.integers(0, 2, (B, K)), jnp.float32)
  z = np.asarray(logits, np.float64)
  want = np.mean(np.logaddexp(0, z) - np.asarray(y1) * z, axis=-1)  # log(1 + e^z) − y·z
  got = mx.sigmoid_bce(logits, y1)
  assert got.dtype == jnp.float32 and got.shape == (B,)
  # float32 arithmetic on the logits (exact in every dtype here): a few ulps of the terms.
  assert_close_in_ulps(got, want, 16, scale=np.abs(z).max() + 1)
  lam = 0.3
  mixed = mx.sigmoid_bce(logits, lam * y1 + (1 - lam) * y2)
  assert_close_in_ulps(mixed, lam * got + (1 - lam) * mx.sigmoid_bce(logits, y2), 16,
                       scale=np.abs(z).max() + 1)
  grad = jax.grad(lambda z: mx.sigmoid_bce(z, y1).sum())(logits)
  assert grad.dtype == jnp.dtype(dtype)
  want_grad = (1 / (1 + np.exp(-z)) - np.asarray(y1)) / K
  assert_close_in_ulps(np.asarray(grad, np.float32), want_grad, 2,
                       scale=1 / K, eps=float(jnp.finfo(dtype).eps))
  assert mx.losses.get_loss("sigmoid_bce") is mx.sigmoid_bce


@pytest.mark.parametrize("call", [
    lambda y: mx.soft_labels(y, K),
    lambda y: mx.mix_labels(mx.identity_params(B), y, K),
    lambda y: mx.mixup(jax.random.key(0), _images(), y, num_classes=K),
    lambda y: mx.cutmix(jax.random.key(0), _images(), y, num_classes=K),
    lambda y: mx.CutMix(num_classes=K)(jax.random.key(0), _images(), y),
    lambda y: mx.mix(jax.random.key(0), _images(), y, mx.MixConfig(num_classes=K)),
], ids=["soft_labels", "mix_labels", "mixup", "cutmix", "CutMix", "mix"])
def test_concrete_ids_out_of_range_are_named(call):
  call(jnp.arange(B) % K)                                   # In range: fine.
  with pytest.raises(ValueError, match=r"got 2 outside: -1 \(at 1\), 5 \(at 3\)"):
    call(jnp.asarray([0, -1, 2, K]))
  with pytest.raises(ValueError, match="outside"):
    call(np.asarray([0, 1, 2, 99]))                          # NumPy ids too.


def test_traced_ids_are_checked_under_checkify_only():
  bad = jnp.asarray([0, 1, K + 2, 3])
  labels = jax.jit(lambda y: mx.soft_labels(y, K))
  np.testing.assert_array_equal(labels(bad).sum(1), [1, 1, 0, 1])   # Unchecked: a zero row.
  err, _ = checkify.checkify(labels)(bad)
  assert "got 7 at position 2" in err.get()
  err, _ = checkify.checkify(labels)(jnp.arange(B) % K)
  assert err.get() is None
  # Inside the user's jit, through a mixer and a shard_map over 4 devices.
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:4]), ("data",))
  step = jax.shard_map(
      lambda x, y: mx.apply_mix(mx.identity_params(B), x, y, K, axis_name="data")[1],
      mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P("data"))
  err, _ = checkify.checkify(jax.jit(step))(_images(), bad)
  assert "got 7" in err.get()


def _boxes_hand_case():
  boxes = jnp.asarray([[[2, 2, 10, 10], [12, 12, 18, 18], [0, 0, 0, 0]],
                       [[0, 0, 20, 10], [5, 12, 15, 19], [0, 0, 0, 0]]], jnp.float32)
  valid = jnp.asarray([[True, True, False], [True, True, False]])
  return boxes, valid, jnp.asarray([[1, 2, 0], [3, 4, 0]])


def test_cutmix_boxes_are_clipped_trimmed_and_dropped_by_the_rule():
  boxes, valid, classes = _boxes_hand_case()
  # Example 0 gets columns 5..11 of every row from example 1; example 1 rows and
  # columns 8..15 from example 0.
  params = mx.MixParams(perm=jnp.asarray([1, 0]), label_weight=jnp.asarray([0.65, 0.84]),
                        boxes=jnp.asarray([[0, 5, 20, 12], [8, 8, 16, 16]], jnp.int32))
  out = jax.jit(mx.mix_boxes, static_argnums=3)(params, boxes, valid, (20, 20), classes)
  np.testing.assert_array_equal(out.boxes[0], [
      [0, 0, 0, 0],       # The paste spans its rows: 3/8 left (columns 2..4), dropped;
      [12, 12, 18, 18],   # untouched,
      [0, 0, 0, 0],
      [0, 5, 20, 10],     # the partner's box cut to the pasted columns,
      [0, 0, 0, 0],       # nothing of it pasted,
      [0, 0, 0, 0]])
  kept_low = mx.mix_boxes(params, boxes, valid, (20, 20), min_visible=0.3)
  np.testing.assert_array_equal(kept_low.boxes[0, 0], [2, 2, 10, 5])   # Trimmed to what is left.
  np.testing.assert_allclose(out.visible, [[3 / 8, 1, 0, 1 / 2, 0, 0],
                                           [1 - 16 / 200, 1 - 28 / 70, 0, 4 / 64, 16 / 36, 0]],
                             rtol=0, atol=4 * F32_EPS)
  # Kept: at least half visible (3/8 of the first box is not), valid and real.
  np.testing.assert_array_equal(out.valid, [[0, 1, 0, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
  np.testing.assert_allclose(out.weight, np.where(out.valid, out.visible, 0), rtol=0,
                             atol=4 * F32_EPS)
  np.testing.assert_array_equal(out.classes, [[1, 2, 0, 3, 4, 0], [3, 4, 0, 1, 2, 0]])
  low = mx.mix_boxes(params, boxes, valid, (20, 20), min_visible=0.0)
  np.testing.assert_array_equal(low.valid, [[1, 1, 0, 1, 0, 0], [1, 1, 0, 1, 1, 0]])


def test_resizemix_maps_the_partners_boxes_into_the_pasted_rectangle():
  boxes, valid, _ = _boxes_hand_case()
  params = mx.MixParams(perm=jnp.asarray([1, 0]), label_weight=jnp.asarray([0.75, 0.75]),
                        boxes=jnp.asarray([[4, 4, 14, 14], [0, 10, 10, 20]], jnp.int32),
                        source_boxes=jnp.asarray([[0, 0, 20, 20]] * 2, jnp.int32))
  out = mx.mix_boxes(params, boxes, valid, (20, 20))
  # Example 1's boxes, scaled by 10/20 into [4, 14) × [4, 14).
  np.testing.assert_allclose(out.boxes[0, 3:5], [[4, 4, 14, 9], [6.5, 10, 11.5, 13.5]])
  np.testing.assert_array_equal(out.valid[0], [0, 1, 0, 1, 1, 0])  # 28/64 of box 0 shows.
  np.testing.assert_allclose(out.visible[0, 3:5], [1, 1])
  with pytest.raises(ValueError, match="n-way"):
    mx.mix_boxes(mx.Mixup(n=3).sample(jax.random.key(0), 2), boxes, valid, (20, 20))


def test_a_box_covered_whole_is_dropped_and_zeroed():
  boxes, valid, _ = _boxes_hand_case()
  params = mx.MixParams(perm=jnp.asarray([1, 0]), label_weight=jnp.asarray([0.2, 0.2]),
                        boxes=jnp.asarray([[0, 0, 16, 16]] * 2, jnp.int32))
  out = mx.mix_boxes(params, boxes, valid, (20, 20), min_visible=0.0)
  assert not out.valid[0, 0] and out.visible[0, 0] == 0
  np.testing.assert_array_equal(out.boxes[0, 0], [0, 0, 0, 0])
  np.testing.assert_array_equal(out.boxes[:, 2], 0)            # Padding stays zero.


def test_an_example_paired_with_itself_keeps_its_boxes():
  boxes, valid, _ = _boxes_hand_case()
  paste = jnp.asarray([[0, 5, 20, 12], [8, 8, 16, 16]], jnp.int32)
  cut = mx.MixParams(perm=jnp.asarray([0, 0]), label_weight=jnp.asarray([0.65, 0.84]),
                     boxes=paste)
  out = mx.mix_boxes(cut, boxes, valid, (20, 20))
  np.testing.assert_array_equal(out.boxes[0, :3], boxes[0])       # Example 0: unchanged.
  np.testing.assert_array_equal(out.valid[0], [1, 1, 0, 0, 0, 0])
  low = mx.mix_boxes(cut, boxes, valid, (20, 20), min_visible=0.0)
  np.testing.assert_array_equal(low.valid[0], [1, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(low.valid[1, 3:], [1, 1, 0])      # Example 1 got example 0's.
  # ResizeMix pastes a shrunken copy of an example into itself: its boxes, mapped in.
  resize = mx.MixParams(perm=jnp.asarray([0, 1]), label_weight=jnp.asarray([0.75, 1.0]),
                        boxes=jnp.asarray([[10, 10, 20, 20], [0, 0, 0, 0]], jnp.int32),
                        source_boxes=jnp.asarray([[0, 0, 20, 20]] * 2, jnp.int32))
  out = mx.mix_boxes(resize, boxes, valid, (20, 20))
  np.testing.assert_allclose(out.boxes[0, 3:5], [[11, 11, 15, 15], [16, 16, 19, 19]])
  np.testing.assert_array_equal(out.valid, [[1, 0, 0, 1, 1, 0], [1, 1, 0, 0, 0, 0]])
  np.testing.assert_allclose(out.visible[0, :2], [1 - 0 / 64, 0])   # Box 1 lies under the copy.
  np.testing.assert_array_equal(out.boxes[1, :2], boxes[1, :2])    # Nothing pasted: unchanged.


def test_mixup_keeps_every_box_weighted_by_its_images_lambda():
  boxes, valid, _ = _boxes_hand_case()
  params = mx.MixParams(perm=jnp.asarray([1, 0]), label_weight=jnp.asarray([0.3, 0.8]),
                        lam=jnp.asarray([0.3, 0.8]))
  out = mx.mix_boxes(params, boxes, valid, (20, 20))
  np.testing.assert_array_equal(out.valid, [[1, 1, 0, 1, 1, 0]] * 2)
  np.testing.assert_allclose(out.weight, [[0.3, 0.3, 0, 0.7, 0.7, 0], [0.8, 0.8, 0, 0.2, 0.2, 0]],
                             rtol=0, atol=4 * F32_EPS)


@functools.cache
def _every_mixers_boxes():
  """Per mixer: mixed boxes of random boxes, and the weight each pixel has from each
  example (one-hot example indicators mixed as images: the kernel's own weights)."""
  rng = np.random.default_rng(20)
  corners = rng.integers(0, H, (B, 4, 2, 2))
  boxes = jnp.asarray(np.concatenate([corners.min(2), corners.max(2) + 1], -1), jnp.float32)
  valid = jnp.asarray(rng.random((B, 4)) < 0.8)
  indicator = jnp.broadcast_to(jnp.eye(B)[:, None, None, :], (B, H, W, B))

  @jax.jit
  def run(draws):
    return {n: (mx.mix_boxes(p, boxes, valid, (H, W)), mx.mix_images(p, indicator, "NHWC"))
            for n, p in draws.items()}

  return jax.device_get(run(_draws())), np.asarray(boxes).astype(int), np.asarray(valid)


@pytest.mark.parametrize("name", tuple(MIXERS))
def test_every_mixers_own_boxes_are_judged_on_their_visible_pixels(name):
  results, boxes, valid = _every_mixers_boxes()
  out, weights = results[name]
  perm = np.asarray(_draws()[name].perm)
  for i in range(B):
    own = weights[i, :, :, i] if perm[i] != i else np.ones((H, W))
    for j, (t, left, b, r) in enumerate(boxes[i]):
      region = own[t:b, left:r]
      assert abs(out.visible[i, j] - (region > 1e-6).mean()) <= 4 * F32_EPS, (name, i, j)
      kept = valid[i, j] and (region > 1e-6).mean() >= 0.5
      assert out.valid[i, j] == kept, (name, i, j)
      if kept:
        assert abs(out.weight[i, j] - region.mean()) <= 8 * F32_EPS, (name, i, j)
    if perm[i] == i:
      assert not out.valid[i, boxes.shape[1]:].any()      # No second copy of itself.
    elif _draws()[name].boxes is None:   # Masks and blends leave the partner's boxes whole.
      theirs = weights[i, :, :, perm[i]]
      n = boxes.shape[1]
      for j, (t, left, b, r) in enumerate(boxes[perm[i]]):
        region = theirs[t:b, left:r]
        want = boxes[perm[i], j] if out.valid[i, n + j] else np.zeros(4)
        np.testing.assert_array_equal(out.boxes[i, n + j], want)
        assert abs(out.visible[i, n + j] - (region > 1e-6).mean()) <= 4 * F32_EPS, (name, i, j)
        assert out.valid[i, n + j] == (valid[perm[i], j] and (region > 1e-6).mean() >= 0.5)


def test_boxes_under_vmap_are_each_groups_boxes():
  boxes, valid, classes = _boxes_hand_case()
  draws = mx.common_structure(  # A paste and a blend, drawn by hand (cheap to build).
      mx.MixParams(perm=jnp.asarray([1, 0]), label_weight=jnp.asarray([0.65, 0.84]),
                   boxes=jnp.asarray([[0, 5, 20, 12], [8, 8, 16, 16]], jnp.int32)),
      mx.MixParams(perm=jnp.asarray([1, 0]), label_weight=jnp.asarray([0.3, 0.8]),
                   lam=jnp.asarray([0.3, 0.8])))
  stacked = jax.tree.map(lambda *v: jnp.stack(v), *draws)
  got = jax.vmap(lambda p: mx.mix_boxes(p, boxes, valid, (20, 20), classes))(stacked)
  for g in range(2):
    want = mx.mix_boxes(draws[g], boxes, valid, (20, 20), classes)
    for field in ("boxes", "valid", "classes"):
      np.testing.assert_array_equal(getattr(got, field)[g], getattr(want, field))
    for field in ("weight", "visible"):   # Means over a box, summed in another order: 4 ulps.
      assert_close_in_ulps(getattr(got, field)[g], getattr(want, field), 4, scale=1.0)


@pytest.mark.parametrize("shape, axes", [((B, 6, 5), (1,)), ((B, 6, 5, 2), (2, 1)),
                                         ((B, 6, 5, 2, 3), (-1,)), ((B, 7), (1,))])
def test_spatial_view_round_trips(shape, axes):
  x = jnp.arange(np.prod(shape)).reshape(shape)
  view = mx.to_spatial(x, axes)
  assert view.ndim == 4 and view.shape[0] == B
  assert view.shape[1] == shape[axes[0]]
  np.testing.assert_array_equal(mx.from_spatial(view, shape, axes), x)
  for bad in ((0,), (1, 1), (1, 2, 3), 1, (len(shape),)):
    with pytest.raises(ValueError, match="axes"):
      mx.to_spatial(x, bad)


def test_cutmix_and_fmix_paste_time_segments_of_sequences():
  seq_len, features = 40, 3
  seqs = jnp.arange(B * seq_len * features, dtype=jnp.float32).reshape(B, seq_len, features)
  source = lambda x: np.asarray(x[..., 0]) // (seq_len * features)     # Each step's example.
  for mixer in (mx.CutMix(num_classes=B, mode="elem"),
                mx.FMix(num_classes=B, mode="elem", spectrum="paper")):
    x, y = mixer(jax.random.key(4), seqs, jnp.arange(B), axes=(1,))
    # Every feature of a time step comes from one example: the mask spans the features.
    np.testing.assert_array_equal(np.asarray(x) // (seq_len * features),
                                  np.repeat(source(x)[..., None], features, -1))
    np.testing.assert_allclose(np.diagonal(np.asarray(y)),
                               (source(x) == np.arange(B)[:, None]).mean(1), rtol=0,
                               atol=2 * F32_EPS)
    assert (source(x) != np.arange(B)[:, None]).any(), type(mixer).__name__
  # FMix masks may be several segments; CutMix's is one (at most two changes of source).
  x, _ = mx.CutMix(num_classes=B, mode="elem")(jax.random.key(5), seqs, jnp.arange(B), axes=(1,))
  for row in source(x):
    assert len(np.flatnonzero(np.diff(row))) <= 2


def test_a_segment_cuts_a_ratio_one_minus_lambda_of_its_axis():
  lam = jnp.asarray([0.0, 0.25, 0.5, 0.9, 1.0])
  for rule in ("reference", "full_side"):
    boxes = np.asarray(mx.sample_boxes(jax.random.key(0), lam, 1, 64, rule))
    np.testing.assert_array_equal(boxes[:, [0, 2]], [[0, 1]] * 5)     # The unit axis, whole.
    cut = np.floor(64 * (1 - np.asarray(lam))).astype(int)
    side = cut if rule == "full_side" else 2 * (cut // 2)
    unclipped = (boxes[:, 1] > 0) & (boxes[:, 3] < 64)
    np.testing.assert_array_equal((boxes[:, 3] - boxes[:, 1])[unclipped], side[unclipped])
  boxes = np.asarray(mx.sample_boxes_minmax(jax.random.key(1), 50, 64, 1, (0.2, 0.8)))
  np.testing.assert_array_equal(boxes[:, [1, 3]], [[0, 1]] * 50)
  assert ((boxes[:, 2] - boxes[:, 0] >= 12) & (boxes[:, 2] - boxes[:, 0] <= 51)).all()


def test_two_axes_are_the_image_path():
  specs = _images(21, (B, H, W))
  labels = jnp.arange(B) % K
  want = mx.CutMix(num_classes=K)(jax.random.key(6), specs, labels)
  got = mx.CutMix(num_classes=K)(jax.random.key(6), specs, labels, axes=(1, 2))
  for g, w in zip(got, want, strict=True):
    np.testing.assert_array_equal(g, w)
  with pytest.raises(ValueError, match="layout"):
    mx.CutMix(num_classes=K)(jax.random.key(6), specs, labels, axes=(1, 2), layout="NHWC")


@pytest.mark.parametrize("name", ["resizemix", "saliencymix", "gridmix", "smoothmix"])
def test_mixers_without_a_1d_form_refuse_a_segment(name):
  seqs = _images(22, (B, 32, 3))
  with pytest.raises(ValueError, match="no 1-D form"):
    mx.get_mixer(name, num_classes=K)(jax.random.key(0), seqs, jnp.arange(B) % K, axes=(1,))
  policy = mx.Choice(mixers=(mx.CutMix(), mx.ResizeMix()), num_classes=K)
  with pytest.raises(ValueError, match="no 1-D form"):
    policy(jax.random.key(0), seqs, jnp.arange(B) % K, axes=(1,))
