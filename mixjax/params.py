"""What a drawn mix is (``MixParams``) and how it is applied.

Every method in mixjax samples a :class:`MixParams` from a key and then applies
it with :func:`mix_images` / :func:`mix_labels`. Keeping the two apart means a
mix can be replayed, inspected and tested deterministically, and one kernel
serves Mixup, CutMix, the combined policy and Manifold Mixup.

For example ``i`` with partner ``p = perm[i]``, further partners
``q_j = more_perms[i, j]`` with weights ``v_j = more_weights[i, j]``, pixel weight
``λ_i``, box ``R_i``, per-pixel mask ``M_i`` and label weight ``w_i``:

  ``b_i = λ_i·x_i + (1 − λ_i − Σ_j v_j)·x_p + Σ_j v_j·x_{q_j}``  (``b_i = x_i`` without λ)
  ``c_i = R_i ⊙ S_i + (1 − R_i) ⊙ b_i``   (``S_i``: ``x_p``, or with ``source_boxes`` the
  partner's rectangle ``source_boxes[i]`` resized, nearest-neighbour, into ``R_i``)
  ``x̃_i = M_i ⊙ x_p + (1 − M_i) ⊙ c_i``
  ``ỹ_i = w_i·y_i + (1 − w_i − Σ_j v_j)·y_p + Σ_j v_j·y_{q_j}``

Mixup has only ``λ`` (``w = λ``; n-way Mixup adds ``more_*``); CutMix only a box
(pixels are copied, never blended, ``w = 1 − |R|/(H·W)``); ResizeMix a box and
``source_boxes = (0, 0, H, W)`` (the whole partner, shrunk into the box); FMix,
GridMix and other mask methods only ``M`` (``w = 1 − mean(M)``); the combined
policy ``λ`` and a box. A field left ``None`` costs nothing: each one adds its
own step to the kernel, so Mixup, CutMix and the policy run as before.
"""

from __future__ import annotations

import math

import chex
import flax.struct
import jax
import jax.numpy as jnp

from mixjax import _validation
from mixjax.labels import soft_labels


@flax.struct.dataclass
class MixParams:
  """A drawn mix for a batch of ``B`` examples (a pytree of arrays).

  Attributes:
    perm: int32 ``[B]``, the partner of each example.
    label_weight: float32 ``[B]``, ``w_i``, the weight of the example's own label.
    lam: float32 ``[B]`` pixel weight ``λ_i`` of the example itself, or ``None``
      when the mix never blends pixels (pure CutMix keeps the input dtype).
    boxes: int32 ``[B, 4]`` ``(top, left, bottom, right)`` pasted from the
      partner, or ``None`` when the mix pastes nothing (Mixup, any rank).
    mask: ``[B, H, W]`` weight of the partner's pixel (1/True = the partner's),
      or ``None``. bool masks copy pixels exactly (the dtype is kept); float
      masks in ``[0, 1]`` blend ``m·x_p + (1 − m)·x`` (integers become float32,
      as with ``λ``). The sampler sets ``label_weight = 1 − mean(mask)``.
    source_boxes: int32 ``[B, 4]``, the partner's rectangle that is resized
      (nearest neighbour) into ``boxes``; ``None`` pastes the partner's pixels at
      the same place (CutMix). ResizeMix sets it to ``(0, 0, H, W)``.
    more_perms: int32 ``[B, n − 2]``, further partners of n-way Mixup, or ``None``.
    more_weights: float32 ``[B, n − 2]``, their weights in pixels and labels
      alike; partner ``perm`` gets what is left, ``1 − λ − Σ more_weights``
      (``1 − w − Σ more_weights`` in the labels). Needs ``lam``.
    pairing: static: what is known of the partners, so that they can be fetched
      without gathering the whole batch: ``"permute"`` (default) any partners;
      ``"roll"`` every ``perm[i]`` is ``i − 1 mod B`` or ``i`` (and
      ``more_perms[i, j]`` is ``i − j − 2 mod B`` or ``i``); ``"flip"`` every
      ``perm[i]`` is ``B − 1 − i`` or ``i``; ``"self"`` every partner is ``i``.
      The samplers set it from their ``pairing``; a wrong promise mixes with the
      wrong partners, so leave it ``"permute"`` for hand-made partners.
  """
  perm: chex.Array
  label_weight: chex.Array
  lam: chex.Array | None = None
  boxes: chex.Array | None = None
  mask: chex.Array | None = None
  source_boxes: chex.Array | None = None
  more_perms: chex.Array | None = None
  more_weights: chex.Array | None = None
  pairing: str = flax.struct.field(pytree_node=False, default="permute")

  @property
  def batch_size(self) -> int:
    return self.perm.shape[0]


