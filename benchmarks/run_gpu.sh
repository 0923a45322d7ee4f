#!/usr/bin/env bash
# The GPU benchmarks (part 4 of the benchmark issue; "GPU" in
# benchmarks/README.md), on a machine with one or more GPUs: the ops in
# float32 and bfloat16 (the core ops and the mixing family), the
# PreActResNet-18 CIFAR train step in bfloat16 and float32, and the mapped
# step on 1, 2, 4, 8 GPUs (strong
# and weak scaling; counts the machine lacks are skipped and listed as such).
# Writes benchmarks/results/ops_gpu.json, family_gpu.json,
# train_gpu_<dtype>.json, scaling_gpu.json, scaling_gpu_weak.json and RESULTS.md; the CPU results are
# left as they are.
#   benchmarks/run_gpu.sh                 # 1, 2, 4, 8 GPUs, as many as the machine has
#   DEVICES=1,2 benchmarks/run_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DEVICES=${DEVICES:-1,2,4,8}
# Fail early, and say why, when jax has no GPU backend (a CPU-only jaxlib).
$PY -c "import jax; print('GPUs:', [d.device_kind for d in jax.devices('gpu')])" || {
  echo 'jax sees no GPU: install a CUDA jax first, e.g. pip install -U "jax[cuda13]"' >&2
  exit 1
}
$PY benchmarks/bench_ops.py --platform gpu --dtypes float32,bfloat16
$PY benchmarks/bench_ops.py --platform gpu --dtypes float32,bfloat16 --ops family
for dtype in bfloat16 float32; do
  $PY benchmarks/bench_train.py --platform gpu --dtype "$dtype" --steps 50 --rounds 3
done
# The ImageNet recipes' networks in bfloat16 (train_<model>_gpu_bfloat16.json).
for model in resnet50 vit_s16; do
  $PY benchmarks/bench_train.py --platform gpu --dtype bfloat16 --model "$model" \
      --image-size 224 --batch-size 128 --steps 20 --rounds 3 --compile-steps 0 \
      --methods erm,mixup,cutmix,manifold_mixup,policy
done
$PY benchmarks/bench_scaling.py --platform gpu --devices "$DEVICES" --dtype bfloat16 \
    --batch-size 1024 --steps 50
$PY benchmarks/bench_scaling.py --platform gpu --devices "$DEVICES" --dtype bfloat16 \
    --per-device-batch 256 --steps 50 --out benchmarks/results/scaling_gpu_weak.json
$PY benchmarks/report.py
