#!/usr/bin/env bash
# Training variants x seeds on one GPU machine, each scored by eval-reid on the three unseen sets of
# the README ("Unseen matches"), which this script generates there. Run-to-run spread of team
# accuracy is several points on one set, so a recipe change needs several seeds to be judged.
#
#   benchmarks/seed_sweep.sh VARIANTS_FILE TRAIN_CROPS WORK_DIR
#
# VARIANTS_FILE: one run per line, "NAME --set key=value ..." (overrides of configs/train_cpu_small.yaml;
# lines starting with # are skipped), e.g. benchmarks/sweeps/team_input.txt. PAR runs train at once
# (default 6: the CPU preset's model leaves a GPU mostly idle; its data loading is the limit), and
# EVAL_PAR runs are scored at once (default 1; three eval-reid processes each).
# Prints "NAME setK {eval-reid JSON}" per run and set; benchmarks/seed_sweep_table.py averages them.
# DEVICE=cpu, UNSEEN_SEQS and UNSEEN_FRAMES shrink it to a smoke run on a machine without a GPU.
set -uo pipefail
if [ $# -ne 3 ]; then
    echo "usage: $0 VARIANTS_FILE TRAIN_CROPS WORK_DIR" >&2
    exit 2
fi
variants=$1 crops=$2 work=$3
py=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
mkdir -p "$work"
start=$SECONDS
device=${DEVICE:-cuda}
[ "$device" = cpu ] || nvidia-smi --query-gpu=name --format=csv,noheader

printf 'eval_fraction: 1.0\n' > "$work/eval_crops.yaml"
unseen() {  # unseen K SEED FIRST_INDEX: generate a set and its crop store (every crop held out)
    $py -m prtreid.cli synth --out "$work/unseen$1" --seqs "${UNSEEN_SEQS:-8}" --frames "${UNSEEN_FRAMES:-80}" --seed "$2" --first-index "$3" > "$work/unseen$1.log" 2>&1 &&
        $py -m prtreid.cli crops --data "$work/unseen$1" --out "$work/crops$1" --config "$work/eval_crops.yaml" >> "$work/unseen$1.log" 2>&1
    echo "unseen set $1: exit $?, $((SECONDS - start)) s"
}
unseen 1 5001 201 & unseen 2 5002 401 & unseen 3 5003 501 &

train() {  # train NAME OVERRIDES...
    local name=$1
    shift
    timeout 300 $py -m prtreid.cli train --data "$crops" --out "$work/$name" --config configs/train_cpu_small.yaml \
        --set train.device="$device" --set train.amp=true --set train.num_workers=2 --set train.eval_every=100 "$@" \
        > "$work/$name.log" 2>&1
    echo "$name trained: exit $?, $((SECONDS - start)) s"
}
mapfile -t runs < <(grep -v '^\s*\(#\|$\)' "$variants")
batch=()
for run in "${runs[@]}"; do
    # shellcheck disable=SC2086  # a variant line is a name and its overrides, split on spaces
    train $run & batch+=($!)
    if [ ${#batch[@]} -ge "${PAR:-6}" ]; then wait "${batch[@]}"; batch=(); fi
done
wait
evaluate() {  # evaluate NAME: eval-reid on the three sets, one line each
    local name=$1
    [ -f "$work/$name/model.pt" ] || { echo "$name: no model, see $work/$name.log"; return; }
    for k in 1 2 3; do
        $py -m prtreid.cli eval-reid --data "$work/crops$k" --model "$work/$name/model.pt" --json 2>/dev/null \
            | tail -1 | sed "s/^/$name set$k /" &
    done
    wait
}
batch=()
for run in "${runs[@]}"; do
    evaluate "${run%% *}" & batch+=($!)
    if [ ${#batch[@]} -ge "${EVAL_PAR:-1}" ]; then wait "${batch[@]}"; batch=(); fi
done
wait
echo "done: $((SECONDS - start)) s"