def mixed_dtype(params: MixParams, dtype) -> jnp.dtype:
  """The dtype :func:`mix_images` returns for inputs of ``dtype``.

  Floating inputs keep their dtype. Integer inputs (e.g. uint8) keep it when the
  mix only pastes (CutMix), and become float32 when pixels are blended (Mixup,
  the policy with Mixup enabled, a soft mask), since a blend is not an integer and
  rounding it would break the label weights; no value ever wraps around.
  """
  dtype = jnp.dtype(dtype)
  if not blends(params) or jnp.issubdtype(dtype, jnp.floating):
    return dtype
  return jnp.dtype(jnp.float32)


def blends(params: MixParams) -> bool:
  """Whether the mix blends values (``λ`` or a soft mask) rather than only pasting them."""
  return params.lam is not None or _soft_mask(params)


def _soft_mask(params: MixParams) -> bool:
  return params.mask is not None and jnp.issubdtype(params.mask.dtype, jnp.floating)


def _check_params(params: MixParams, batch_size: int) -> None:
  if params.perm.shape != (batch_size,):
    raise ValueError(
        f"MixParams were drawn for a batch of {params.perm.shape[0]}, but the "
        f"input has batch {batch_size}.")
  if (params.more_perms is None) != (params.more_weights is None):
    raise ValueError("MixParams.more_perms and more_weights must be given together.")
  if params.more_perms is not None:
    if params.lam is None:
      raise ValueError("n-way MixParams (more_perms) need lam, the example's own weight.")
    if (params.more_perms.ndim != 2 or params.more_perms.shape[0] != batch_size
        or params.more_weights.shape != params.more_perms.shape):
      raise ValueError(
          f"more_perms and more_weights must both be [B, n - 2] with B = {batch_size}, "
          f"got {tuple(params.more_perms.shape)} and {tuple(params.more_weights.shape)}.")
  if params.source_boxes is not None and params.boxes is None:
    raise ValueError("MixParams.source_boxes need boxes to be resized into.")
  if params.mask is not None:
    dtype = jnp.dtype(params.mask.dtype)
    if not (dtype == jnp.bool_ or jnp.issubdtype(dtype, jnp.floating)):
      raise ValueError(f"MixParams.mask must be bool or floating, got {dtype}.")


def _check_mask(params: MixParams, frames: int, height: int, width: int) -> None:
  expected = (params.batch_size, height, width)
  per_frame = (params.batch_size, frames, height, width)
  if params.mask.shape != expected and (frames == 1 or params.mask.shape != per_frame):
    also = f" or one per frame, [B, T, H, W] = {per_frame}," if frames > 1 else ""
    raise ValueError(
        f"MixParams.mask must be [B, H, W] = {expected}{also} for these images, got "
        f"{tuple(params.mask.shape)}.")


def _self_paired(params: MixParams, ndim: int, start=0) -> chex.Array:
  """bool ``[B, 1, …]``: True where an example is its own (every) partner.

  ``start``: the global index of the first row (rows of a shard, see
  :func:`_shard_rows`).
  """
  batch = params.batch_size
  index = start + jnp.arange(batch, dtype=params.perm.dtype)
  own = params.perm == index
  if params.more_perms is not None:
    own = own & jnp.all(params.more_perms == index[:, None], axis=1)
  return own.reshape((batch,) + (1,) * (ndim - 1))


_PER_EXAMPLE_FIELDS = ("perm", "label_weight", "lam", "boxes", "mask", "source_boxes",
                   "more_perms", "more_weights")


def _shard_start(params: MixParams, local_batch: int, axis_name: str, what: str):
  """The global index of this device's first row; ``ValueError`` unless ``params``
  were drawn for the global batch (``local_batch`` rows on every device)."""
  count = jax.lax.axis_size(axis_name)
  if params.batch_size != local_batch * count:
    raise ValueError(
        f"with axis_name={axis_name!r} the MixParams must be drawn for the global batch: "
        f"{local_batch} {what} on each of {count} devices is {local_batch * count}, "
        f"got MixParams for {params.batch_size}.")
  return jax.lax.axis_index(axis_name) * local_batch


