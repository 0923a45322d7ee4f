"""Training methods as mixing plans: ERM, Manifold Mixup, and every registered mixer.

The train step only knows that a plan mixes: :func:`draw_plan` turns a method
into a :class:`~mixjax.MixPlan` (or ``None`` for ERM) from a key. ``"erm"`` and
``"manifold_mixup"`` (which mixes hidden states) are the trainer's own; every
other name is a mixer of :mod:`mixjax.registry` (``mixup``, ``cutmix``,
``policy``, ``resizemix``, … and whatever is registered later), applied to the
input.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import chex
import jax
import jax.numpy as jnp

from mixjax import registry
from mixjax.manifold import MixPlan, sample_plan
from mixjax.mixer import Mixer

OWN_METHODS = ("erm", "manifold_mixup")


class _MethodNames:
  """The method names, live: ``erm``, ``manifold_mixup`` and the registered mixers."""

  def _names(self) -> tuple[str, ...]:
    return OWN_METHODS + tuple(n for n in registry.list_mixers() if n not in OWN_METHODS)

  def __contains__(self, name) -> bool:
    return name in self._names()

  def __iter__(self):
    return iter(self._names())

  def __len__(self) -> int:
    return len(self._names())

  def __repr__(self) -> str:
    return repr(self._names())


METHODS = _MethodNames()

# Each method's defaults, from its paper's CIFAR recipe. A registered mixer not
# listed here takes its class's defaults (its paper's, by the Mixer convention).
PRESETS = {
    "erm": {},
    # Zhang et al., 2018, "mixup: Beyond Empirical Risk Minimization": α = 1 on CIFAR.
    "mixup": {"alpha": 1.0},
    # Yun et al., 2019, "CutMix": α = 1, applied with probability 0.5 on CIFAR.
    "cutmix": {"alpha": 1.0, "prob": 0.5},
    # Verma et al., 2019, "Manifold Mixup": α = 2, layers {input, stage 1, stage 2}.
    "manifold_mixup": {"alpha": 2.0},
    # timm / DeiT: Mixup α = 0.8 or CutMix α = 1.0, switched with probability 0.5.
    "policy": {"alpha": 0.8, "cutmix_alpha": 1.0, "switch_prob": 0.5},
}

# The Method fields each preset method passes to its mixer, under the mixer's names.
_LEGACY_FIELDS = {
    "mixup": {"alpha": "alpha", "prob": "prob", "mode": "mode"},
    "cutmix": {"alpha": "alpha", "prob": "prob", "mode": "mode"},
    "policy": {"alpha": "mixup_alpha", "cutmix_alpha": "cutmix_alpha", "prob": "prob",
               "switch_prob": "switch_prob", "mode": "mode"},
}
# Config overrides that may name a mixer hyper-parameter of the same name.
_OVERRIDES = ("alpha", "prob", "mode", "cutmix_alpha", "switch_prob")


def _check_name(name: str) -> None:
  if name not in METHODS:
    raise ValueError(f"method must be one of {METHODS!r}, got {name!r}.")


def _hashable(value):
  return tuple(value) if isinstance(value, list) else value


@dataclasses.dataclass(frozen=True)
class Method:
  """A training method and its hyper-parameters (hashable: a static jit arg).

  Attributes:
    name: ``"erm"``, ``"manifold_mixup"`` or a registered mixer name.
    alpha: ``α`` of ``Beta(α, α)`` (Mixup's for the policy, Manifold Mixup's).
    prob: probability of mixing a batch (or an example in ``"elem"`` mode).
    mode: ``"batch"`` or ``"elem"``.
    cutmix_alpha: CutMix's ``α`` in the policy.
    switch_prob: probability of CutMix in the policy.
    layers: eligible Manifold Mixup layers; None takes the model's.
    hparams: further hyper-parameters as sorted ``(name, value)`` pairs: for a
      mixer, keyword arguments of :func:`~mixjax.get_mixer` (e.g. ``n`` for
      Mixup, ``scope`` for ResizeMix); for Manifold Mixup, ``n``.
  """
  name: str = "erm"
  alpha: float = 1.0
  prob: float = 1.0
  mode: str = "batch"
  cutmix_alpha: float = 1.0
  switch_prob: float = 0.5
  layers: tuple[int, ...] | None = None
  hparams: tuple[tuple[str, Any], ...] = ()

  def __post_init__(self):
    _check_name(self.name)
    if self.layers is not None:
      object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
    hparams = dict(self.hparams)
    object.__setattr__(self, "hparams",
                       tuple(sorted((k, _hashable(v)) for k, v in hparams.items())))

  @classmethod
  def from_preset(cls, name: str, **overrides) -> Method:
    """The paper's defaults for ``name``, with non-None ``overrides`` on top.

    Overrides that are not fields of :class:`Method` go to ``hparams``. For a
    registered mixer without a preset, ``alpha``, ``cutmix_alpha`` and
    ``switch_prob`` go to ``hparams`` when the mixer has a hyper-parameter of
    that name and are ignored otherwise (one config can compare methods with
    different hyper-parameters).
    """
    _check_name(name)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    fields = {f.name for f in dataclasses.fields(cls)} - {"name", "hparams"}
    hparams = dict(overrides.pop("hparams", ()))
    hparams.update({k: overrides.pop(k) for k in list(overrides) if k not in fields})
    if name in PRESETS:
      values = dict(PRESETS[name])
      values.update(overrides)
      return cls(name=name, hparams=tuple(hparams.items()), **values)
    takes = set(registry.mixer_fields(name))
    for key in ("alpha", "cutmix_alpha", "switch_prob"):
      if key in overrides:
        value = overrides.pop(key)
        if key in takes:
          hparams[key] = value
    return cls(name=name, hparams=tuple(hparams.items()), **overrides)

  def mixer(self) -> Mixer:
    """The registered mixer of this method (``ValueError`` for erm / manifold_mixup)."""
    if self.name in OWN_METHODS:
      raise ValueError(f"method {self.name!r} is not a mixer of the registry.")
    hparams = dict(self.hparams)
    if self.name in _LEGACY_FIELDS:
      values = {theirs: getattr(self, ours) for ours, theirs in _LEGACY_FIELDS[self.name].items()}
    else:
      values = {"prob": self.prob, "mode": self.mode}
    values.update(hparams)
    return registry.get_mixer(self.name, **values)

  def validate(self, image_shape: tuple[int, ...] | None = None) -> None:
    """Raises ``ValueError`` for hyper-parameters the method cannot use.

    With ``image_shape`` (``(H, W, C)`` of the data) a mixer's draw is also
    traced (``jax.eval_shape``, nothing computed) on a batch of that shape, so
    hyper-parameters that do not fit the images (e.g. more GridMix holes than
    fit) fail here rather than when training reaches the method.
    """
    if self.name == "erm":
      return
    if self.name == "manifold_mixup":
      if not self.alpha > 0:
        raise ValueError(f"manifold_mixup needs alpha > 0, got {self.alpha}.")
      unknown = sorted(set(dict(self.hparams)) - {"n"})
      if unknown:
        raise ValueError(f"manifold_mixup does not take {unknown}; it takes ['n'].")
      return
    mixer = self.mixer()
    if image_shape is not None:
      images = jax.ShapeDtypeStruct((2, *image_shape), jnp.uint8)
      jax.eval_shape(lambda key, images: mixer.sample(key, 2, image_shape, images=images),
                     jax.random.key(0), images)


def draw_plan(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int],
    method: Method,
    model_layers: tuple[int, ...],
    images: chex.Array | None = None,
) -> MixPlan | None:
  """Draws the mixing plan of one step (``None`` for ERM).

  ``images`` (the step's batch) is passed to mixers that draw from the pixels
  (``Mixer.uses_images``, e.g. SaliencyMix); the others ignore it.

  Manifold Mixup draws with :func:`~mixjax.sample_plan`; every other method is
  its registry mixer's :meth:`~mixjax.Mixer.sample`, applied at the input. So
  Mixup and CutMix with ``prob = 1`` draw exactly what
  :func:`~mixjax.sample_mixup` / :func:`~mixjax.sample_cutmix` draw, and with
  ``prob < 1`` (or the policy) what :func:`~mixjax.sample_mix` draws.
  """
  if method.name == "erm":
    return None
  if method.name == "manifold_mixup":
    layers = method.layers if method.layers is not None else model_layers
    return sample_plan(key, batch_size, layers, alpha=method.alpha, mode=method.mode,
                       n=dict(method.hparams).get("n", 2))
  mixer = method.mixer()
  if mixer.uses_images and images is not None:
    image_shape = tuple(images.shape[1:])
  else:
    image_shape = tuple(image_size)
  return MixPlan.at_input(mixer.sample(key, batch_size, image_shape, images=images))
