"""Training methods as mixing plans: ERM, Mixup, CutMix, Manifold Mixup, the policy.

The train step only knows that a plan mixes: :func:`draw_plan` turns a method
into a :class:`~mixjax.MixPlan` (or ``None`` for ERM) from a key.
"""

from __future__ import annotations

import dataclasses

import chex

from mixjax.cutmix import sample_cutmix
from mixjax.manifold import MixPlan, sample_plan
from mixjax.mixup import sample_mixup
from mixjax.policy import MixConfig, sample_mix

METHODS = ("erm", "mixup", "cutmix", "manifold_mixup", "policy")

# Each method's defaults, from its paper's CIFAR recipe.
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


@dataclasses.dataclass(frozen=True)
class Method:
  """A training method and its hyper-parameters (hashable: a static jit arg).

  Attributes:
    name: one of :data:`METHODS`.
    alpha: ``α`` of ``Beta(α, α)`` (Mixup's for the policy).
    prob: probability of mixing a batch (CutMix, the policy).
    mode: ``"batch"`` or ``"elem"``.
    cutmix_alpha: CutMix's ``α`` in the policy.
    switch_prob: probability of CutMix in the policy.
    layers: eligible Manifold Mixup layers; None takes the model's.
  """
  name: str = "erm"
  alpha: float = 1.0
  prob: float = 1.0
  mode: str = "batch"
  cutmix_alpha: float = 1.0
  switch_prob: float = 0.5
  layers: tuple[int, ...] | None = None

  def __post_init__(self):
    if self.name not in METHODS:
      raise ValueError(f"method must be one of {METHODS}, got {self.name!r}.")
    if self.layers is not None:
      object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))

  @classmethod
  def from_preset(cls, name: str, **overrides) -> Method:
    """The paper's defaults for ``name``, with non-None ``overrides`` on top."""
    if name not in METHODS:
      raise ValueError(f"method must be one of {METHODS}, got {name!r}.")
    values = dict(PRESETS[name])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(name=name, **values)

  def _input_config(self) -> MixConfig:
    if self.name == "cutmix":
      return MixConfig(mixup_alpha=0.0, cutmix_alpha=self.alpha, prob=self.prob,
                       mode=self.mode)
    if self.name == "mixup":
      return MixConfig(mixup_alpha=self.alpha, cutmix_alpha=0.0, prob=self.prob,
                       mode=self.mode)
    return MixConfig(mixup_alpha=self.alpha, cutmix_alpha=self.cutmix_alpha,
                     prob=self.prob, switch_prob=self.switch_prob, mode=self.mode)

  def validate(self) -> None:
    """Raises ``ValueError`` for hyper-parameters the method cannot use."""
    if self.name in ("mixup", "cutmix", "policy"):
      self._input_config()
    elif self.name == "manifold_mixup" and not self.alpha > 0:
      raise ValueError(f"manifold_mixup needs alpha > 0, got {self.alpha}.")


def draw_plan(
    key: chex.PRNGKey,
    batch_size: int,
    image_size: tuple[int, int],
    method: Method,
    model_layers: tuple[int, ...],
) -> MixPlan | None:
  """Draws the mixing plan of one step (``None`` for ERM).

  Mixup with ``prob = 1`` and CutMix with ``prob = 1`` draw exactly what
  :func:`~mixjax.sample_mixup` / :func:`~mixjax.sample_cutmix` draw; with
  ``prob < 1`` (or the policy) the draw goes through :func:`~mixjax.sample_mix`.
  """
  if method.name == "erm":
    return None
  if method.name == "manifold_mixup":
    layers = method.layers if method.layers is not None else model_layers
    return sample_plan(key, batch_size, layers, alpha=method.alpha, mode=method.mode)
  if method.name == "mixup" and method.prob == 1.0:
    return MixPlan.at_input(sample_mixup(key, batch_size, alpha=method.alpha,
                                         mode=method.mode))
  if method.name == "cutmix" and method.prob == 1.0:
    return MixPlan.at_input(sample_cutmix(key, batch_size, image_size,
                                          alpha=method.alpha, mode=method.mode))
  return MixPlan.at_input(sample_mix(key, batch_size, image_size,
                                     method._input_config()))
