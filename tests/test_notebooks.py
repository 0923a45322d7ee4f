"""The notebooks: stored without outputs, and each runs top to bottom without an error.

Each notebook is executed with nbclient in a fresh ``python3`` kernel that runs *this*
interpreter (``sys.executable``, so the kernel sees the same installed mixjax as pytest), in
``notebooks/`` as its working directory, with ``CI=true`` (the notebooks shrink their runs),
``MPLBACKEND=Agg`` and one CPU device (``conftest.py``'s forced device count is removed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300
# Printed by a cell the test adds in front of each notebook, to check the kernel's interpreter.
PREFIX_MARKER = "mixjax-kernel-prefix:"

nbformat = pytest.importorskip("nbformat")


def _ids(paths):
  return [p.name for p in paths]


def test_notebooks_exist():
  names = {p.name for p in NOTEBOOKS}
  assert {"01_mixing_gallery.ipynb", "02_manifold_mixup_2d.ipynb",
          "03_training_comparison.ipynb", "04_claims.ipynb"} <= names, sorted(names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_without_outputs(path):
  nb = nbformat.read(path, as_version=4)
  nbformat.validate(nb)
  assert nb.metadata.get("kernelspec", {}).get("name") == "python3", path.name
  dirty = [i for i, cell in enumerate(nb.cells)
           if cell.cell_type == "code" and (cell.get("outputs") or
                                            cell.get("execution_count") is not None)]
  assert not dirty, (
      f"{path.name}: code cells {dirty} have outputs or execution counts; clear them before "
      "committing (e.g. jupyter nbconvert --clear-output --inplace notebooks/*.ipynb).")


def _kernel_env() -> dict[str, str]:
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)               # conftest.py forces 4 CPU devices; the notebooks use 1.
  env.pop("MIXJAX_SAVE_FIGURES", None)     # never write figures into the repository from a test.
  env.update({"CI": "true", "MPLBACKEND": "Agg"})
  return env


def _venv_kernel_manager_class():
  """An ``AsyncKernelManager`` whose ``python3`` kernel is ``sys.executable -m ipykernel_launcher``.

  Not whichever ``python3`` kernelspec happens to be first on the Jupyter path (a user-level
  one may point at another interpreter), so no manual ``ipykernel install`` step is needed.
  """
  from jupyter_client.kernelspec import KernelSpec
  from jupyter_client.manager import AsyncKernelManager

  spec = KernelSpec(
      argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      display_name=f"Python 3 ({sys.prefix})", language="python", name="python3")

  class VenvKernelManager(AsyncKernelManager):
    @property
    def kernel_spec(self):
      return spec

  return VenvKernelManager


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs(path):
  pytest.importorskip("ipykernel")
  nbclient = pytest.importorskip("nbclient")
  nb = nbformat.read(path, as_version=4)
  check = nbformat.v4.new_code_cell(
      f"import sys\nprint({PREFIX_MARKER!r}, sys.prefix)")
  check.id = "mixjax-test-kernel-check"
  nb.cells.insert(0, check)
  client = nbclient.NotebookClient(
      nb, kernel_name="python3", timeout=CELL_TIMEOUT_S, startup_timeout=120,
      kernel_manager_class=_venv_kernel_manager_class(),
      resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
  client.execute(env=_kernel_env())   # Raises CellExecutionError on any error in any cell.

  printed = "".join(out.get("text", "") for out in nb.cells[0].outputs
                    if out.get("output_type") == "stream")
  assert PREFIX_MARKER in printed, printed
  kernel_prefix = printed.split(PREFIX_MARKER, 1)[1].strip()
  assert os.path.realpath(kernel_prefix) == os.path.realpath(sys.prefix), (
      f"the kernel ran in {kernel_prefix}, not in pytest's environment {sys.prefix}")
  errors = [(i, out.get("ename")) for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" for out in cell.get("outputs", [])
            if out.get("output_type") == "error"]
  assert not errors, errors
