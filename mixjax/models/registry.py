"""Models by name: :func:`get_model`.

=====================  =============================================  ===========
name                   model                                          params (K=10)
=====================  =============================================  ===========
``preact_resnet18``    :class:`PreActResNet` (2, 2, 2, 2)             11,171,146
``preact_resnet34``    :class:`PreActResNet` (3, 4, 6, 3)             21,279,306
``wide_resnet28_10``   :class:`WideResNet` depth 28, k = 10           36,479,194
``small_cnn``          :class:`SmallCNN`                              19,562 (C=1)
``mlp``                :class:`MLP`                                   depends
=====================  =============================================  ===========
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn

from mixjax.models.preact_resnet import preact_resnet18, preact_resnet34
from mixjax.models.small import mlp, small_cnn
from mixjax.models.wide_resnet import wide_resnet28_10

__all__ = ["MODELS", "get_model", "list_models"]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "preact_resnet18": preact_resnet18,
    "preact_resnet34": preact_resnet34,
    "wide_resnet28_10": wide_resnet28_10,
    "small_cnn": small_cnn,
    "mlp": mlp,
}


def list_models() -> tuple[str, ...]:
  """The names :func:`get_model` knows."""
  return tuple(MODELS)


def get_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
  """Builds a model by name.

  Args:
    name: one of :func:`list_models`: ``"preact_resnet18"``,
      ``"preact_resnet34"``, ``"wide_resnet28_10"``, ``"small_cnn"``, ``"mlp"``.
    num_classes: number of output logits.
    **kwargs: further attributes of the model (``mix_layers``, ``dtype``,
      ``axis_name``, ``final_norm``, ``features``, ...).

  Returns:
    The (unbound) Flax module; ``model.mix_layers`` is what to pass to
    :func:`mixjax.sample_plan`.

  Raises:
    ValueError: for an unknown name (the message lists the known ones).
  """
  if name not in MODELS:
    raise ValueError(
        f"Unknown model {name!r}; known models: {', '.join(MODELS)}.")
  return MODELS[name](num_classes=num_classes, **kwargs)
