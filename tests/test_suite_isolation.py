"""How the suite runs: the README's test command is CI's, and in its worker processes a
crash or a hang fails that test by name while the other tests still run."""

import os
import re
import subprocess
import sys
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_test_command():
  readme = open(os.path.join(ROOT, "README.md")).read()
  commands = re.findall(
      r"^pip install uv && uv pip install --compile-bytecode -e \"\.\[test\]\" && "
      r"python -m pytest .*$", readme, re.M)
  assert commands, ("the README's test command is a line "
                    "`pip install uv && uv pip install --compile-bytecode -e \".[test]\" && ...`")
  return commands[0]


def test_ci_runs_the_readmes_test_command():
  command = _readme_test_command()
  ci = open(os.path.join(ROOT, ".ci", "run")).read().splitlines()
  assert command in ci, f"{command!r} is not a line of .ci/run"
  # The main job is one pasted line too.
  readme = open(os.path.join(ROOT, "README.md")).read()
  assert re.search(r"^pip install -e \"\.\[train\]\" && python train\.py "
                   r"--config=configs/digits\.py$", readme, re.M)


DEMO = textwrap.dedent("""
    import ctypes, time

    import pytest

    def test_segfaults():
      ctypes.string_at(0)  # SIGSEGV, as XLA's compiler did.

    @pytest.mark.timeout(2)
    def test_hangs():
      time.sleep(600)

    @pytest.mark.parametrize("i", range(4))
    def test_passes(i):
      pass
    """)


def test_a_crashed_or_hung_worker_fails_its_test_by_name(tmp_path):
  (tmp_path / "test_demo.py").write_text(DEMO)
  # This suite's conftest (its scheduler), without jax: the demo imports none.
  (tmp_path / "conftest.py").write_text(open(os.path.join(ROOT, "tests", "conftest.py")).read())
  # The README's pytest options and this project's ini (its timeout method) on the demo.
  options = _readme_test_command().split("python -m pytest ", 1)[1].split()
  started = time.monotonic()
  result = subprocess.run(
      [sys.executable, "-m", "pytest", *options, "-p", "no:cacheprovider",
       "-c", os.path.join(ROOT, "pyproject.toml"), "--rootdir", str(tmp_path),
       "-o", "addopts=", str(tmp_path / "test_demo.py")],
      cwd=tmp_path, capture_output=True, text=True, timeout=120)
  out = result.stdout + result.stderr
  assert result.returncode == 1, out[-3000:]
  assert time.monotonic() - started < 100  # test_hangs sleeps 600 s: its timeout ended it.
  assert re.search(r"crashed while running '\S*test_demo\.py::test_segfaults'", out), out[-3000:]
  assert re.search(r"crashed while running '\S*test_demo\.py::test_hangs'", out), out[-3000:]
  assert re.search(r"^2 failed, 4 passed", result.stdout.splitlines()[-1]), out[-1000:]

