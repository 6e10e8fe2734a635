#!/usr/bin/env bash
# Reproduces the shipped embedded base (src/nsmc_gen/assets/base) with one command:
#     bash recipes/embedded/pretrain_base.sh [NSMC_DIR] [RUNS_DIR]
# Five stages, as it was built (each continues from the previous one; see the base's README.md).
# Every stage checkpoints and resumes: run the script again after an interruption.
# About 3.7 h on 2 CPU cores (stage 3: 46 min at ~3,700 tokens/s; stage 4: 72 min, 24,000 steps at
# ~3,500 tokens/s, validation 4.862 -> 4.615 nats/token; stage 5: ~74 min at ~3,300 tokens/s,
# 4.615 -> 4.553); the last stage writes the package's base (its config keeps dropout 0.1, which
# the fine-tuning recipe then trains with).
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
    --output_dir "$RUNS/pretrain-stage3" --export_dir "$RUNS/base-stage3"
$PRETRAIN --init_from "$RUNS/base-stage3" --dropout 0 --per_device_train_batch_size 32 \
    --learning_rate 8e-4 --warmup_steps 0.02 --max_steps 24000 --eval_steps 4000 --save_steps 1000 \
    --output_dir "$RUNS/pretrain-stage4" --export_dir "$RUNS/base-stage4"
# Stage 5: dropout 0.1 (stage 4 ended ~0.4 nats below its validation loss on train: memorising).
$PRETRAIN --init_from "$RUNS/base-stage4" --dropout 0.1 --per_device_train_batch_size 32 \
    --learning_rate 5e-4 --warmup_steps 0.02 --max_steps 24000 --eval_steps 4000 --save_steps 1000 \
    --output_dir "$RUNS/pretrain-stage5"
