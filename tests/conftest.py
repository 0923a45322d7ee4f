"""Test set-up: four forced CPU devices, so multi-device code runs anywhere.

XLA reads the flag when the backend starts, so it is set before jax is imported.
The suite runs in pytest-xdist worker processes (README's test command) with
``--dist loadfile``: a module's tests, and so its module fixtures and compiled
programs, stay on one worker.
"""

import os

# A device count already in XLA_FLAGS wins, so the single-device tests can also
# run on one device (a different float order): XLA_FLAGS=--xla_force_host_platform_device_count=1.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

# One persistent compilation cache for the whole run: xdist's workers, and the train.py
# processes and notebook kernels the tests start, inherit it from the controller, so a
# program compiled once (the same train step in a rerun, a resume, another test) is
# loaded instead of compiled again. A fresh folder per run, removed at the end; a
# JAX_COMPILATION_CACHE_DIR already set (by a developer who keeps one) is used as it is.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _OWN_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(
      prefix="mixjax-tests-jax-cache-")
  # Every program, not only those over jax's default 1 s: the suite compiles thousands of
  # small ones, and modules (whose compiled programs are dropped after each, below) and
  # workers share many of them.
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Drops jax's compiled programs after each test module.

  Every loaded XLA:CPU executable holds about three memory mappings, and a process
  may hold at most ``vm.max_map_count`` of them (65,530 by default). Once it has,
  LLVM's JIT fails ("LLVM compilation error: Cannot allocate memory") and the next
  compile crashes the process with SIGSEGV instead of raising (jax 0.10.2;
  reproduced by compiling distinct programs in a loop under a lowered
  ``vm.max_map_count``). The whole suite in one process passed that limit ~88 %
  through; one of two xdist workers still reaches ~40,000 mappings without this.
  No test relies on a program compiled by another module.
  """
  yield
  jax = sys.modules.get("jax")
  if jax is None:  # Nothing compiled (test_suite_isolation's demo): no jax to import.
    return
  jax.clear_caches()
  gc.collect()


# The longest modules start first, longest first (measured: 2-core CPU, CI run), so that
# the run ends on short ones and no worker is left alone with a long one at the end. The
# scheduler below keeps this order (xdist's own orders modules by their number of tests).
FIRST = ("test_training.py", "test_recipes.py", "test_notebooks.py", "test_multiprocess.py",
         "test_device_count.py", "test_model_methods.py", "test_transforms.py",
         "test_saliencymix.py", "test_mask_mixers.py", "test_fmix.py", "test_gradients.py",
         "test_targets.py",
         "test_global_batch.py", "test_mixers.py", "test_models.py", "test_cutmix.py",
         "test_hyperparams.py", "test_data.py", "test_nway.py", "test_optimizers.py",
         "test_compiler_options.py")


def pytest_collection_modifyitems(config, items):
  rank = {name: i for i, name in enumerate(FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))


def pytest_xdist_make_scheduler(config, log):
  """``--dist loadfile`` in collection order that runs a test which crashed its worker
  only once.

  pytest-xdist 3.8's scope schedulers put a crashed test back in the queue, so every
  replacement worker ran it again (and crashed) until the restart limit, and the rest
  of its module never ran. Here it is reported once, by name, and its module goes on
  in a new worker (tests/test_suite_isolation.py).
  """
  if config.getoption("dist") != "loadfile":
    return None
  config.option.loadscopereorder = False  # Modules in FIRST's order, not by test count.
  from xdist.scheduler import LoadFileScheduling

  class OnceLoadFileScheduling(LoadFileScheduling):

    def remove_node(self, node):
      workload = self.assigned_work.pop(node)
      pending = [(scope, nodeid) for scope, unit in workload.items()
                 for nodeid, done in unit.items() if not done]
      if not pending:
        return None
      scope, crashed = pending[0]  # A worker runs its tests in the order they were sent.
      workload[scope][crashed] = True
      self.workqueue.update({s: u for s, u in workload.items() if not all(u.values())})
      for other in self.assigned_work:
        self._reschedule(other)
      return crashed

  return OnceLoadFileScheduling(config, log)


def pytest_unconfigure(config):
  if _OWN_CACHE is not None:
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)
