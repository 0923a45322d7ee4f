"""The optimisers of the recipes (optax), by name: :func:`make_optimizer`.

Each is one function of ``(learning_rate, weight_decay, mask, options)`` in
:data:`OPTIMIZERS`; :func:`make_optimizer` adds what they share:

* a **weight-decay mask** (:func:`decay_mask`): ``"all"`` decays every parameter (PyTorch's
  ``weight_decay=`` on ``model.parameters()``: the CIFAR and CutMix recipes), ``"timm"`` skips
  every 0-/1-d parameter (biases, norm scales and offsets) and the position embeddings and
  class token (timm ``optim/optim_factory.py`` ``param_groups_weight_decay`` with
  ``model.no_weight_decay()``: DeiT's rule);
* **gradient clipping** by the global norm (PyTorch's ``clip_grad_norm_`` on the raw
  gradients, before weight decay is added: timm ``train.py`` ``--clip-grad``);
* **gradient accumulation** (:class:`optax.MultiSteps`): ``k`` micro-batches of ``B/k``
  make one update with the mean of their gradients, the update one batch of ``B`` makes
  (the learning-rate schedule counts updates, not micro-batches).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import chex
import jax
import optax

#: Parameter names never decayed under the ``"timm"`` rule (timm's
#: ``VisionTransformer.no_weight_decay``: ``{'pos_embed', 'cls_token', 'dist_token'}``).
NO_DECAY_NAMES = ("pos_embed", "cls_token", "dist_token")
DECAY_MASKS = ("all", "timm")


def decay_mask(params: chex.ArrayTree, rule: str = "all") -> chex.ArrayTree:
  """Which parameters weight decay applies to, as a tree of bools like ``params``.

  Args:
    params: the model's parameters.
    rule: ``"all"`` (every parameter) or ``"timm"`` (parameters of ≥ 2 dimensions
      whose name is not in :data:`NO_DECAY_NAMES`: no decay on biases, norms,
      position embeddings and class tokens).
  """
  if rule not in DECAY_MASKS:
    raise ValueError(f"weight_decay_mask must be one of {DECAY_MASKS}, got {rule!r}.")
  if rule == "all":
    return jax.tree.map(lambda _: True, params)

  def decays(path, leaf) -> bool:
    names = {getattr(k, "key", getattr(k, "name", None)) for k in path}
    return leaf.ndim > 1 and not names & set(NO_DECAY_NAMES)

  return jax.tree_util.tree_map_with_path(decays, params)


def sgd(learning_rate: optax.ScalarOrSchedule, weight_decay: float, mask,
        options: Mapping[str, Any]) -> optax.GradientTransformation:
  """SGD with (Nesterov) momentum and L2 weight decay added to the gradient.

  ``g ← g + wd·θ`` before momentum, as PyTorch's ``SGD(weight_decay=wd)`` that the
  mixup, Manifold Mixup and CutMix code used. Options: ``momentum`` (0.9),
  ``nesterov`` (True).
  """
  return optax.chain(
      optax.add_decayed_weights(weight_decay, mask),
      optax.sgd(learning_rate, momentum=options.get("momentum", 0.9),
                nesterov=options.get("nesterov", True)))


def adamw(learning_rate: optax.ScalarOrSchedule, weight_decay: float, mask,
          options: Mapping[str, Any]) -> optax.GradientTransformation:
  """AdamW (Loshchilov & Hutter, 2019): ``θ ← θ − lr·(m̂/(√v̂ + ε) + wd·θ)``.

  The decay is decoupled from the gradient and scaled by the learning rate, as
  PyTorch's ``AdamW`` (DeiT's optimiser, through timm). Options: ``b1`` (0.9), ``b2``
  (0.999), ``eps`` (1e-8, timm's ``--opt-eps``).
  """
  return optax.adamw(learning_rate, b1=options.get("b1", 0.9), b2=options.get("b2", 0.999),
                     eps=options.get("eps", 1e-8), weight_decay=weight_decay, mask=mask)


def lamb(learning_rate: optax.ScalarOrSchedule, weight_decay: float, mask,
         options: Mapping[str, Any]) -> optax.GradientTransformation:
  """LAMB (You et al., 2020): AdamW's update scaled per parameter by ``‖θ‖ / ‖update‖``.

  As timm's ``Lamb`` (``timm/optim/lamb.py``, ``always_adapt=False``, what timm's
  ``create_optimizer`` builds): the trust ratio applies only where weight decay does (not
  to the parameters the mask exempts, nor anywhere when ``weight_decay`` is 0). With the
  ``"all"`` mask and a non-zero decay this is optax's ``lamb``, the paper's algorithm.
  timm's ``Lamb`` also clips the global gradient norm to 1 by default: set
  ``clip_grad_norm=1`` for that. Options: ``b1`` (0.9), ``b2`` (0.999), ``eps`` (1e-6,
  the paper's and timm's).
  """
  trust = optax.scale_by_trust_ratio()
  if not weight_decay:
    trust = optax.identity()
  elif mask is not None:
    trust = optax.masked(trust, mask)
  return optax.chain(
      optax.scale_by_adam(b1=options.get("b1", 0.9), b2=options.get("b2", 0.999),
                          eps=options.get("eps", 1e-6)),
      optax.add_decayed_weights(weight_decay, mask),
      trust,
      optax.scale_by_learning_rate(learning_rate))


#: name -> ``f(learning_rate, weight_decay, mask, options)``; a new optimiser is one
#: function and one line here.
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": sgd,
    "adamw": adamw,
    "lamb": lamb,
}


def make_optimizer(
    learning_rate: optax.ScalarOrSchedule,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 1e-4,
    *,
    name: str = "sgd",
    weight_decay_mask: str = "all",
    clip_grad_norm: float | None = None,
    accumulate: int = 1,
    b1: float | None = None,
    b2: float | None = None,
    eps: float | None = None,
) -> optax.GradientTransformation:
  """The optimiser ``name`` with a decay mask, clipping and accumulation.

  The defaults are SGD with Nesterov momentum 0.9 and L2 decay 1e-4 on every
  parameter (the CIFAR recipes).

  Args:
    learning_rate: a float or an ``optax`` schedule of the update count.
    momentum: SGD's momentum.
    nesterov: SGD's Nesterov momentum.
    weight_decay: the decay coefficient (L2 for SGD, decoupled for AdamW and LAMB).
    name: a key of :data:`OPTIMIZERS`: ``"sgd"``, ``"adamw"``, ``"lamb"``.
    weight_decay_mask: ``"all"`` or ``"timm"`` (:func:`decay_mask`).
    clip_grad_norm: scale the gradients to at most this global norm first; None: no
      clipping.
    accumulate: micro-batches per update (``optax.MultiSteps``); 1: none.
    b1, b2, eps: AdamW's and LAMB's; None keeps each optimiser's default.

  Raises:
    ValueError: an unknown name or mask, ``accumulate < 1``, or a non-positive
      ``clip_grad_norm``.
  """
  if name not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}.")
  if weight_decay_mask not in DECAY_MASKS:
    raise ValueError(
        f"weight_decay_mask must be one of {DECAY_MASKS}, got {weight_decay_mask!r}.")
  if not isinstance(accumulate, int) or isinstance(accumulate, bool) or accumulate < 1:
    raise ValueError(f"grad_accum_steps must be an int >= 1, got {accumulate!r}.")
  if clip_grad_norm is not None and not clip_grad_norm > 0:
    raise ValueError(f"clip_grad_norm must be > 0 or None, got {clip_grad_norm!r}.")
  options = {k: v for k, v in dict(momentum=momentum, nesterov=nesterov, b1=b1, b2=b2,
                                   eps=eps).items() if v is not None}
  mask = None if weight_decay_mask == "all" else (
      lambda params: decay_mask(params, weight_decay_mask))
  tx = OPTIMIZERS[name](learning_rate, weight_decay, mask, options)
  if clip_grad_norm is not None:
    tx = optax.chain(optax.clip_by_global_norm(clip_grad_norm), tx)
  if accumulate > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=accumulate)
  return tx


def optimizer_from_config(config, learning_rate: optax.ScalarOrSchedule
                          ) -> optax.GradientTransformation:
  """:func:`make_optimizer` from a config's fields (``configs/base.py``)."""
  get = config.get
  return make_optimizer(
      learning_rate, get("momentum", 0.9), get("nesterov", True), get("weight_decay", 1e-4),
      name=get("optimizer", "sgd"), weight_decay_mask=get("weight_decay_mask", "all"),
      clip_grad_norm=get("clip_grad_norm"), accumulate=get("grad_accum_steps", 1),
      b1=get("b1"), b2=get("b2"), eps=get("eps"))
