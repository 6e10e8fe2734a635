#!/usr/bin/env bash
# Reproduces the shipped embedded base (src/nsmc_gen/assets/base) with one command:
#     bash recipes/embedded/pretrain_base.sh [NSMC_DIR] [RUNS_DIR]
# Three stages, as it was built (each continues from the previous one; see the base's README.md).
# Every stage checkpoints and resumes: run the script again after an interruption.
# About 70 min on 2 quiet CPU cores (stage 3: 46 min at ~3,700 tokens/s); the last stage writes the package's base.
set -euo pipefail
NSMC_DIR=${1:-../shared/nsmc-rebuild}
RUNS=${2:-runs}
PRETRAIN="python $(dirname "$0")/../pretrain_base.py --nsmc_dir $NSMC_DIR"

$PRETRAIN --output_dir "$RUNS/pretrain-stage1" --export_dir "$RUNS/base-stage1"
$PRETRAIN --init_from "$RUNS/base-stage1" --dropout 0 --per_device_train_batch_size 32 \
    --learning_rate 1.5e-3 --warmup_steps 0.02 --max_steps 3000 --eval_steps 500 --save_steps 250 \
    --output_dir "$RUNS/pretrain-stage2" --export_dir "$RUNS/base-stage2"
$PRETRAIN --init_from "$RUNS/base-stage2" --dropout 0 --per_device_train_batch_size 32 \
    --learning_rate 1.5e-3 --warmup_steps 0.02 --max_steps 16000 --eval_steps 1000 --save_steps 500 \
    --output_dir "$RUNS/pretrain-stage3"
