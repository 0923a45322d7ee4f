"""The trainer's methods: a registered mixer (or none), at the input or at a hidden layer.

``config.methods`` names them. ``"erm"`` trains without a mixer;
``"manifold_mixup"`` applies a :class:`~mixjax.Mixup` to the hidden states at a
layer drawn each step from the model's eligible layers (``mix_layers``; Verma et
al., 2019); every other name is a mixer of :mod:`mixjax.registry` (``mixup``,
``cutmix``, ``policy``, ``resizemix``, … and whatever is registered later),
applied to the input. The train step takes the :class:`~mixjax.Mixer` itself
(``None`` for ERM, :func:`draw_plan`), so a method's hyper-parameters are its
mixer's fields, and nothing else describes them.

A config sets them per method in ``config.mixers.<method>.<field>``
(:func:`config_sections` declares one section per mixing method with every field
its mixer takes, so a newly registered mixer is configurable with no edit here),
and the shared fields of :data:`SHARED_FIELDS` (``--config.alpha``, …) set a field
of every mixing method in ``config.methods`` at once: :func:`mixer_from_config`.
A field a method's mixer does not take is an error that names it.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp
import ml_collections

from mixjax import registry
from mixjax.manifold import MixPlan
from mixjax.mixer import Mixer

ERM = "erm"
# Methods that mix hidden states, and the registered mixer each applies there.
MANIFOLD_METHODS = {"manifold_mixup": "mixup"}
# Top-level config fields that, when set, go to every mixing method in
# config.methods (config field -> mixer field). ERM mixes nothing and takes none.
SHARED_FIELDS = {"alpha": "alpha", "prob": "prob", "mix_mode": "mode", "pairing": "pairing"}
# Mixer fields the trainer sets itself: the dataset's number of classes, and
# config.label_smoothing (applied to every method, ERM included).
TRAINER_FIELDS = ("num_classes", "label_smoothing")


def method_names() -> tuple[str, ...]:
  """The names ``config.methods`` takes: ``erm``, ``manifold_mixup`` and the registered mixers."""
  return (ERM, *MANIFOLD_METHODS,
          *(n for n in registry.list_mixers() if n != ERM and n not in MANIFOLD_METHODS))


def _check_name(name) -> None:
  if not isinstance(name, str) or name not in method_names():
    raise ValueError(f"method must be one of {list(method_names())}, got {name!r}.")


def _mixer_name(name: str) -> str | None:
  _check_name(name)
  return None if name == ERM else MANIFOLD_METHODS.get(name, name)


def method_fields(name: str) -> tuple[str, ...]:
  """The fields a config may set for ``name``: its mixer's, less :data:`TRAINER_FIELDS`."""
  mixer_name = _mixer_name(name)
  if mixer_name is None:
    return ()
  return tuple(f for f in registry.mixer_fields(mixer_name) if f not in TRAINER_FIELDS)


def method_mixer(name: str, **fields) -> Mixer | None:
  """The mixer the method ``name`` trains with: ``None`` for ERM.

  ``"manifold_mixup"`` gives a :class:`~mixjax.Mixup` (the train step applies it
  at a hidden layer when built with ``manifold=True``); the others the registered
  mixer of that name. ``fields`` are the mixer's fields; the rest keep the mixer's
  defaults (its paper's; the recipes in ``configs/`` set the CIFAR ones).

  Raises:
    ValueError: an unknown name, a field the method does not take, or a bad value.
  """
  mixer_name = _mixer_name(name)
  if mixer_name is None:
    if fields:
      raise ValueError(f"erm trains without a mixer and takes no fields, got {sorted(fields)}.")
    return None
  taken = method_fields(name)
  unknown = sorted(set(fields) - set(taken))
  if unknown:
    raise ValueError(f"method {name!r} does not take {unknown}; it takes {list(taken)}.")
  return registry.get_mixer(mixer_name, **fields)


