"""Beyond one process: the recipe under DeepSpeed ZeRO-2/3 (2 CPU processes over gloo) and the
shipped accelerate configs, FSDP2's included, checked by accelerate's own parser.

The DeepSpeed runs are the user's command, ``accelerate launch --config_file
recipes/accelerate_configs/deepspeed_zero3_cpu.yaml recipes/finetune.py ...``, on the embedded
default and a 120-review slice of the shipped sample.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_nsmc_slice
from transformers import AutoModelForCausalLM

import nsmc_gen
from nsmc_gen.arguments import parse_args
from nsmc_gen.formatting import ReviewCollator
from nsmc_gen.hub import validate_model_folder
from nsmc_gen.model_folder import MERGED_DIR, RUN_FACTS
from nsmc_gen.modeling import load_embedded_default
from nsmc_gen.training import prepare_datasets, review_token_nll

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "recipes" / "accelerate_configs"
FINETUNE = ROOT / "recipes" / "finetune.py"
ZERO3_CPU = CONFIGS / "deepspeed_zero3_cpu.yaml"
ZERO2_OVERRIDES = ("--zero_stage", "2", "--zero3_init_flag", "false", "--zero3_save_16bit_model", "false")
# The recipe's progress line when output is not a terminal (training.LogProgressCallback): with 6 steps
# it is drawn at every step, with the loss logged at that step (logging_steps 1).
LOSS_LINE = re.compile(r" (\d+)/\d+ steps  loss ([0-9.]+)")


def losses_by_step(output: str) -> dict[int, str]:
    return {int(step): loss for step, loss in LOSS_LINE.findall(output)}


needs_deepspeed = pytest.mark.skipif(
    __import__("importlib").util.find_spec("deepspeed") is None,
    reason='deepspeed is an extra: pip install -e ".[deepspeed]"',
)


# ---------------------------------------------------------------- the shipped configs


def _launch_args(config: Path):
    """What ``accelerate launch --config_file config`` makes of the file (accelerate's own parser)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    parsed = launch_command_parser().parse_args(["--config_file", str(config), str(FINETUNE)])
    return _validate_launch_command(parsed)[0]


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_accelerate_config_parses_as_its_engine(config):
    args = _launch_args(config)
    engine = {"deepspeed": args.use_deepspeed, "fsdp": args.use_fsdp, "multi_gpu": args.multi_gpu}
    expected = next((name for name in engine if config.stem.startswith(name)), None)
    assert [name for name, on in engine.items() if on] == ([expected] if expected else [])
    if args.use_deepspeed:
        assert args.zero_stage == int(re.search(r"zero(\d)", config.stem).group(1))
        assert args.offload_optimizer_device == "none"  # DeepSpeedCPUAdam needs a compiled op


def test_fsdp2_config_wraps_the_models_gpt2_blocks(monkeypatch):
    """FSDP cannot run on CPU (accelerate drops it for DDP), so the file is checked the way the run
    reads it: launch args -> environment -> accelerate's plugin -> the wrap policy on our model."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    for key, value in prepare_multi_gpu_env(_launch_args(CONFIGS / "fsdp.yaml")).items():
        monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"  # the finished folder holds ordinary weights
    assert plugin.cpu_ram_efficient_loading is True
    model, _ = load_embedded_default()
    plugin.set_auto_wrap_policy(model)  # raises when the model has no such block class
    wrapped = plugin.auto_wrap_policy.keywords["transformer_layer_cls"]
    assert {cls.__name__ for cls in wrapped} == {"GPT2Block"}
    assert sum(type(m) in wrapped for m in model.modules()) == model.config.n_layer

    plugin = FullyShardedDataParallelPlugin()
    with pytest.raises(ValueError, match="GPT2Block"):
        plugin.set_auto_wrap_policy(torch.nn.Sequential(torch.nn.Linear(2, 2)))


# ---------------------------------------------------------------- DeepSpeed runs on 2 CPU processes


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory) -> Path:
    """120 train / 20 test reviews of the shipped sample, in the official format."""
    return write_nsmc_slice(tmp_path_factory.mktemp("nsmc-slice"), 120, 20)


def recipe_args(data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        *("--data_dir", str(data_dir), "--validation_size", "16", "--max_length", "48"),
        *("--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8"),
        *("--output_dir", str(output_dir), "--sample_reviews", "0", "--logging_steps", "1"),
        *("--warmup_steps", "0", "--dataloader_num_workers", "0"),
        *("--calibrate_length_prior", "false"),  # tests/test_training.py runs the calibration
        *extra,
    ]


def launch(config: Path, argv: list[str], *overrides: str) -> list[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [
        *(sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)),
        *("--main_process_port", str(port), *overrides, str(FINETUNE), *argv),
    ]


def run_env() -> dict[str, str]:
    src = str(Path(nsmc_gen.__file__).resolve().parents[1])
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def run_recipe(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=run_env(), timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout + result.stderr


def folder_token_loss(folder: Path, argv: list[str]) -> float:
    """The saved model's per-token loss on the run's own validation split, through the same data
    code, collator and metric as the trainer's evaluation, but from the folder in this process."""
    from transformers import AutoTokenizer

    _, _, data_args, training_args = parse_args(argv)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    validation = prepare_datasets(data_args, tokenizer, training_args)["validation"]
    batch = ReviewCollator(tokenizer.pad_token_id)([{"input_ids": ids} for ids in validation["input_ids"]])
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    nll, tokens = review_token_nll(logits, batch["labels"]).sum(dim=0)
    return float(nll / tokens)


@pytest.mark.slow
@needs_deepspeed
def test_zero3_run_saves_the_full_trained_model(slice_dir, tmp_path):
    out = tmp_path / "zero3"
    argv = recipe_args(slice_dir, out, "--max_steps", "10", "--save_strategy", "no")
    run_recipe(launch(ZERO3_CPU, argv))

    folder = validate_model_folder(out)
    assert folder.kind == "model"
    assert {"model.safetensors", "tokenizer.json", "generation_config.json", "README.md"} <= set(folder.files)
    assert (out / "custom_generate" / "generate.py").is_file()
    facts = json.loads((out / RUN_FACTS).read_text(encoding="utf-8"))
    assert (facts["processes"], facts["batch_size"], facts["global_step"]) == (2, 8, 10)
    umask = os.umask(0)
    os.umask(umask)
    readable = 0o444 & ~umask  # safetensors writes the gathered weights 0600; the folder is for everyone
    assert stat.S_IMODE((out / "model.safetensors").stat().st_mode) & 0o444 == readable

    saved = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    base, _ = load_embedded_default()
    for (name, trained), (_, start) in zip(
        saved.state_dict().items(), base.state_dict().items(), strict=True
    ):
        assert trained.shape == start.shape, name  # gathered, not a ZeRO-3 partition
    assert any(not torch.equal(a, b) for a, b in zip(saved.parameters(), base.parameters(), strict=True))

    # What was saved is what the trainer evaluated after training (float32; summation order differs).
    reported = json.loads((out / "eval_results.json").read_text(encoding="utf-8"))["eval_token_loss"]
    assert folder_token_loss(out, argv) == pytest.approx(reported, abs=1e-4)


@pytest.mark.slow
@needs_deepspeed
def test_lora_under_zero3_saves_an_adapter_and_merges_it(slice_dir, tmp_path):
    out = tmp_path / "zero3-lora"
    argv = recipe_args(
        slice_dir,
        out,
        *("--use_peft", "--lora_r", "4", "--merge_lora", "--learning_rate", "2e-2"),
        *("--max_steps", "4", "--save_strategy", "no", "--eval_strategy", "no"),
        *("--sample_reviews", "1"),  # sampled by the main process alone: from the folder, not the shards
    )
    output = run_recipe(launch(ZERO3_CPU, argv))
    assert output.count("model folder:") == 1 and "\npositive:\n  - " in output
    assert_adapter_and_merge(out)


def assert_adapter_and_merge(out: Path) -> None:
    from peft import PeftModel

    assert validate_model_folder(out).kind == "adapter"
    assert validate_model_folder(out / MERGED_DIR).kind == "model"
    ids = torch.tensor([[5, 300, 1200, 77, 2]])
    base, _ = load_embedded_default()
    with torch.no_grad():
        base_logits = base.eval()(ids).logits
        adapter_logits = PeftModel.from_pretrained(base, out).eval()(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(out / MERGED_DIR).eval()(ids).logits
    assert not torch.allclose(adapter_logits, base_logits, atol=1e-4)  # the adapter trained
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-4, rtol=1e-4)


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process under it (torchrun's workers do not share its group)."""
    import psutil

    launcher = psutil.Process(process.pid)
    for child in [*launcher.children(recursive=True), launcher]:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.slow
@needs_deepspeed
def test_killed_zero2_lora_run_resumes_where_it_stopped(slice_dir, tmp_path):
    out = tmp_path / "zero2-lora"
    argv = recipe_args(
        slice_dir,
        out,
        *("--use_peft", "--lora_r", "4", "--merge_lora", "--learning_rate", "2e-2"),
        *("--max_steps", "6", "--save_strategy", "steps", "--save_steps", "2", "--eval_strategy", "no"),
    )
    command = launch(ZERO3_CPU, argv, *ZERO2_OVERRIDES)

    # Kill every process of the run once checkpoint-2 is on disk and step 3 has been logged.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=run_env(),
    )
    seen = ""
    deadline = time.monotonic() + 600
    try:
        for line in process.stdout:
            seen += line
            if 3 in losses_by_step(seen) and (out / "checkpoint-2" / "trainer_state.json").is_file():
                break
            assert time.monotonic() < deadline, seen[-3000:]
    finally:
        kill_tree(process)
    killed_losses = losses_by_step(seen)
    assert 3 in killed_losses, seen[-3000:]
    assert not (out / "adapter_model.safetensors").exists()  # it really died mid-run

    resumed = run_recipe(command)
    assert "resuming from" in resumed and "checkpoint-2" in resumed
    resumed_losses = losses_by_step(resumed)
    assert sorted(resumed_losses) == [3, 4, 5, 6]  # steps 3..6
    assert resumed_losses[3] == killed_losses[3]  # step 3 again, from the checkpoint: same loss
    state = json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 6
    assert_adapter_and_merge(out)
