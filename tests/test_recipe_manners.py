"""The recipe's manners: a finished output folder is not silently resumed, a crashed run is, and a
run logged to a file shows one progress bar, not hundreds of lines, nor DeepSpeed's accelerator line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, load_finetune_recipe, write_nsmc_slice
from transformers import TrainerCallback

from nsmc_gen.model_folder import RUN_FACTS
from nsmc_gen.training import check_output_dir, last_checkpoint, parse_args


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_nsmc_slice(tmp_path_factory.mktemp("manners-nsmc"), 48, 8)


def args(data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    """The embedded recipe on tiny settings: a from-scratch 1-layer model, a few steps."""
    return [
        *("--from_scratch", "--data_dir", str(data_dir), "--validation_size", "8"),
        *("--max_length", "32", "--output_dir", str(output_dir), "--max_steps", "3"),
        *("--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8"),
        *("--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", "2"),
        *("--logging_steps", "1", "--sample_reviews", "0", "--calibrate_length_prior", "false"),
        *("--dataloader_num_workers", "0", "--cpu_threads", "1"),
        *extra,
    ]


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory) -> Path:
    return load_finetune_recipe().main(args(data_dir, tmp_path_factory.mktemp("finished")))


def facts(folder: Path) -> dict:
    return json.loads((folder / RUN_FACTS).read_text(encoding="utf-8"))


def test_a_finished_folder_is_refused_naming_the_flags(finished_run, data_dir):
    before = (finished_run / RUN_FACTS).read_bytes()
    *_, training_args = parse_args(args(data_dir, finished_run, "--max_steps", "5"))
    with pytest.raises(ValueError) as refused:
        last_checkpoint(training_args)  # what the recipe asks before training
    message = str(refused.value)
    assert f"output_dir {finished_run} already holds a finished model ({RUN_FACTS}, config.json)" in message
    assert "--overwrite_output_dir true" in message
    assert f"--resume_from_checkpoint {finished_run / 'checkpoint-3'}" in message
    for flag in ("--overwrite_output_dir", "--resume_from_checkpoint", "--output_dir"):
        assert flag in message
    assert (finished_run / RUN_FACTS).read_bytes() == before
    with pytest.raises(ValueError, match="already holds a finished model"):
        check_output_dir(training_args)  # what a script asks first
    for told in (("--overwrite_output_dir", "false"), ("--resume_from_checkpoint", "no/such/ckpt")):
        with pytest.raises((ValueError, FileNotFoundError)):
            check_output_dir(parse_args(args(data_dir, finished_run, *told))[-1])


def test_the_recipe_script_refuses_before_any_work(finished_run, data_dir):
    proc = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "finetune.py"), *args(data_dir, finished_run)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode != 0
    assert "already holds a finished model" in proc.stderr.splitlines()[-1]
    assert "train [" not in proc.stderr  # not one step


def test_overwrite_trains_afresh_with_true_facts(finished_run, data_dir, tmp_path):
    folder = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(finished_run), str(folder)], check=True)
    load_finetune_recipe().main(args(data_dir, folder, "--max_steps", "2", "--overwrite_output_dir", "true"))
    assert (facts(folder)["global_step"], facts(folder)["max_steps"]) == (2, 2)
    assert sorted(p.name for p in folder.glob("checkpoint-*")) == ["checkpoint-2"]  # the old run's are gone


def test_an_explicit_checkpoint_resumes_a_finished_run(finished_run, data_dir, tmp_path):
    folder = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(finished_run), str(folder)], check=True)
    checkpoint = folder / "checkpoint-3"
    resume = ("--resume_from_checkpoint", str(checkpoint), "--max_steps", "5")
    load_finetune_recipe().main(args(data_dir, folder, *resume))
    assert (facts(folder)["global_step"], facts(folder)["max_steps"]) == (5, 5)


class Crash(Exception):
    pass


class CrashAfterSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise Crash(state.global_step)


def test_a_crashed_run_still_resumes_by_itself(data_dir, tmp_path, caplog):
    folder = tmp_path / "crashed"
    with pytest.raises(Crash):
        load_finetune_recipe().main(args(data_dir, folder), callbacks=[CrashAfterSave()])
    assert (folder / "checkpoint-2").is_dir() and not (folder / RUN_FACTS).exists()
    with caplog.at_level("WARNING", logger="nsmc_gen.training"):
        load_finetune_recipe().main(args(data_dir, folder))
    assert f"resuming from {folder / 'checkpoint-2'}" in caplog.text
    assert facts(folder)["global_step"] == 3


def test_a_logged_run_shows_one_bar_and_no_deepspeed_line(data_dir, tmp_path):
    """stdout and stderr to pipes, as in CI or `... > log 2>&1`."""
    out = tmp_path / "logged"
    argv = args(data_dir, out, "--max_steps", "20", "--save_strategy", "no", "--eval_strategy", "steps")
    argv += ["--eval_steps", "10"]
    proc = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "finetune.py"), *argv],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "Setting accelerator to CPU" not in output
    bars = [line for line in proc.stderr.splitlines() if line.startswith("train [")]
    assert 2 <= len(bars) <= 11 and bars[-1].split("]")[1].startswith(" 100%  20/20 steps  loss ")
    evals = [line for line in proc.stderr.splitlines() if line.startswith("eval  step")]
    assert len(evals) == 3 and evals[0].startswith("eval  step 10: token_loss ")  # steps 10, 20, the final
    assert "{'loss'" not in output  # the logging_steps dicts
    training = proc.stderr[proc.stderr.index("train [") :]
    assert [line for line in training.replace("\r", "\n").splitlines() if "it/s]" in line] == [
        line for line in training.replace("\r", "\n").splitlines() if line.startswith("Writing model shards")
    ]  # no tqdm bar of training or evaluation: only saving's one-step bar
    print(
        f"\n{len(output.splitlines())} lines of output for 20 steps logged at every step:\n"
        + proc.stderr[-800:]
    )
