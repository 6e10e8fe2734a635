"""Plain clients of a published folder: ``pipeline`` without remote code, in fresh processes that
never import nsmc_gen, under transformers 5.x (here) and 4.57 (its own venv).

The folder gives them the best decoding transformers' own fields can express (a calibrated EOS
bias in ``sequence_bias``) and never lets them generate past the model's positions; nsmc-gen's
own decoding zeroes that bias (tests/test_generation.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import transformers_client
from conftest import build_tiny_model, load_finetune_recipe
from test_transformers4 import tf4_python  # noqa: F401  (the 4.57 venv fixture)

from nsmc_gen.decoding import recommended_generation_config
from nsmc_gen.model_folder import RUN_FACTS, install_custom_generate, save_plain_eos_bias
from nsmc_gen.tokenization import save_tokenizer

PROMPTS = ["부정", "긍정"]


def run_client(python: Path, spec: dict, out: Path) -> dict:
    """``tests/transformers_client.py`` in a fresh process: only transformers, peft and torch."""
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(transformers_client.__file__).parent), "OMP_NUM_THREADS": "1"}
    command = [str(python), transformers_client.__file__, str(spec_path), str(out)]
    proc = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert not results["nsmc_gen_imported"]
    return results


def clients(tf4: Path, batches: dict[str, Path], out: Path, repeat: int, batch_size: int) -> dict[str, dict]:
    spec = {
        "batches": {name: str(folder) for name, folder in batches.items()},
        "batch": {"prompts": PROMPTS, "repeat": repeat, "batch_size": batch_size},
    }
    return {
        version: run_client(python, spec, out / version)["batches"]
        for version, python in (("tf4", tf4), ("tf5", Path(sys.executable)))
    }


@pytest.fixture(scope="module")
def few_positions_folder(tmp_path_factory, tokenizer) -> Path:
    """A finished folder whose model has 16 positions and never stops (random weights): a batch
    runs to its length limit, wherever that comes from."""
    folder = tmp_path_factory.mktemp("few-positions") / "model"
    build_tiny_model(tokenizer, n_positions=16).save_pretrained(folder)
    save_tokenizer(tokenizer, folder)
    recommended_generation_config(tokenizer, max_positions=16).save_pretrained(folder)
    install_custom_generate(folder)  # as every finished full model has it
    save_plain_eos_bias(folder, -1.0)
    return folder


@pytest.mark.slow
def test_a_batched_plain_pipeline_never_walks_past_the_last_position(
    tf4_python,  # noqa: F811
    few_positions_folder,
    tokenizer,
    tmp_path,
):
    """transformers 4.57's pipeline brings max_new_tokens=256 over the folder's: without a cap a
    batch of 20 indexes past position 15 (IndexError). 4.57 runs a local folder's custom_generate/
    even without trust_remote_code, and that caps the length; 5.x takes the folder's own limit."""
    results = clients(tf4_python, {"few": few_positions_folder}, tmp_path, repeat=10, batch_size=20)
    for version, batches in results.items():
        few = batches["few"]
        assert "error" not in few, (version, few.get("error"))
        assert len(few["texts"]) == 20, version
        prompts = [p for p in PROMPTS for _ in range(10)]
        # the texts start with their prompt (the space after it: tests/test_continuation_text.py)
        assert all(text.startswith(p) for text, p in zip(few["texts"], prompts, strict=True)), version
        assert max(few["characters"]) > 0, version  # it generated something
        # both versions read the same fields: the EOS bias in its list form, a length within positions
        assert few["sequence_bias"] == [[[tokenizer.eos_token_id], -1.0]], version
        assert few["max_new_tokens"] == 8 and few["positions"] == 16, version
    assert results["tf4"]["few"]["generate"].endswith("custom_generate.generate")
    assert results["tf5"]["few"]["generate"] == "transformers.generation.utils"


@pytest.fixture(scope="module")
def calibrated_embedded_run(tmp_path_factory) -> Path:
    """The recipe's defaults (the embedded base, the shipped sample) for a few steps, with the
    calibrations after training: enough for lengths to mean something."""
    out = tmp_path_factory.mktemp("embedded-calibrated")
    argv = [
        *("--max_steps", "30", "--per_device_train_batch_size", "16", "--max_length", "64"),
        *("--max_train_samples", "2000", "--max_eval_samples", "32", "--eval_strategy", "no"),
        *("--save_strategy", "no", "--sample_reviews", "0", "--cpu_threads", "1"),
        *("--calibration_reviews", "60", "--output_dir", str(out)),
    ]
    return load_finetune_recipe().main(argv)


@pytest.mark.slow
def test_plain_pipeline_writes_reviews_as_long_as_the_training_reviews(
    tf4_python,  # noqa: F811
    calibrated_embedded_run,
    tmp_path,
):
    """A behaviour check: the plain pipeline's mean review length is within 25% of the training
    reviews' (with the folder's defaults alone, 15.8 against 35.4 characters on the no-argument
    run's model). In 4.57 a local folder's plain pipeline runs its custom_generate/, which puts the
    folder's defaults over the pipeline's own (temperature 0.7, 256 new tokens). A copy without
    custom_generate/ runs transformers' own decoding: 5.x applies the folder's EOS bias; 4.57 reads
    it too, but samples with its pipeline's defaults, which nothing in a folder can change."""
    folder = calibrated_embedded_run
    lengths = json.loads((folder / RUN_FACTS).read_text(encoding="utf-8"))["review_lengths"]
    target = lengths["reference"]["mean_characters"]
    builtin_only = tmp_path / "builtin-only"
    shutil.copytree(folder, builtin_only, ignore=shutil.ignore_patterns("custom_generate", "checkpoint-*"))
    results = clients(
        tf4_python, {"run": folder, "builtin": builtin_only}, tmp_path, repeat=40, batch_size=20
    )
    plain = {
        (version, name): sum(batch["characters"]) / len(batch["characters"])
        for version, batches in results.items()
        for name, batch in batches.items()
        if "characters" in batch  # 4.57's own decoding may run past the positions: recorded as an error
    }
    print(f"\ntraining reviews {target:.1f} characters; plain pipelines {plain}; recipe's {lengths}")
    assert results["tf5"]["run"]["generate"] == "transformers.generation.utils"
    assert results["tf4"]["run"]["generate"].endswith("custom_generate.generate")
    for key in (("tf5", "run"), ("tf5", "builtin"), ("tf4", "run")):
        assert abs(plain[key] - target) <= 0.25 * target, (key, plain[key], target)
    builtin = results["tf4"]["builtin"]
    assert builtin["generate"] == "transformers.generation.utils"
    assert (
        builtin["sequence_bias"] == results["tf5"]["builtin"]["sequence_bias"]
    )  # the same field, read alike
    assert builtin["sequence_bias"][0][1] < 0
    # the recipe's own measurement of the plain path agrees
    assert abs(lengths["plain"]["mean_characters"] - target) <= 0.25 * target, lengths
