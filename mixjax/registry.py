"""Mixers by name: ``get_mixer("cutmix", alpha=1.0)``; the trainer finds methods here.

Adding a method is one module with a :class:`~mixjax.Mixer` subclass and one
``register_mixer`` line below.
"""

from __future__ import annotations

import dataclasses

from mixjax.compose import Choice
from mixjax.cutmix import CutMix
from mixjax.fmix import FMix
from mixjax.gridmix import GridMix
from mixjax.mixer import Identity, Mixer
from mixjax.mixup import Mixup
from mixjax.policy import Policy
from mixjax.resizemix import ResizeMix
from mixjax.saliencymix import SaliencyMix
from mixjax.smoothmix import SmoothMix

_MIXERS: dict[str, type[Mixer]] = {}


def register_mixer(name: str, cls: type[Mixer], *, overwrite: bool = False) -> None:
  """Registers the :class:`~mixjax.Mixer` subclass ``cls`` as ``name``.

  Raises:
    ValueError: for a name already taken (unless ``overwrite``), a bad name or a
      class that is not a frozen ``Mixer`` dataclass.
  """
  if not isinstance(name, str) or not name.isidentifier():
    raise ValueError(f"a mixer name must be an identifier string, got {name!r}.")
  if not (isinstance(cls, type) and issubclass(cls, Mixer) and dataclasses.is_dataclass(cls)
          and cls.__dataclass_params__.frozen):
    raise ValueError(f"register_mixer needs a frozen Mixer dataclass, got {cls!r}.")
  if name in _MIXERS and not overwrite and _MIXERS[name] is not cls:
    raise ValueError(f"a mixer named {name!r} is already registered ({_MIXERS[name]!r}).")
  _MIXERS[name] = cls


def list_mixers() -> tuple[str, ...]:
  """The registered names, sorted."""
  return tuple(sorted(_MIXERS))


def mixer_class(name: str) -> type[Mixer]:
  """The class registered as ``name``; ``ValueError`` listing the known names."""
  if name not in _MIXERS:
    raise ValueError(f"unknown mixer {name!r}; known mixers: {list(list_mixers())}.")
  return _MIXERS[name]


def mixer_fields(name: str) -> tuple[str, ...]:
  """The hyper-parameters (dataclass fields) the mixer ``name`` takes."""
  return tuple(f.name for f in dataclasses.fields(mixer_class(name)))


def get_mixer(name: str, **hparams) -> Mixer:
  """The mixer ``name`` built with ``hparams`` (the rest keep their defaults).

  Lists become tuples, so the mixer stays hashable.

  Raises:
    ValueError: for an unknown name, a hyper-parameter the mixer does not take,
      or a bad value.
  """
  cls = mixer_class(name)
  unknown = sorted(set(hparams) - set(mixer_fields(name)))
  if unknown:
    raise ValueError(
        f"mixer {name!r} does not take {unknown}; it takes {list(mixer_fields(name))}.")
  values = {k: tuple(v) if isinstance(v, list) else v for k, v in hparams.items()}
  return cls(**values)


register_mixer("identity", Identity)
register_mixer("mixup", Mixup)
register_mixer("cutmix", CutMix)
register_mixer("policy", Policy)
register_mixer("choice", Choice)
register_mixer("resizemix", ResizeMix)
register_mixer("fmix", FMix)
register_mixer("gridmix", GridMix)
register_mixer("smoothmix", SmoothMix)
register_mixer("saliencymix", SaliencyMix)