def _shard_rows(params: MixParams, local_batch: int, axis_name: str):
  """This device's rows of a mix drawn for the global batch, and the first's index.

  Device ``d`` of the mapped axis ``axis_name`` (``n`` devices) holds global
  examples ``d·b … (d + 1)·b − 1`` (``b = local_batch``), the split
  ``shard_map`` and ``pmap`` make of a batch. Partner indices stay global.
  """
  start = _shard_start(params, local_batch, axis_name, "examples")
  rows = {name: jax.lax.dynamic_slice_in_dim(getattr(params, name), start, local_batch)
          for name in _PER_EXAMPLE_FIELDS if getattr(params, name) is not None}
  return params.replace(**rows), start


def _explicit_batch_sharding(x: chex.Array):
  """``x``'s sharding if its batch axis is split over an ``Explicit`` mesh axis, else None.

  (``jax.make_mesh`` makes Explicit axes: gathers over them must name the sharding
  of their result; XLA then moves the rows.)
  """
  try:
    sharding = jax.typeof(x).sharding
    spec = sharding.spec
  except (AttributeError, TypeError):
    return None
  if not spec or spec[0] is None:
    return None
  names = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
  explicit = jax.sharding.AxisType.Explicit
  types = dict(zip(sharding.mesh.axis_names, sharding.mesh.axis_types, strict=True))
  return sharding if any(types.get(n) == explicit for n in names) else None


def _take_rows(x: chex.Array, perm: chex.Array) -> chex.Array:
  """``jnp.take(x, perm, axis=0)``, also for a batch sharded over an Explicit mesh axis."""
  sharding = _explicit_batch_sharding(x)
  if sharding is None:
    return jnp.take(x, perm, axis=0)
  return x.at[perm].get(mode="fill", out_sharding=sharding)


def _partner_rows(view: chex.Array, perm: chex.Array, pairing: str, shift: int,
                  axis_name: str | None) -> chex.Array:
  """The partners' rows ``x[perm]`` of this device's ``view``, by the cheapest route.

  ``perm``: this device's rows of global partner indices. ``pairing`` (see
  :class:`MixParams`) says which partners can occur besides the example itself
  (whose row is never read: the kernel keeps it): for ``"roll"`` example ``i``'s
  partner is ``i − shift``. Without ``axis_name`` the rows are this batch's;
  with it the global batch is spread over the mapped axis and:

  * ``"roll"``: the last ``shift`` rows of the previous device come over (one
    ``ppermute`` of ``shift`` rows);
  * ``"flip"``: the mirror device's rows come over (one ``ppermute`` of a shard);
  * ``"permute"``: every device gathers the whole global batch (``all_gather``),
    then takes its partners' rows;
  * ``"self"``: nothing moves.
  """
  local = view.shape[0]
  if pairing == "self":
    return view
  if axis_name is None:
    sharding = _explicit_batch_sharding(view)
    if sharding is not None:  # Under jit on a batch sharded over an Explicit mesh axis.
      index = jnp.arange(local, dtype=jnp.int32)
      perm = {"roll": (index - shift) % local, "flip": local - 1 - index}.get(pairing, perm)
      return _take_rows(view, perm)
    if pairing == "roll":
      return jnp.roll(view, shift, axis=0)
    if pairing == "flip":
      return view[::-1]
    return jnp.take(view, perm, axis=0)
  count = jax.lax.axis_size(axis_name)
  if pairing == "roll" and shift <= local:
    previous = jax.lax.ppermute(view[local - shift:], axis_name,
                                [(d, (d + 1) % count) for d in range(count)])
    return jnp.concatenate([previous, view[:local - shift]], axis=0)
  if pairing == "flip":
    mirror = jax.lax.ppermute(view, axis_name, [(d, count - 1 - d) for d in range(count)])
    return mirror[::-1]
  everything = jax.lax.all_gather(view, axis_name, axis=0, tiled=True)
  return jnp.take(everything, perm, axis=0)



def _partner_weight(weight: chex.Array, more_weights: chex.Array) -> chex.Array:
  """``1 − w − (v_1 + … + v_m)``: what n-way partner ``perm`` gets, pixels and labels alike.

  The sum runs left to right (XLA does not reassociate it), so the weight is one
  well-defined float that a reader can recompute bit for bit.
  """
  total = more_weights[:, 0]
  for j in range(1, more_weights.shape[1]):
    total = total + more_weights[:, j]
  return 1 - weight - total