def _placeholder_type(hint) -> type:
  """The type a ConfigDict placeholder for a field annotated ``hint`` takes.

  A config holds Python values: of a union (``float | None``, ``float | jax.Array``)
  the one config type it names; ``object`` (any value) when there is none or several.
  """
  if typing.get_origin(hint) in (typing.Union, types.UnionType):
    kinds = {_placeholder_type(a) for a in typing.get_args(hint)} - {object}
    if kinds == {int, float}:
      return float
    return kinds.pop() if len(kinds) == 1 else object
  origin = typing.get_origin(hint) or hint
  if origin in (tuple, list, Sequence):
    return tuple
  return origin if origin in (bool, int, float, str) else object


def config_sections() -> ml_collections.ConfigDict:
  """``config.mixers``: per mixing method, a placeholder (unset) for each field it takes.

  Built from the registry when a config is made, so ``--config.mixers.NAME.FIELD=``
  reaches any registered mixer (and Manifold Mixup's :class:`~mixjax.Mixup`).
  """
  sections = {}
  for name in method_names():
    if name == ERM:
      continue
    cls = registry.mixer_class(_mixer_name(name))
    try:
      hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001  (a user's annotation we cannot resolve: any value)
      hints = {}
    sections[name] = {
        field: ml_collections.config_dict.placeholder(_placeholder_type(hints.get(field)))
        for field in method_fields(name)}
  return ml_collections.ConfigDict(sections)


def _set(values) -> dict:
  return {k: v for k, v in (values or {}).items() if v is not None}


def mixer_from_config(config: ml_collections.ConfigDict, name: str) -> Mixer | None:
  """The mixer the method ``name`` trains with under ``config`` (``None`` for ERM).

  Its fields are those set in ``config.mixers.<name>``, then the set shared fields
  (:data:`SHARED_FIELDS`: ``config.alpha``, ``config.prob``, ``config.mix_mode``,
  ``config.pairing``) on top; the rest keep the mixer's defaults.

  Raises:
    ValueError: an unknown method (in ``name`` or as a section of
      ``config.mixers``); a set shared field that the mixer of ``name`` does not
      take, or that no method in ``config.methods`` takes (only ERM); a field of
      ``config.mixers.<name>`` the mixer does not take; a bad value.
  """
  _check_name(name)
  sections = config.get("mixers") or {}
  for section in sections:
    if section not in method_names() or section == ERM:
      raise ValueError(
          f"config.mixers.{section}: not a mixing method; the sections are "
          f"{[n for n in method_names() if n != ERM]}.")
  shared = {k: v for k, v in ((k, config.get(k)) for k in SHARED_FIELDS) if v is not None}
  if name == ERM:
    methods = set(config.get("methods") or ())
    if shared and not methods - {ERM}:
      raise ValueError(
          f"{', '.join(f'config.{k}={v!r}' for k, v in shared.items())} set, but no "
          f"method in config.methods {tuple(config.get('methods') or ())} mixes: erm "
          "trains without a mixer. Leave it unset or add a mixing method.")
    return None
  fields = _set(sections.get(name))
  taken = method_fields(name)
  for key, value in shared.items():
    field = SHARED_FIELDS[key]
    if field not in taken:
      raise ValueError(
          f"config.{key}={value!r} sets {field!r} for every mixing method in "
          f"config.methods, but {name} takes no {field!r} (it takes {list(taken)}). Leave "
          f"config.{key} unset and set config.mixers.<method>.{field} for the methods "
          "that take it.")
    fields[field] = value
  return method_mixer(name, **fields)


def check_mixer(mixer: Mixer | None, *, manifold: bool = False,
                num_classes: int | None = None, label_smoothing: float = 0.0) -> float:
  """Checks a mixer for the train step; returns the label smoothing to train with.

  Args:
    mixer: a :class:`~mixjax.Mixer`, or ``None`` (ERM).
    manifold: the mixer is applied at a hidden layer (Manifold Mixup), which
      needs a mix that is not in input pixels (no boxes or masks).
    num_classes: the dataset's; a mixer's own ``num_classes`` must agree.
    label_smoothing: the trainer's; a mixer's own ``label_smoothing``, when
      set, must agree or the trainer's must be 0.

  Raises:
    ValueError: for anything else than a Mixer or None, a pixel mixer with
      ``manifold``, or a mixer ``num_classes`` / ``label_smoothing`` that
      disagrees with the trainer's.
  """
  if mixer is None:
    if manifold:
      raise ValueError("manifold=True needs a mixer to apply at the hidden layer, got None.")
    return label_smoothing
  if not isinstance(mixer, Mixer):
    raise ValueError(
        f"the train step takes a mixjax.Mixer (e.g. mixjax.get_mixer('cutmix', prob=0.5), "
        f"or mixer_from_config(config, name)) or None for ERM, got {mixer!r}.")
  if manifold and mixer.spatial:
    raise ValueError(
        f"{type(mixer).__name__} mixes in input pixels (boxes or masks) and cannot mix "
        "hidden states: Manifold Mixup needs a mixer with spatial=False, such as "
        "mixjax.Mixup.")
  if mixer.num_classes is not None and num_classes is not None and (
      mixer.num_classes != num_classes):
    raise ValueError(
        f"the mixer has num_classes={mixer.num_classes}, the data {num_classes} classes; "
        "leave the mixer's num_classes unset (the trainer passes the data's).")
  if mixer.label_smoothing and label_smoothing and mixer.label_smoothing != label_smoothing:
    raise ValueError(
        f"the mixer has label_smoothing={mixer.label_smoothing} and the trainer "
        f"{label_smoothing}; set it once (config.label_smoothing).")
  return mixer.label_smoothing or label_smoothing


def check_draw(mixer: Mixer | None, image_shape: tuple[int, ...]) -> None:
  """Traces ``mixer``'s draw on a batch of ``image_shape`` (``(H, W, C)``), computing nothing.

  Hyper-parameters that do not fit the images (e.g. more GridMix holes than fit)
  fail here rather than when training reaches the method.
  """
  if mixer is None:
    return
  images = jax.ShapeDtypeStruct((2, *image_shape), jnp.uint8)
  jax.eval_shape(lambda key, images: mixer.sample(key, 2, image_shape, images=images),
                 jax.random.key(0), images)


def draw_plan(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int],
    mixer: Mixer | None,
    layers: Sequence[int] | None = None,
    images: chex.Array | None = None,
) -> MixPlan | None:
  """Draws the mixing plan of one step (``None`` for ERM, ``mixer=None``).

  With ``layers=None`` the mixer's :meth:`~mixjax.Mixer.sample` is applied at the
  input (:meth:`~mixjax.MixPlan.at_input`): Mixup and CutMix with ``prob = 1`` draw
  exactly what :func:`~mixjax.sample_mixup` / :func:`~mixjax.sample_cutmix` draw.
  With ``layers`` (Manifold Mixup: the model's ``mix_layers``) the key is split
  into ``(key_layer, key_mix)``, a layer is drawn uniformly from ``layers`` and the
  mix from ``key_mix``: for :class:`~mixjax.Mixup` with ``prob = 1`` exactly what
  :func:`~mixjax.sample_plan` draws, and with ``prob < 1`` the examples (or the
  batch) left unmixed pass every layer unchanged.

  ``images`` (the step's batch) goes to mixers that draw from the pixels
  (``Mixer.uses_images``, e.g. SaliencyMix); the others ignore it.

  Raises:
    ValueError: ``layers`` with a mixer that mixes in input pixels, or empty /
      negative ``layers``.
  """
  if mixer is None:
    return None
  if mixer.uses_images and images is not None:
    image_shape = tuple(images.shape[1:])
  else:
    image_shape = tuple(image_size)
  if layers is None:
    return MixPlan.at_input(mixer.sample(key, batch_size, image_shape, images=images))
  check_mixer(mixer, manifold=True)
  layers = tuple(layers)
  if not layers or any(not isinstance(i, int) or i < 0 for i in layers):
    raise ValueError(f"layers must be a non-empty sequence of indices >= 0, got {layers!r}.")
  key_layer, key_mix = jax.random.split(key)
  layer = jnp.asarray(layers, jnp.int32)[jax.random.randint(key_layer, (), 0, len(layers))]
  params = mixer.sample(key_mix, batch_size, image_shape, images=images)
  return MixPlan(layer=layer, params=params, layers=layers)
