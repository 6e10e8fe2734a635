"""recipes/pretrain_base.py: each stage exports a complete model folder the next stage and the
fine-tuning recipe load by path (recipes/embedded/pretrain_base.sh chains them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import write_nsmc_slice

from nsmc_gen.data import VALIDATION_FILE
from nsmc_gen.modeling import load_embedded_tokenizer, load_model_and_tokenizer

REPO = Path(__file__).resolve().parents[1]


def pretrain(nsmc: Path, runs: Path, stage: str, *extra: str) -> Path:
    export = runs / f"base-{stage}"
    command = [sys.executable, str(REPO / "recipes" / "pretrain_base.py"), "--nsmc_dir", str(nsmc)]
    command += ["--output_dir", str(runs / f"pretrain-{stage}"), "--export_dir", str(export)]
    command += ["--max_steps", "2", "--per_device_train_batch_size", "4", "--report_to", "none", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=runs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return export


def test_a_stage_exports_a_folder_that_loads_by_path_and_the_next_stage_continues_it(tmp_path):
    nsmc = write_nsmc_slice(tmp_path, 48, 4)
    held_out = (nsmc / "ratings_test.txt").read_text(encoding="utf-8")
    (nsmc / VALIDATION_FILE).write_text(held_out, encoding="utf-8")
    first = pretrain(nsmc, tmp_path, "stage1")
    second = pretrain(nsmc, tmp_path, "stage2", "--init_from", str(first), "--dropout", "0")

    model, tokenizer = load_model_and_tokenizer(str(second))  # its own tokenizer, not a guess
    text = "긍정 배우들 연기가 좋았다"
    assert tokenizer(text).input_ids == load_embedded_tokenizer()(text).input_ids
    assert model.config.vocab_size == len(tokenizer)
    card = (second / "README.md").read_text(encoding="utf-8")
    assert "- continued from a previous stage:" in card
    assert f"--export_dir {first}" in card  # the first stage's command, nested under the second's