def _resize_into(
    partners: chex.Array, boxes: chex.Array, source_boxes: chex.Array, run: int,
    height: int,
) -> chex.Array:
  """Each partner's ``source_boxes`` rectangle resized onto its ``boxes`` rectangle.

  Nearest neighbour on the ``[B, T·H, W·C]`` view (``T = 1`` for images; each frame
  of a clip is resized alike, from the same frame): destination pixel ``(h, w)`` of a
  box ``(t, l, b, r)`` takes the source pixel
  ``(t' + ⌊(h − t)·(b' − t')/(b − t)⌋, l' + ⌊(w − l)·(r' − l')/(r − l)⌋)`` of
  ``(t', l', b', r')``, computed in exact integer arithmetic. This is PyTorch's
  ``F.interpolate(mode="nearest")`` (source ``⌊dst·in/out⌋``), which OpenMixup's
  ResizeMix uses, except that PyTorch rounds ``in/out`` to float32 first and so
  can pick the pixel before where ``dst·in/out`` is an integer. With
  ``source_boxes == boxes`` every pixel maps to itself (CutMix). Pixels outside
  ``boxes`` are don't-cares.
  """
  flat = partners.shape[2]
  top, left, bottom, right = (boxes[:, i, None] for i in range(4))
  s_top, s_left, s_bottom, s_right = (source_boxes[:, i, None] for i in range(4))
  rows = jnp.arange(partners.shape[1], dtype=jnp.int32)[None, :]
  pixel_rows = rows % height          # The row within its frame.
  src_rows = s_top + ((pixel_rows - top) * (s_bottom - s_top)) // jnp.maximum(bottom - top, 1)
  src_rows = rows - pixel_rows + jnp.clip(src_rows, 0, height - 1)
  cols = jnp.arange(flat, dtype=jnp.int32)[None, :]
  pixel, channel = cols // run, cols % run
  src_pixel = s_left + ((pixel - left) * (s_right - s_left)) // jnp.maximum(right - left, 1)
  src_cols = jnp.clip(src_pixel * run + channel, 0, flat - 1)
  picked = jnp.take_along_axis(partners, src_rows[:, :, None], axis=1)
  return jnp.take_along_axis(picked, src_cols[:, None, :], axis=2)


