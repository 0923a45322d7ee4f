"""Checkpoints with orbax: the train state, a little JSON metadata and the input's position.

A checkpoint holds the parameters, BatchNorm statistics, optimiser state and
step; the step's RNG is ``fold_in(key(seed), step)``, so restoring the step
restores it too. The input pipeline's position, Grain's iterator state after the
last batch trained, is saved with Grain's orbax handler (one
``process_<i>-of-<n>.json`` per process). Orbax writes each checkpoint to a
temporary folder and renames it when complete, so a run killed at any moment
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from typing import Any

import chex
import grain
import grain.checkpoint
import jax
import numpy as np
import orbax.checkpoint as ocp


class _InputPosition:
  """What Grain's checkpoint handler saves and restores: one iterator state, as bytes.

  The handler calls ``get_state`` / ``set_state`` on an iterator; the trainer reads
  ahead, so it passes the state recorded after the last batch it trained instead.
  """

  def __init__(self, state: dict | None = None):
    self.state = state

  def get_state(self) -> bytes:
    return json.dumps(self.state).encode()

  def set_state(self, state: bytes) -> None:
    self.state = json.loads(state)

  def start_prefetch(self) -> None:
    pass


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
        item_names=("state", "meta", "input"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: chex.ArrayTree, meta: dict[str, Any],
           input_state: dict | None = None) -> None:
    """Saves ``state`` (host copy), JSON-able ``meta`` and this process's input position.

    ``input_state``: the Grain iterator state after the last batch trained
    (:class:`~mixjax.data.pipeline.TrainInput`), or ``None``.
    """
    state = jax.device_get(state)
    items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
    if input_state is not None:
      items["input"] = grain.checkpoint.CheckpointSave(_InputPosition(input_state))
    self._manager.save(step, args=ocp.args.Composite(**items), force=True)

  def restore_input(self, step: int) -> dict:
    """This process's input position saved in checkpoint ``step``.

    Raises:
      ValueError: the checkpoint has none for this process (``process_<i>-of-<n>``):
        it was written by another number of processes.
    """
    restored = self._manager.restore(
        step, args=ocp.args.Composite(
            input=grain.checkpoint.CheckpointRestore(_InputPosition())))
    return restored["input"].state

  def restore(self, state: chex.ArrayTree, step: int | None = None):
    """Restores checkpoint ``step`` (default: the newest) into ``state``'s structure.

    Returns:
      ``(state, meta)``; :meth:`restore_input` gives the input's position.
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
