"""Helpers for tests that inspect traced programs."""


def num_eqns(jaxpr) -> int:
  """Equations in a jaxpr, counting those of nested jaxprs (jit, cond, while...)."""
  count = 0
  for eqn in jaxpr.eqns:
    count += 1
    for value in eqn.params.values():
      for sub in value if isinstance(value, (list, tuple)) else (value,):
        sub = getattr(sub, "jaxpr", sub)
        if hasattr(sub, "eqns"):
          count += num_eqns(sub)
  return count
