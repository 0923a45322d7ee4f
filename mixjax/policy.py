"""The combined Mixup/CutMix policy (timm's ``Mixup`` feature set).

Per call (``mode="batch"``) or per example (``mode="elem"``): with probability
``prob`` a mix is applied; if both methods are enabled, CutMix is chosen with
probability ``switch_prob`` and Mixup otherwise.
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp

from mixjax import _validation
from mixjax.cutmix import sample_cutmix_boxes
from mixjax.mixer import Mixer, spatial_size, with_partners
from mixjax.params import MixParams, apply_mix
from mixjax.sampling import sample_lambda, sample_partners


@dataclasses.dataclass(frozen=True)
class MixConfig:
  """Configuration of the combined policy; hashable, so it is a static jit arg.

  The defaults of ``mixup_alpha``, ``cutmix_alpha``, ``cutmix_minmax``, ``prob``,
  ``switch_prob`` and ``mode`` are those of ``timm.data.Mixup``
  (``timm/data/mixup.py`` line 104); two defaults differ:

  * ``pairing="permute"`` pairs each example with a random permutation of the
    batch, as CutMix-PyTorch does (``torch.randperm``, ``train.py`` line 231),
    where timm always pairs example ``i`` with ``B − 1 − i`` (it flips the batch:
    ``x.flip(0)`` / ``j = batch_size - i - 1``, lines 26, 164 and 203). Pass
    ``pairing="flip"`` for timm's pairing.
  * ``label_smoothing=0`` as in every other mixjax op (timm's default is 0.1).

  CutMix boxes follow timm's (and CutMix-PyTorch's) ``rand_bbox`` by default,
  with timm's ``correct_lam`` always on: the label weight is the exact kept
  fraction after clipping.

  Fields may be Python or NumPy numbers (kept as Python numbers) and ``cutmix_minmax``
  any pair (kept as a tuple), so the config stays hashable. ``mixup_alpha`` and
  ``cutmix_alpha`` may also be traced values (e.g. scheduled inside a jitted
  step): a traced ``α`` enables its method (0 disables one only when known at
  trace time) and is checked only when concrete; :func:`mix` then runs inside
  the caller's trace. The other fields are static.

  Attributes:
    mixup_alpha: ``α`` of Mixup's ``Beta(α, α)``; 0 disables Mixup.
    cutmix_alpha: ``α`` of CutMix's ``Beta(α, α)``; 0 disables CutMix unless
      ``cutmix_minmax`` is set.
    cutmix_minmax: optional ``(min, max)`` box side ratios; enables CutMix and
      replaces its Beta draw.
    prob: probability of mixing at all.
    switch_prob: probability of CutMix when both are enabled.
    mode: ``"batch"`` or ``"elem"``.
    label_smoothing: ``ε`` applied to the labels before mixing.
    num_classes: ``K``, needed for integer labels.
    pairing: ``"permute"`` (default, a random permutation), ``"flip"`` (timm's:
      ``perm[i] = B − 1 − i``) or ``"roll"``.
    box_rule: ``"reference"`` (default; CutMix-PyTorch's and timm's
      ``rand_bbox``) or ``"full_side"`` (mixjax 0.1.0's boxes, to replay old
      draws); see :func:`~mixjax.sample_boxes`.
  """
  mixup_alpha: float = 1.0
  cutmix_alpha: float = 0.0
  cutmix_minmax: tuple[float, float] | None = None
  prob: float = 1.0
  switch_prob: float = 0.5
  mode: str = "batch"
  label_smoothing: float = 0.0
  num_classes: int | None = None
  pairing: str = "permute"
  box_rule: str = "reference"

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = _validation.static_value(getattr(self, field.name), arrays=False)
      if field.name not in _TRACEABLE:
        _validation.check_static(value, f"MixConfig.{field.name}", _TRACEABLE)
      object.__setattr__(self, field.name, value)
    for name in _TRACEABLE:
      value = getattr(self, name)
      if _validation.is_traced(value):
        if jnp.ndim(value) != 0:
          raise ValueError(f"{name} must be a scalar, got a traced value of shape "
                           f"{jnp.shape(value)}.")
        continue
      if (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0
          or value != value):
        raise ValueError(f"{name} must be >= 0 (0 disables it), got {value!r}.")
    object.__setattr__(self, "cutmix_minmax",
                       _validation.check_minmax(self.cutmix_minmax, "cutmix_minmax"))
    if not (self.mixup_enabled or self.cutmix_enabled):
      raise ValueError(
          "MixConfig enables no method: set mixup_alpha > 0, cutmix_alpha > 0 "
          "or cutmix_minmax.")
    _validation.check_probability(self.prob, "prob")
    _validation.check_probability(self.switch_prob, "switch_prob")
    _validation.check_mode(self.mode)
    _validation.check_pairing(self.pairing)
    _validation.check_box_rule(self.box_rule)
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(
          f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}.")

  @property
  def mixup_enabled(self) -> bool:
    return _validation.is_traced(self.mixup_alpha) or self.mixup_alpha > 0

  @property
  def cutmix_enabled(self) -> bool:
    return (_validation.is_traced(self.cutmix_alpha) or self.cutmix_alpha > 0
            or self.cutmix_minmax is not None)


_TRACEABLE = ("mixup_alpha", "cutmix_alpha")


def sample_mix(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int] | None,
    config: MixConfig,
) -> MixParams:
  """Draws a mix from the policy.

  Let ``a ~ Bernoulli(prob)`` and ``c ~ Bernoulli(switch_prob)`` (``c`` fixed to
  the enabled method when only one is). Then a CutMix box is pasted where
  ``a ∧ c``, a Mixup ``λ`` blends where ``a ∧ ¬c``, and nothing changes where
  ``¬a``. One program covers every outcome.

  Args:
    key: a PRNG key.
    batch_size: ``B``.
    image_size: ``(H, W)``; may be None when CutMix is disabled.
    config: the policy.

  Returns:
    :class:`MixParams`. ``lam`` is None when Mixup is disabled (pure paste keeps
    the dtype) and ``boxes`` is None when CutMix is disabled (any rank).
  """
  key_apply, key_switch, key_mixup, key_cutmix, key_perm = jax.random.split(key, 5)
  num = 1 if config.mode == "batch" else batch_size
  apply = jax.random.uniform(key_apply, (num,)) < config.prob
  if config.mixup_enabled and config.cutmix_enabled:
    use_cutmix = jax.random.uniform(key_switch, (num,)) < config.switch_prob
  else:
    use_cutmix = jnp.full((num,), config.cutmix_enabled)
  do_cutmix = apply & use_cutmix
  do_mixup = apply & ~use_cutmix
  weight = jnp.ones((num,), jnp.float32)
  lam = boxes = None
  if config.mixup_enabled:
    lam = jnp.where(
        do_mixup, sample_lambda(key_mixup, num, config.mixup_alpha, "elem"), 1.0)
    weight = lam
  if config.cutmix_enabled:
    if image_size is None:
      raise ValueError("CutMix is enabled, so image_size (H, W) is required.")
    # α = 0 with cutmix_minmax: the boxes come from minmax, α is unused.
    cut_alpha = (config.cutmix_alpha if _validation.is_traced(config.cutmix_alpha)
                 or config.cutmix_alpha > 0 else 1.0)
    boxes, cut_weight = sample_cutmix_boxes(
        key_cutmix, num, image_size, alpha=cut_alpha,
        mode="elem", minmax=config.cutmix_minmax, box_rule=config.box_rule)
    boxes = jnp.where(do_cutmix[:, None], boxes, 0)
    weight = jnp.where(do_cutmix, cut_weight, weight)
    boxes = jnp.broadcast_to(boxes, (batch_size, 4))
  broadcast = lambda v: None if v is None else jnp.broadcast_to(v, (batch_size,))
  return MixParams(perm=sample_partners(key_perm, batch_size, config.pairing),
                   label_weight=broadcast(weight), lam=broadcast(lam),
                   boxes=boxes, pairing=config.pairing)


def mix(
    key: chex.PRNGKey,
    images: chex.Array,
    labels: chex.Array,
    config: MixConfig,
    *,
    layout: str | None = None,
) -> tuple[chex.Array, chex.Array]:
  """Mixes a batch with the combined Mixup/CutMix policy.

  A jitted program (``config`` and ``layout`` static), or, for a config holding a
  traced ``α``, part of the caller's trace.

  Args:
    key: a PRNG key.
    images: ``[B, H, W, C]`` or ``[B, H, W]`` (any ``[B, ...]`` if CutMix is
      disabled), float or integer.
    labels: int class ids ``[B]`` (with ``config.num_classes``) or rows ``[B, K]``.
    config: a :class:`MixConfig`.
    layout: with CutMix enabled, ``None`` (default) refuses a rank-4 batch that
      looks channels-first ``[B, C, H, W]`` (axis 1 of size 1, 3 or 4, last axis
      larger than 4; transpose it with ``jnp.transpose(x, (0, 2, 3, 1))``), and
      ``"NHWC"`` declares it NHWC; see :func:`~mixjax.cutmix`.

  Returns:
    ``(x̃, ỹ)``. Output dtype: floats are kept; integer images stay integer if
    only CutMix is enabled and become float32 if Mixup is enabled.
  """
  if not isinstance(config, MixConfig):
    raise ValueError(f"config must be a MixConfig, got {type(config).__name__}.")
  _validation.check_label_ids(labels, config.num_classes)  # Concrete ids, before jit.
  if _validation.has_tracer(config):
    return _mix_policy(key, images, labels, config, layout)
  return _mix_policy_jit(key, images, labels, config, layout)


def _mix_policy(key, images, labels, config, layout):
  batch = _validation.check_batch(images)
  image_size = (_validation.check_spatial(images, layout)
                if config.cutmix_enabled else None)
  params = sample_mix(key, batch, image_size, config)
  return apply_mix(params, images, labels, config.num_classes,
                   config.label_smoothing, layout=layout)


_mix_policy_jit = jax.jit(_mix_policy, static_argnames=("config", "layout"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy(Mixer):
  """The combined policy (:class:`MixConfig`) as a :class:`~mixjax.Mixer` (``"policy"``).

  :meth:`sample` is :func:`sample_mix` with :meth:`config`, so it draws exactly
  what ``mx.mix`` draws. The timm policy is the two-mixer case of
  :class:`~mixjax.Choice` (Mixup or CutMix with ``switch_prob``, then ``prob``);
  this class keeps its draws.

  Attributes:
    mixup_alpha, cutmix_alpha, cutmix_minmax, switch_prob, box_rule: as in
      :class:`MixConfig` (``prob``, ``mode``, ``pairing``, ``label_smoothing``
      and ``num_classes`` are the base fields); the two ``α`` may be traced.
  """
  mixup_alpha: float = 1.0
  cutmix_alpha: float = 0.0
  cutmix_minmax: tuple[float, float] | None = None
  switch_prob: float = 0.5
  box_rule: str = "reference"

  traceable = _TRACEABLE

  @property
  def spatial(self) -> bool:
    return self.config().cutmix_enabled

  segments = True   # Its CutMix boxes: sample_boxes / sample_boxes_minmax cut segments.

  def validate(self):
    object.__setattr__(self, "cutmix_minmax",
                       _validation.check_minmax(self.cutmix_minmax, "cutmix_minmax"))
    self.config()

  def config(self) -> MixConfig:
    """The :class:`MixConfig` of this policy."""
    return MixConfig(
        mixup_alpha=self.mixup_alpha, cutmix_alpha=self.cutmix_alpha,
        cutmix_minmax=self.cutmix_minmax, prob=self.prob, switch_prob=self.switch_prob,
        mode=self.mode, label_smoothing=self.label_smoothing, num_classes=self.num_classes,
        pairing=self.pairing, box_rule=self.box_rule)

  def sample(self, key, batch_size, image_shape=(), *, images=None, partners=None):
    config = self.config()
    image_size = spatial_size(image_shape) if config.cutmix_enabled else None
    return with_partners(sample_mix(key, batch_size, image_size, config),
                         self._check_partners(partners, batch_size))

  def draw(self, key, batch_size, image_shape):
    return self.sample(key, batch_size, image_shape)
