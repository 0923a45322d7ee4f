"""Training: methods as plans, the mapped train step, checkpoints and the loop."""

from mixjax.training.checkpoint import Checkpointer
from mixjax.training.compiler_options import CPU_COMPILER_OPTIONS, default_compiler_options
from mixjax.training.loop import (
    NonFiniteLossError,
    compare,
    evaluate,
    format_table,
    method_from_config,
    train_and_evaluate,
)
from mixjax.training.methods import METHODS, PRESETS, Method, draw_plan
from mixjax.training.metrics import eval_sums, expected_calibration_error, summarize
from mixjax.training.parallel import BACKENDS, DataParallel
from mixjax.training.state import (
    TrainState,
    create_train_state,
    make_optimizer,
    make_schedule,
)
from mixjax.training.step import Augment, draw_shard_plan, make_eval_step, make_train_step

__all__ = [
    "BACKENDS",
    "CPU_COMPILER_OPTIONS",
    "METHODS",
    "PRESETS",
    "Augment",
    "Checkpointer",
    "DataParallel",
    "Method",
    "NonFiniteLossError",
    "TrainState",
    "compare",
    "create_train_state",
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
    "method_from_config",
    "summarize",
    "train_and_evaluate",
]
