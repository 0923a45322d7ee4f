"""mixjax: Mixup, CutMix, Manifold Mixup and their family as pure, jit-compiled JAX functions.

Every op takes an explicit PRNG key. Sampling (``sample_*``) is separate from
applying (:func:`apply_mix`), so any mix can be replayed and inspected.
"""

from mixjax.axes import from_spatial, to_spatial
from mixjax.boxes import box_area, box_mask, sample_boxes, sample_boxes_minmax
from mixjax.compose import Choice
from mixjax.cutmix import CutMix, cutmix, sample_cutmix, sample_cutmix_boxes
from mixjax.dense import mix_dense
from mixjax.detection import MixedBoxes, mix_boxes
from mixjax.fmix import FMix, fmix, sample_fmix
from mixjax.gridmix import GridMix, gridmix, sample_gridmix
from mixjax.labels import soft_labels, soft_target_cross_entropy
from mixjax.losses import sigmoid_bce, softmax_bce
from mixjax.manifold import MixPlan, sample_plan
from mixjax.mixer import Identity, Mixer, box_params, mask_params, spatial_size
from mixjax.mixup import Mixup, mixup, sample_mixup
from mixjax.params import (
    MixParams,
    apply_mix,
    common_structure,
    gate_params,
    identity_params,
    mix_images,
    mix_labels,
    mixed_dtype,
    select_params,
)
from mixjax.policy import MixConfig, Policy, mix, sample_mix
from mixjax.random_erasing import apply_erasing, random_erasing, sample_erasing
from mixjax.registry import get_mixer, list_mixers, register_mixer
from mixjax.resizemix import ResizeMix, resizemix, sample_resizemix, sample_resizemix_boxes
from mixjax.saliencymix import SaliencyMix, saliencymix, sample_saliencymix
from mixjax.sampling import (
    sample_dirichlet,
    sample_lambda,
    sample_partner_sets,
    sample_partners,
    symmetric_beta,
)
from mixjax.smoothmix import SmoothMix, sample_smoothmix, smoothmix
from mixjax.video import sample_per_frame

__version__ = "0.1.0"

__all__ = [
    "Choice",
    "CutMix",
    "FMix",
    "GridMix",
    "Identity",
    "MixConfig",
    "MixParams",
    "MixedBoxes",
    "MixPlan",
    "Mixer",
    "Mixup",
    "Policy",
    "ResizeMix",
    "SaliencyMix",
    "SmoothMix",
    "apply_erasing",
    "apply_mix",
    "box_area",
    "box_mask",
    "box_params",
    "common_structure",
    "cutmix",
    "fmix",
    "gate_params",
    "get_mixer",
    "gridmix",
    "identity_params",
    "list_mixers",
    "mask_params",
    "mix",
    "from_spatial",
    "mix_boxes",
    "mix_dense",
    "mix_images",
    "mix_labels",
    "mixed_dtype",
    "mixup",
    "random_erasing",
    "register_mixer",
    "resizemix",
    "saliencymix",
    "sample_boxes",
    "sample_boxes_minmax",
    "sample_cutmix",
    "sample_cutmix_boxes",
    "sample_dirichlet",
    "sample_erasing",
    "sample_fmix",
    "sample_gridmix",
    "sample_lambda",
    "sample_mix",
    "sample_mixup",
    "sample_partner_sets",
    "sample_partners",
    "sample_per_frame",
    "sample_plan",
    "sample_resizemix",
    "sample_resizemix_boxes",
    "sample_saliencymix",
    "sample_smoothmix",
    "select_params",
    "smoothmix",
    "soft_labels",
    "soft_target_cross_entropy",
    "sigmoid_bce",
    "softmax_bce",
    "spatial_size",
    "symmetric_beta",
    "to_spatial",
]