def mix_images(
    params: MixParams, images: chex.Array, layout: str | None = None, *,
    axis_name: str | None = None,
) -> chex.Array:
  """Applies the pixel part of a mix.

  Across devices: inside ``shard_map`` / ``pmap`` over an axis ``axis_name``
  whose devices hold consecutive shards of one global batch (device ``d`` rows
  ``d·b … (d + 1)·b − 1``, as both split a batch), draw ``params`` for the
  *global* batch from the same key on every device and pass ``axis_name``: each
  device gets its rows of the global mix, partners from any device, the same
  values as one device mixing the whole batch. What moves between devices
  depends on ``params.pairing``: ``"roll"`` one row per partner from the
  previous device, ``"flip"`` one shard from the mirror device, ``"permute"``
  the whole global batch to every device. Under ``jax.jit`` with a batch sharded
  over devices, call it without ``axis_name``: XLA moves the same rows.

  Args:
    params: a drawn mix for batch ``B`` (the global batch with ``axis_name``).
    images: ``[B, ...]`` (this device's ``[B / n, ...]`` with ``axis_name``); with
      boxes or a mask, ``[B, H, W, C]`` or ``[B, H, W]``, or clips of video
      ``[B, T, H, W, C]`` (Scenic's NTHWC): each clip's box or mask is pasted
      into every frame, or a mask ``[B, T, H, W]`` one per frame.
    layout: with boxes or a mask, ``None`` (default) refuses a rank-4 batch that looks
      channels-first ``[B, C, H, W]`` (axis 1 of size 1, 3 or 4 and a last axis
      larger than 4: transpose it with ``jnp.transpose(x, (0, 2, 3, 1))``), and a
      rank-5 one that looks ``[B, C, T, H, W]``; ``"NHWC"`` (``"NTHWC"`` for clips)
      declares the batch channels-last and skips that check. Unused otherwise.
    axis_name: the mapped axis the global batch is split over, or None.

  Returns:
    The mixed batch, same shape, dtype :func:`mixed_dtype`. Blends are computed
    in at least float32 and cast back (bfloat16 in, bfloat16 out).
  """
  batch = _validation.check_batch(images)
  _validation.check_layout(layout)
  start = 0
  if axis_name is not None:
    params, start = _shard_rows(params, batch, axis_name)
  _check_params(params, batch)
  fetch = lambda perm, shift: _partner_rows(view, perm, params.pairing, shift, axis_name)
  shape = images.shape
  out_dtype = mixed_dtype(params, images.dtype)
  # The mix runs on a view where every example is contiguous: ``[B, N]``, or
  # ``[B, H, W·C]`` with boxes or masks (a box is then a run of columns in each of
  # its rows; clips ``[B, T·H, W·C]``, a box in every H-row frame). XLA fuses it into
  # one loop over the view whose contiguous inner axis vectorises; over NHWC with
  # C = 3 innermost, a CutMix loop does not.
  spatial = params.boxes is not None or params.mask is not None
  if spatial:
    height, width = _validation.check_spatial(images, layout)
    frames = shape[1] if images.ndim == 5 else 1
    view = images.reshape(batch, frames * height, math.prod(shape[1:]) // (frames * height))
    run = view.shape[2] // width if width else 1  # C: flat columns per pixel.
  else:
    view = images.reshape(batch, math.prod(shape[1:]))
  # Out-of-range partners are NaN (floats) as with jnp.take's default fill.
  partners = fetch(params.perm, 1)
  # Blends are computed in at least float32 and rounded once to the output dtype;
  # every step is a plain jnp op, so gradients pass in every float dtype.
  compute = jnp.promote_types(out_dtype, jnp.float32)
  expand = lambda v: v.astype(compute).reshape((batch,) + (1,) * (view.ndim - 1))
  out = view.astype(out_dtype)  # No-op unless a soft mask makes integers float32.
  own = None
  if params.lam is not None:
    lam = expand(params.lam)
    if params.more_perms is None:
      blend = lam * view.astype(compute) + (1 - lam) * partners.astype(compute)
    else:
      more = params.more_weights.astype(compute)
      blend = (lam * view.astype(compute) +
               expand(_partner_weight(params.lam.astype(compute), more)) *
               partners.astype(compute))
      for j in range(params.more_perms.shape[1]):
        blend = blend + expand(more[:, j]) * fetch(
            params.more_perms[:, j], j + 2).astype(compute)
    # λ·x + (1 − λ)·x can be off by an ulp: an example mixed with itself is exact.
    own = _self_paired(params, view.ndim, start)
    out = jnp.where(own, out, blend.astype(out_dtype))
  if params.boxes is not None:
    rows = jnp.arange(view.shape[1], dtype=jnp.int32)[None, :, None] % height
    cols = jnp.arange(view.shape[2], dtype=jnp.int32)[None, None, :]
    top, left, bottom, right = (params.boxes[:, i, None, None] for i in range(4))
    # Rows top ≤ h < bottom, columns left ≤ w < right, i.e. the flat columns
    # left·C ≤ j < right·C: the same pixels as boxes.box_mask.
    inside = ((rows >= top) & (rows < bottom) &
              (cols >= left * run) & (cols < right * run))
    source = partners
    if params.source_boxes is not None:
      source = _resize_into(partners, params.boxes, params.source_boxes, run, height)
    out = jnp.where(inside, source.astype(out_dtype), out)
  if params.mask is not None:
    _check_mask(params, frames, height, width)
    mask = params.mask
    if frames > 1:  # [B, T·H, W]: the clip's mask in every frame, or one per frame.
      mask = (mask.reshape(batch, frames * height, width) if mask.ndim == 4
              else jnp.tile(mask, (1, frames, 1)))
    # [B, H, W] → [B, H, W·C]: each pixel's weight repeated over its C channels.
    mask = jnp.repeat(mask, run, axis=2) if run != 1 else mask
    if mask.dtype == jnp.bool_:
      out = jnp.where(mask, partners.astype(out_dtype), out)
    else:
      weight = mask.astype(compute)
      soft = weight * partners.astype(compute) + (1 - weight) * out.astype(compute)
      # m·x + (1 − m)·x can be off by an ulp: an example mixed with itself keeps what
      # it is so far (itself, or its ResizeMix box when selected with a zero mask).
      own = _self_paired(params, view.ndim, start) if own is None else own
      out = jnp.where(own, out, soft.astype(out_dtype))
  return out.reshape(shape)


def mix_labels(
    params: MixParams,
    labels: chex.Array,
    num_classes: int | None = None,
    label_smoothing: float = 0.0,
    *,
    axis_name: str | None = None,
) -> chex.Array:
  """Applies the label part of a mix: float32 ``[B, K]`` rows.

  ``ỹ_i = w_i·y_i + (1 − w_i)·y_p`` (n-way: see :class:`MixParams`). Rows of ids or
  of one-hot/soft labels sum to one, and so do their mixes. Multi-hot rows (a
  multi-label task, trained with :func:`~mixjax.sigmoid_bce`) are mixed as they
  are, not renormalised: each class gets its weight in ``[0, 1]``, 1 where both
  examples have it.

  Args:
    params: a drawn mix for batch ``B`` (the global batch with ``axis_name``).
    labels: int ids ``[B]`` (needs ``num_classes``; concrete ids outside
      ``[0, K)`` are an error, see :func:`~mixjax.soft_labels`) or rows ``[B, K]``
      (one-hot, soft or multi-hot); with ``axis_name`` this device's rows (see
      :func:`mix_images`).
    num_classes: ``K``.
    label_smoothing: ``ε``, applied before mixing (``optax.smooth_labels``:
      ``(1 − ε)·y + ε/K``, the multi-class rule; leave it 0 for multi-hot rows).
    axis_name: the mapped axis the global batch is split over, or None. The
      labels of the global batch are gathered (``B·K`` values at most).
  """
  if axis_name is not None:
    local = _validation.check_batch(labels, min_rank=1)
    start = _shard_start(params, local, axis_name, "labels")
    everything = jax.lax.all_gather(labels, axis_name, axis=0, tiled=True)
    mixed = mix_labels(params, everything, num_classes, label_smoothing)
    return jax.lax.dynamic_slice_in_dim(mixed, start, local)
  rows = soft_labels(labels, num_classes, label_smoothing,
                     batch_size=params.batch_size)
  if params.more_perms is None:
    weight = params.label_weight.astype(jnp.float32)[:, None]
    mixed = weight * rows + (1 - weight) * _take_rows(rows, params.perm)
  else:
    weight = params.label_weight.astype(jnp.float32)
    more = params.more_weights.astype(jnp.float32)
    mixed = (weight[:, None] * rows +
             _partner_weight(weight, more)[:, None] * _take_rows(rows, params.perm))
    for j in range(params.more_perms.shape[1]):
      mixed = mixed + more[:, j, None] * _take_rows(rows, params.more_perms[:, j])
  return jnp.where(_self_paired(params, 2), rows, mixed)


def apply_mix(
    params: MixParams,
    images: chex.Array,
    labels: chex.Array,
    num_classes: int | None = None,
    label_smoothing: float = 0.0,
    layout: str | None = None,
    *,
    axis_name: str | None = None,
) -> tuple[chex.Array, chex.Array]:
  """Applies a drawn mix to a batch: ``(mixed images, soft labels)``.

  ``layout`` is passed to :func:`mix_images` (``"NHWC"`` to paste boxes into a
  batch that looks channels-first but is not); with ``axis_name`` the mix is
  drawn for the global batch and ``images``/``labels`` are this device's rows
  (see :func:`mix_images`).
  """
  batch = _validation.check_batch(images)
  if labels.shape[0] != batch:
    raise ValueError(
        f"images and labels must have the same batch size, got images "
        f"{tuple(images.shape)} and labels {tuple(labels.shape)}.")
  return (mix_images(params, images, layout, axis_name=axis_name),
          mix_labels(params, labels, num_classes, label_smoothing, axis_name=axis_name))


def identity_params(batch_size: int) -> MixParams:
  """A mix that changes nothing: every example is its own partner, ``w = 1``."""
  return MixParams(perm=jnp.arange(batch_size, dtype=jnp.int32),
                   label_weight=jnp.ones((batch_size,), jnp.float32), pairing="self")




def common_structure(*candidates: MixParams) -> tuple[MixParams, ...]:
  """The same mixes, each with every field any of them has (so they can be selected).

  A field a mix lacks is filled with its neutral value, which changes none of
  its pixels or labels (for finite pixels): ``lam = 1``, an empty box, a zero
  (False) mask, ``source_boxes = boxes`` (paste in place), further partners that
  are the example itself with weight 0. A bool mask becomes 0/1 float when
  another mix has a soft one. All candidates must be for the same batch. Their
  ``pairing`` is the one they share (``"self"`` mixes, e.g. the identity, agree
  with any), else ``"permute"``.

  Raises:
    ValueError: for candidates of different batch sizes or mask shapes.
  """
  if not candidates:
    raise ValueError("common_structure needs at least one MixParams.")
  batch = candidates[0].batch_size
  for c in candidates:
    if c.batch_size != batch:
      raise ValueError(
          f"MixParams to combine must share one batch size, got {c.batch_size} and {batch}.")
  has = lambda name: any(getattr(c, name) is not None for c in candidates)
  masks = [c.mask for c in candidates if c.mask is not None]
  if masks and any(m.shape != masks[0].shape for m in masks):
    raise ValueError(
        f"MixParams masks to combine must share one shape, got {[m.shape for m in masks]}.")
  soft = any(jnp.issubdtype(m.dtype, jnp.floating) for m in masks)
  num_more = max((c.more_perms.shape[1] for c in candidates if c.more_perms is not None),
                 default=0)
  index = jnp.arange(batch, dtype=jnp.int32)
  pairings = {c.pairing for c in candidates} - {"self"}
  pairing = "self" if not pairings else pairings.pop() if len(pairings) == 1 else "permute"
  out = []
  for c in candidates:
    fields = {"perm": c.perm.astype(jnp.int32),
              "label_weight": c.label_weight.astype(jnp.float32)}
    if has("lam") or num_more:
      fields["lam"] = (jnp.ones((batch,), jnp.float32) if c.lam is None
                       else c.lam.astype(jnp.float32))
    if has("boxes"):
      fields["boxes"] = (jnp.zeros((batch, 4), jnp.int32) if c.boxes is None
                         else c.boxes.astype(jnp.int32))
    if has("source_boxes"):
      fields["source_boxes"] = (fields["boxes"] if c.source_boxes is None
                                else c.source_boxes.astype(jnp.int32))
    if masks:
      mask = jnp.zeros(masks[0].shape, jnp.bool_) if c.mask is None else c.mask
      fields["mask"] = mask.astype(jnp.float32) if soft else mask
    if num_more:
      have = 0 if c.more_perms is None else c.more_perms.shape[1]
      perms = jnp.broadcast_to(index[:, None], (batch, num_more - have))
      weights = jnp.zeros((batch, num_more - have), jnp.float32)
      if have:
        perms = jnp.concatenate([c.more_perms.astype(jnp.int32), perms], axis=1)
        weights = jnp.concatenate([c.more_weights.astype(jnp.float32), weights], axis=1)
      fields["more_perms"], fields["more_weights"] = perms, weights
    out.append(MixParams(pairing=pairing, **fields))
  return tuple(out)


def select_params(which: chex.Array, candidates: tuple[MixParams, ...]) -> MixParams:
  """Per example ``i``, the mix ``candidates[which[i]]`` (or one for all: scalar ``which``).

  Args:
    which: int ``[B]`` (or a scalar) indices into ``candidates``.
    candidates: mixes of one structure (see :func:`common_structure`).

  Returns:
    :class:`MixParams` whose every field is selected with ``lax.select_n``.
  """
  first = candidates[0]
  for c in candidates[1:]:
    if jax.tree.structure(c) != jax.tree.structure(first):
      raise ValueError("select_params needs candidates of one structure; use common_structure.")
  which = jnp.asarray(which, jnp.int32)
  if len(candidates) == 1:
    return first

  def pick(*leaves):
    index = which
    if index.ndim:
      index = jnp.broadcast_to(index.reshape(index.shape + (1,) * (leaves[0].ndim - 1)),
                               leaves[0].shape)
    return jax.lax.select_n(index, *leaves)

  return jax.tree.map(pick, *candidates)


def gate_params(params: MixParams, apply: chex.Array) -> MixParams:
  """``params`` where ``apply`` (bool ``[B]``) is True, the identity mix elsewhere.

  An example not applied becomes its own partner with weight one, so it comes
  back bit for bit unchanged.
  """
  identity = identity_params(params.batch_size)
  neutral, drawn = common_structure(identity, params)
  return select_params(jnp.asarray(apply).astype(jnp.int32), (neutral, drawn))
