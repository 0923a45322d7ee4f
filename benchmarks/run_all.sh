#!/usr/bin/env bash
# Runs every benchmark in turn (about 50 minutes on 2 CPU cores) and writes
# benchmarks/results/*.json and RESULTS.md. Each script first waits (up to 10
# minutes) for the 1-minute load average to fall below $WAIT_LOAD.
#   benchmarks/run_all.sh                 # peers too, if benchmarks/.venv-peers exists
#   REF=<commit> benchmarks/run_all.sh    # also the params.py before/after A/B
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
WAIT_LOAD=${WAIT_LOAD:-0.7}
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
# The mixing family (FMix, ResizeMix, SaliencyMix, GridMix, SmoothMix, 3-way Mixup).
$PY benchmarks/bench_ops.py --ops family --allocator default --wait-load "$WAIT_LOAD"
if [ "$HAVE_JEMALLOC" = 1 ]; then
  $PY benchmarks/bench_ops.py --ops family --allocator jemalloc --wait-load "$WAIT_LOAD"
fi
if [ -n "${REF:-}" ]; then
  $PY benchmarks/bench_kernel_ab.py --ref "$REF" --allocator default --wait-load "$WAIT_LOAD"
  if [ "$HAVE_JEMALLOC" = 1 ]; then
    $PY benchmarks/bench_kernel_ab.py --ref "$REF" --allocator jemalloc --wait-load "$WAIT_LOAD"
  fi
fi
$PY benchmarks/bench_train.py "${PEERS[@]}" --wait-load "$WAIT_LOAD" ${TRAIN_ARGS:-}
if [ "$HAVE_JEMALLOC" = 1 ]; then
  $PY benchmarks/bench_train.py --allocator jemalloc "${PEERS[@]}" --wait-load "$WAIT_LOAD" ${TRAIN_ARGS:-}
fi
# The same compiled with XLA's default options (on CPU: convolutions on YNNPACK).
$PY benchmarks/bench_train.py "${PEERS[@]}" --xla-defaults \
    --wait-load "$WAIT_LOAD" --out benchmarks/results/train_xla_defaults.json ${TRAIN_ARGS:-}
$PY benchmarks/bench_cpu_options.py --wait-load "$WAIT_LOAD"
$PY benchmarks/bench_input.py --wait-load "$WAIT_LOAD"
if [ "$HAVE_JEMALLOC" = 1 ]; then
  $PY benchmarks/bench_backward.py --allocator jemalloc "${PEERS[@]}" --wait-load "$WAIT_LOAD"
fi
$PY benchmarks/bench_scaling.py --wait-load "$WAIT_LOAD"
$PY benchmarks/report.py
