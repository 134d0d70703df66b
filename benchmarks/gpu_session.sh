#!/usr/bin/env bash
# Every GPU measurement in one run (issue 32), for a lent GPU machine's single try:
#   bash benchmarks/gpu_session.sh [PITI_CHECKOUT]        (output also in $OUT/gpu_session.log)
# Each step has its own time limit so a slow one leaves the others' numbers; ~9 minutes on one H100.
set -u
log="${OUT:-.}/gpu_session.log"
step() { local limit=$1; shift; echo "== $* (limit ${limit}s)" | tee -a "$log"; timeout "$limit" "$@" 2>&1 | tee -a "$log"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$log"
step 150 python -m pytest -q -x -m cuda tests/cuda
step 200 python -m benchmarks.dataset_speed --precisions fp32,bf16,fp16 --batches 1,16,auto
step 120 python -m benchmarks.dataset_speed --precisions bf16 --batches auto --compile
if [ -n "${1:-}" ]; then
  step 120 python -m benchmarks.dataset_speed --precisions fp32 --batches 1,16 --official "$1"
fi
