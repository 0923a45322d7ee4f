"""Training: mixers as plans, the mapped train step, checkpoints and the loop."""

from mixjax.training.checkpoint import Checkpointer
from mixjax.training.compiler_options import CPU_COMPILER_OPTIONS, default_compiler_options
from mixjax.training.loop import (
    TIMING_FIELDS,
    NonFiniteLossError,
    compare,
    evaluate,
    format_table,
    train_and_evaluate,
)
from mixjax.training.methods import (
    MANIFOLD_METHODS,
    SHARED_FIELDS,
    check_mixer,
    config_sections,
    draw_plan,
    method_fields,
    method_mixer,
    method_names,
    mixer_from_config,
)
from mixjax.training.metrics import eval_sums, expected_calibration_error, summarize
from mixjax.training.optimizers import (
    OPTIMIZERS,
    decay_mask,
    make_optimizer,
    optimizer_from_config,
)
from mixjax.training.parallel import BACKENDS, DataParallel
from mixjax.training.state import (
    TrainState,
    create_train_state,
    make_schedule,
    update_ema,
)
from mixjax.training.step import Augment, draw_shard_plan, make_eval_step, make_train_step

__all__ = [
    "BACKENDS",
    "CPU_COMPILER_OPTIONS",
    "MANIFOLD_METHODS",
    "OPTIMIZERS",
    "SHARED_FIELDS",
    "TIMING_FIELDS",
    "Augment",
    "Checkpointer",
    "DataParallel",
    "NonFiniteLossError",
    "TrainState",
    "check_mixer",
    "compare",
    "config_sections",
    "create_train_state",
    "decay_mask",
    "default_compiler_options",
    "draw_plan",
    "draw_shard_plan",
    "eval_sums",
    "evaluate",
    "expected_calibration_error",
    "format_table",
    "make_eval_step",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "method_fields",
    "method_mixer",
    "method_names",
    "mixer_from_config",
    "optimizer_from_config",
    "summarize",
    "train_and_evaluate",
    "update_ema",
]
