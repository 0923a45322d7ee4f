"""Test set-up: four forced CPU devices, so multi-device code runs anywhere.

XLA reads the flag when the backend starts, so it is set before jax is imported.
"""

import os

# A device count already in XLA_FLAGS wins, so the single-device tests can also
# run on one device (a different float order): XLA_FLAGS=--xla_force_host_platform_device_count=1.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Drops jax's compiled programs after each test module.

  The whole suite compiles thousands of XLA programs in one process; run so, it
  crashed (SIGSEGV inside XLA's compiler, at the same test in test_smoothmix.py,
  ~88 % through), while the same modules passed when started later in the order.
  No test relies on a program compiled by another module.
  """
  yield
  import jax
  jax.clear_caches()
  gc.collect()
