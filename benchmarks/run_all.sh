#!/usr/bin/env bash
# Runs every benchmark in turn (about 20-25 minutes on 2 CPU cores) and writes
# benchmarks/results/*.json and RESULTS.md. Each script first waits (up to 10
# minutes) for the 1-minute load average to fall below $WAIT_LOAD.
#   benchmarks/run_all.sh                 # peers too, if benchmarks/.venv-peers exists
#   REF=<commit> benchmarks/run_all.sh    # also the params.py before/after A/B
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
WAIT_LOAD=${WAIT_LOAD:-0.7}
YNN_FLAGS=--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE
PEERS=()
if [ -x benchmarks/.venv-peers/bin/python ]; then
  PEERS=(--peers benchmarks/.venv-peers/bin/python)
fi
$PY benchmarks/bench_ops.py --allocator default "${PEERS[@]}" --wait-load "$WAIT_LOAD"
HAVE_JEMALLOC=$($PY -c "import sys; sys.path.insert(0, 'benchmarks'); import _common; print(int(_common.jemalloc_path() is not None))")
if [ "$HAVE_JEMALLOC" = 1 ]; then
  $PY benchmarks/bench_ops.py --allocator jemalloc "${PEERS[@]}" --wait-load "$WAIT_LOAD"
else
  echo "libjemalloc.so.2 not found: skipping the jemalloc run (apt-get install libjemalloc2)" >&2
fi
if [ -n "${REF:-}" ]; then
  $PY benchmarks/bench_kernel_ab.py --ref "$REF" --allocator default --wait-load "$WAIT_LOAD"
  if [ "$HAVE_JEMALLOC" = 1 ]; then
    $PY benchmarks/bench_kernel_ab.py --ref "$REF" --allocator jemalloc --wait-load "$WAIT_LOAD"
  fi
fi
$PY benchmarks/bench_train.py "${PEERS[@]}" --wait-load "$WAIT_LOAD" ${TRAIN_ARGS:-}
# The same with XLA:CPU's YNNPACK dot and reduce fusions (see README: CPU training).
XLA_FLAGS="${XLA_FLAGS:-} $YNN_FLAGS" $PY benchmarks/bench_train.py "${PEERS[@]}" \
    --wait-load "$WAIT_LOAD" --out benchmarks/results/train_ynn.json ${TRAIN_ARGS:-}
$PY benchmarks/bench_scaling.py --wait-load "$WAIT_LOAD"
$PY benchmarks/report.py
