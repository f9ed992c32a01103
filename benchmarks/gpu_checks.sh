#!/usr/bin/env bash
# The GPU figures the README quotes, in one run on a machine with a CUDA device (no Ray needed):
# the CUDA tests, training throughput (float32 vs float16 vs bfloat16 AMP, local fit), each bulk
# pipeline stage alone on the GPU, and the CPU preset trained on the GPU for 5 and 20 epochs, each
# model scored on a held-out crop store.
#
#   benchmarks/gpu_checks.sh TRAIN_CROPS UNSEEN_CROPS WORK_DIR
#
# TRAIN_CROPS: a crop store (the demo's demo_out/crops); UNSEEN_CROPS: a crop store of sequences the
# training never saw (eval_fraction 1.0). Every step has its own time limit, so one slow step cannot
# take the rest with it.
set -uo pipefail
if [ $# -ne 3 ]; then
    echo "usage: $0 TRAIN_CROPS UNSEEN_CROPS WORK_DIR" >&2
    exit 2
fi
crops=$1 unseen=$2 work=$3
py=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$work"

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    echo "=== $name (limit ${limit}s)"
    timeout "$limit" "$@"
    echo "=== $name: exit $?, $((SECONDS - start)) s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
step tests 120 $py -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py
step train-throughput 120 $py benchmarks/train_throughput.py --gpu --workers --data "$crops" --work "$work/tt" \
    --backbone resnet50 --size 256 128 --p 16 --k 4 --epochs 4 --loader-workers 8
step bulk-stages 90 $py benchmarks/bulk.py --gpu --stages-only --image-size 256 128 --imgsz 640
for epochs in 5 20; do
    step "train-${epochs}-epochs" 150 $py -m prtreid.cli train --data "$crops" --out "$work/run$epochs" \
        --config configs/train_cpu_small.yaml --epochs "$epochs" \
        --set train.device=cuda --set train.amp=true --set train.num_workers=6
    step "eval-${epochs}-epochs" 45 $py -m prtreid.cli eval-reid --data "$unseen" --model "$work/run$epochs/model.pt" --json
done
