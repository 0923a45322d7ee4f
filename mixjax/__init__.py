"""mixjax: Mixup, CutMix and Manifold Mixup as pure, jit-compiled JAX functions.

Every op takes an explicit PRNG key. Sampling (``sample_*``) is separate from
applying (:func:`apply_mix`), so any mix can be replayed and inspected.
"""

from mixjax.boxes import box_area, box_mask, sample_boxes, sample_boxes_minmax
from mixjax.cutmix import cutmix, sample_cutmix, sample_cutmix_boxes
from mixjax.labels import soft_labels, soft_target_cross_entropy
from mixjax.losses import softmax_bce
from mixjax.manifold import MixPlan, sample_plan
from mixjax.mixup import mixup, sample_mixup
from mixjax.params import (
    MixParams,
    apply_mix,
    identity_params,
    mix_images,
    mix_labels,
    mixed_dtype,
)
from mixjax.policy import MixConfig, mix, sample_mix
from mixjax.sampling import sample_lambda, sample_partners, symmetric_beta

__version__ = "0.1.0"

__all__ = [
    "MixConfig",
    "MixParams",
    "MixPlan",
    "apply_mix",
    "box_area",
    "box_mask",
    "cutmix",
    "identity_params",
    "mix",
    "mix_images",
    "mix_labels",
    "mixed_dtype",
    "mixup",
    "sample_boxes",
    "sample_boxes_minmax",
    "sample_cutmix",
    "sample_cutmix_boxes",
    "sample_lambda",
    "sample_mix",
    "sample_mixup",
    "sample_partners",
    "sample_plan",
    "soft_labels",
    "soft_target_cross_entropy",
    "softmax_bce",
    "symmetric_beta",
]
