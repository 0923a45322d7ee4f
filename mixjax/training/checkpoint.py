"""Checkpoints with orbax: the whole train state plus a little JSON metadata.

A checkpoint holds the parameters, BatchNorm statistics, optimiser state and
step; the RNG and the data position are functions of the seed and the step
(``fold_in(key(seed), step)``, epoch ``step // steps_per_epoch``), so restoring
the step restores them too. Orbax writes each checkpoint to a temporary folder
and renames it when complete, so a run killed at any moment leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import os
from typing import Any

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores train states under ``directory``.

  Args:
    directory: where checkpoints live (one sub-folder per step).
    max_to_keep: how many of the newest to keep.
  """

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True),
        item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: chex.ArrayTree, meta: dict[str, Any]) -> None:
    """Saves ``state`` (host copy) and JSON-able ``meta`` as checkpoint ``step``."""
    state = jax.device_get(state)
    self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        force=True)

  def restore(self, state: chex.ArrayTree, step: int | None = None):
    """Restores checkpoint ``step`` (default: the newest) into ``state``'s structure.

    Returns:
      ``(state, meta)``.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    target = jax.tree.map(np.asarray, jax.device_get(state))
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    return restored["state"], dict(restored["meta"])

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
