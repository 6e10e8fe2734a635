"""The training recipe: recipes parse or fail early; eval metric; LoRA; the finished folder; resume; DDP."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_nsmc_slice
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, GenerationConfig, TrainerCallback, TrainingArguments

import nsmc_gen
from nsmc_gen.arguments import DataArguments, ModelArguments, parse_args
from nsmc_gen.calibration import PRIOR_STEPS
from nsmc_gen.decoding import recommended_generation_config
from nsmc_gen.files import current_umask
from nsmc_gen.formatting import PackedReviewCollator, ReviewCollator, ReviewFormat, tokenize_reviews
from nsmc_gen.generation import generate_reviews
from nsmc_gen.hub import validate_model_folder
from nsmc_gen.model_folder import MERGED_DIR, RUN_FACTS
from nsmc_gen.modeling import EMBEDDED, NSMC_SAMPLE
from nsmc_gen.training import (
    apply_lora,
    build_trainer,
    load_model,
    perplexity_metrics,
    prepare_datasets,
    review_token_nll,
    set_cpu_threads,
)

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
FINETUNE = RECIPES / "finetune.py"


def _load_finetune():
    spec = importlib.util.spec_from_file_location("finetune_recipe", FINETUNE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


finetune = _load_finetune()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared CPU two threads stall on each
    other (the LoRA run below: 113 s with 2 threads, 33 s with 1, on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory) -> Path:
    """An NSMC folder of 120 train / 20 test rows taken from the shipped sample."""
    return write_nsmc_slice(tmp_path_factory.mktemp("tiny-nsmc"), 120, 20)


def tiny_args(model_dir: Path, data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        *("--model_name_or_path", str(model_dir), "--data_dir", str(data_dir)),
        *("--validation_size", "16", "--max_length", "48", "--output_dir", str(output_dir)),
        *("--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8"),
        *("--learning_rate", "3e-3", "--warmup_steps", "0", "--logging_steps", "1"),
        *("--sample_reviews", "0", "--dataloader_num_workers", "0"),
        *("--cpu_threads", "1"),  # the embedded recipe's 0 would give the rest of the suite every core
        *("--calibrate_length_prior", "false"),  # one test below calibrates
        *extra,
    ]


def write_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return path


# ---------------------------------------------------------------- arguments


def test_recipe_then_command_line_override_library_defaults(tmp_path):
    recipe = write_yaml(tmp_path / "r.yaml", {"learning_rate": 1.0e-3, "lora_r": 8, "max_steps": 50})
    script, model_args, data_args, training_args = parse_args(
        ["--config", str(recipe), "--max_steps", "20", "--output_dir", str(tmp_path / "out")]
    )
    assert training_args.learning_rate == 1.0e-3  # from the recipe
    assert model_args.lora_r == 8
    assert training_args.max_steps == 20  # the command line wins
    assert training_args.output_dir == str(tmp_path / "out")
    assert training_args.seed == 7 and training_args.num_train_epochs == 3  # library defaults (the course's)
    assert data_args.max_length == 128 and model_args.model_name_or_path == EMBEDDED


@pytest.mark.parametrize(
    "recipe", sorted(p for p in RECIPES.glob("*/*.yaml") if p.parent.name != "accelerate_configs")
)
def test_every_shipped_recipe_parses_with_its_values(recipe):
    values = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    parsed = {}
    for obj in parse_args(["--config", str(recipe)]):
        parsed.update(vars(obj))
    for key, value in values.items():
        got = getattr(parsed[key], "value", parsed[key])  # enums (eval_strategy, ...) compare by value
        assert got == value, key


def test_no_argument_run_uses_the_embedded_recipe():
    values = yaml.safe_load((RECIPES / "embedded" / "default.yaml").read_text(encoding="utf-8"))
    _, model_args, data_args, training_args = parse_args([], default_config=finetune.DEFAULT_CONFIG)
    assert model_args.model_name_or_path == EMBEDDED == values["model_name_or_path"]
    assert Path(data_args.data_dir) == NSMC_SAMPLE  # the shipped sample
    assert training_args.learning_rate == values["learning_rate"]
    assert training_args.output_dir == values["output_dir"]


@pytest.mark.parametrize(
    ("argv", "error", "words"),
    [
        (["--learning_rte", "1e-3"], ValueError, ["--learning_rte", "learning_rate"]),
        (["--max_step", "3"], ValueError, ["--max_step"]),  # no silent abbreviation
        (["--per_device_train_batch_size", "0"], ValueError, ["per_device_train_batch_size", ">= 1"]),
        (["--gradient_accumulation_steps", "0"], ValueError, ["gradient_accumulation_steps"]),
        (["--config", "no/such/recipe.yaml"], FileNotFoundError, ["no/such/recipe.yaml"]),
        (["--data_dir", "no/such/folder"], FileNotFoundError, ["data_dir", "no/such/folder"]),
        (["--resume_from_checkpoint", "no/such/ckpt"], FileNotFoundError, ["resume_from_checkpoint"]),
        (["--lora_dropout", "1.5"], ValueError, ["lora_dropout", "[0, 1)"]),
        (["--packing", "--attn_implementation", "eager"], ValueError, ["packing", "sdpa"]),
        (["--early_stopping_patience", "2"], ValueError, ["load_best_model_at_end"]),
        (["--merge_lora"], ValueError, ["use_peft"]),
        (["--use_peft", "--from_scratch"], ValueError, ["use_peft", "from_scratch", "never saved"]),
        (["--calibration_reviews", "0"], ValueError, ["calibration_reviews", ">= 1"]),
        (
            ["--use_peft", "--push_to_hub", "--hub_model_id", "org/x"],
            ValueError,
            ["push_to_hub", "merge_lora", "'embedded'"],
        ),
    ],
)
def test_bad_arguments_fail_before_any_work(argv, error, words):
    with pytest.raises(error) as caught:
        parse_args(argv)
    for word in words:
        assert word in str(caught.value)


def test_unknown_recipe_key_names_the_file_and_a_suggestion(tmp_path):
    recipe = write_yaml(tmp_path / "typo.yaml", {"learning_rate": 1.0e-3, "lora_alfa": 8})
    with pytest.raises(
        ValueError, match=r"unknown key 'lora_alfa' in .*typo\.yaml \(did you mean 'lora_alpha'\?\)"
    ):
        parse_args(["--config", str(recipe)])


@pytest.mark.slow  # a fresh interpreter importing torch + transformers: ~10-30 s on a busy machine
def test_recipe_script_reports_a_bad_config_and_exits_nonzero(tmp_path):
    recipe = write_yaml(tmp_path / "typo.yaml", {"num_epochs": 3})
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(FINETUNE), "--config", str(recipe), "--output_dir", str(out)],
        capture_output=True,
        text=True,
        env={**_subprocess_env(), "OMP_NUM_THREADS": "1"},
        timeout=180,
    )
    assert result.returncode != 0
    assert "finetune.py: error: config: unknown key 'num_epochs'" in result.stderr
    assert not out.exists()  # nothing started


@pytest.mark.parametrize(
    ("extra", "message"),
    [([], "hub_model_id as namespace/name"), (["--hub_model_id", "org/nsmc-gen"], "no Hub token")],
)
def test_push_request_is_checked_before_training(tmp_path, monkeypatch, extra, message):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        finetune.main(["--push_to_hub", *extra, "--output_dir", str(out)])
    assert not out.exists()


def test_max_length_beyond_the_model_positions_fails_at_load(tokenizer):
    with pytest.raises(ValueError, match="max_length must be <= 128"):
        load_model(ModelArguments(from_scratch=True), DataArguments(max_length=256))


# ---------------------------------------------------------------- LoRA


def test_lora_unknown_target_lists_the_real_ones(tiny_model):
    with pytest.raises(ValueError, match=r"\['q_proj'\] not in GPT2LMHeadModel.*c_attn"):
        apply_lora(tiny_model, ModelArguments(use_peft=True, lora_target_modules=["c_attn", "q_proj"]))


def test_lora_on_gpt2_conv1d_sets_fan_in_fan_out_and_trains_only_adapters(tiny_model):
    model = apply_lora(
        tiny_model, ModelArguments(use_peft=True, lora_r=4, lora_target_modules=["c_attn", "c_fc"])
    )
    config = model.peft_config["default"]
    assert config.fan_in_fan_out is True and config.r == 4
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable} == {"c_attn", "c_fc"}


# ---------------------------------------------------------------- evaluation metric


def _per_review_nll(model, examples):
    """Reference: each review alone (no padding), summed NLL and predicted-token count."""
    nll, count = 0.0, 0
    for ids in examples:
        ids_t = torch.tensor([ids])
        with torch.no_grad():
            loss = model(input_ids=ids_t, labels=ids_t).loss.item()
        nll += loss * (len(ids) - 1)
        count += len(ids) - 1
    return nll, count


@pytest.mark.parametrize("packing", [False, True])
def test_eval_metric_counts_review_tokens_only(tiny_model, tokenizer, packing):
    rows = {
        "document": ["정말 재밌어요 최고의 영화", "별로", "배우들 연기가 좋았지만 스토리가 너무 지루했다"],
        "label": [1, 0, 0],
    }
    examples = tokenize_reviews(rows, tokenizer)["input_ids"]
    if packing:
        batch = PackedReviewCollator(tokenizer.pad_token_id, max_length=64)(
            [{"input_ids": e} for e in examples]
        )
    else:
        batch = ReviewCollator(tokenizer.pad_token_id)([{"input_ids": e} for e in examples])
    with torch.no_grad():
        logits = tiny_model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    sums = review_token_nll(logits, batch["labels"])
    metrics = perplexity_metrics(type("P", (), {"predictions": sums.numpy()})())
    nll, count = _per_review_nll(tiny_model, examples)
    assert metrics["tokens"] == count
    assert metrics["token_loss"] == pytest.approx(nll / count, rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-5)


# ---------------------------------------------------------------- full runs


def test_full_run_leaves_a_hub_ready_folder_with_real_figures(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    sampled_priors = []

    def sample(model, *args, **kwargs):  # the recipe's sample reviews: which length prior they use
        sampled_priors.append(getattr(model.generation_config, "length_prior", None))
        return generate_reviews(model, *args, **kwargs)

    monkeypatch.setattr(finetune, "generate_reviews", sample)
    argv = tiny_args(
        tiny_model_dir,
        tiny_data_dir,
        out,
        *("--max_steps", "6", "--eval_strategy", "steps", "--eval_steps", "2"),
        *("--save_strategy", "steps", "--save_steps", "2", "--load_best_model_at_end"),
        *("--metric_for_best_model", "perplexity", "--greater_is_better", "false"),
        *("--early_stopping_patience", "5", "--report_to", "tensorboard", "--sample_reviews", "2"),
        # the one recipe run that calibrates the length prior, on few reviews
        *("--calibrate_length_prior", "true", "--calibration_reviews", "4"),
    )
    folder = finetune.main(argv)
    assert folder == out
    assert validate_model_folder(out).kind == "model"  # the Hub helper's own readiness check (card included)
    assert "perplexity" in (out / "README.md").read_text(encoding="utf-8")
    for name in ("model.safetensors", "config.json", "README.md", RUN_FACTS):  # safetensors writes 0600
        assert stat.S_IMODE((out / name).stat().st_mode) & 0o444 == 0o444 & ~current_umask(), name

    # generation_config.json: the project's decoding defaults, written explicitly
    saved = GenerationConfig.from_pretrained(out).to_diff_dict()
    expected = recommended_generation_config(_tokenizer(out)).to_diff_dict()
    for key in (
        "do_sample",
        "top_p",
        "top_k",
        "temperature",
        "repetition_penalty",
        "max_new_tokens",
        "eos_token_id",
    ):
        assert saved[key] == expected[key], key
    # the calibrated length prior: an EOS bias per generated-token count
    assert len(saved["length_prior"]) == PRIOR_STEPS and all(map(math.isfinite, saved["length_prior"]))
    assert any(bias != 0 for bias in saved["length_prior"])  # moved from its start, 0 everywhere

    facts = json.loads((out / RUN_FACTS).read_text(encoding="utf-8"))
    state = json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))
    assert facts["global_step"] == state["global_step"] == 6 and facts["max_steps"] == 6
    assert facts["train_rows"] == 120 - 16 and facts["validation_rows"] == 16
    assert facts["base_model"] == str(tiny_model_dir) and facts["peft"] is None
    assert facts["batch_size"] == 8 and facts["processes"] == 1
    assert 0 < facts["train_tokens"] == state["num_input_tokens_seen"]
    # best-model selection: the final model is the best checkpoint's, and its figures are real
    perplexities = [e["eval_perplexity"] for e in state["log_history"] if "eval_perplexity" in e]
    assert len(perplexities) >= 3
    assert facts["eval_perplexity"] == pytest.approx(min(perplexities), rel=1e-6)
    assert facts["eval_perplexity"] == pytest.approx(math.exp(facts["eval_loss"]))
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    nll, count = _validation_nll(reloaded, tiny_data_dir, out)
    assert count == facts["eval_tokens"]
    assert nll / count == pytest.approx(facts["eval_loss"], rel=1e-4)

    assert list((out / "runs").rglob("events.out.tfevents.*"))  # --report_to tensorboard
    printed = capsys.readouterr().out
    for sentiment in ("positive", "negative"):
        reviews = generate_reviews(reloaded, _tokenizer(out), sentiment, num_return_sequences=2, seed=7)
        assert f"\n{sentiment}:\n" + "".join(f"  - {review}\n" for review in reviews) in printed
    # the sample reviews were drawn under the calibrated prior (the tiny model's texts never end, so
    # the texts alone cannot show it)
    assert sampled_priors == [saved["length_prior"]] * 2


def _tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def _validation_nll(model, data_dir, folder):
    """Recompute the validation loss from scratch: the same carve, one review at a time."""
    _, _, data_args, training_args = parse_args(
        [
            "--data_dir",
            str(data_dir),
            "--validation_size",
            "16",
            "--max_length",
            "48",
            "--output_dir",
            str(folder),
        ]
    )
    data = prepare_datasets(data_args, _tokenizer(folder), training_args)
    return _per_review_nll(model, data["validation"]["input_ids"])


def test_lora_train_save_reload_merge(tiny_model_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "lora"
    argv = tiny_args(
        tiny_model_dir,
        tiny_data_dir,
        out,
        *("--use_peft", "--lora_r", "4", "--lora_target_modules", "c_attn", "c_fc", "--merge_lora"),
        *("--sample_reviews", "1"),  # generation still works on the model after the merge
        *("--max_steps", "4", "--eval_strategy", "no", "--save_strategy", "no", "--learning_rate", "2e-2"),
        *("--positive_word", "좋아", "--negative_word", "싫어"),  # a prompt format of the user's own
    )
    folder = finetune.main(argv)
    assert folder == out / MERGED_DIR
    # both folders carry the run's prompt format, not the default words'
    own = ReviewFormat(positive_word="좋아", negative_word="싫어")
    tokenizer = _tokenizer(out)
    for written in (out, out / MERGED_DIR):
        guidance = GenerationConfig.from_pretrained(written).sentiment_guidance
        assert guidance["prompt_ids"] == {s: own.prompt_ids(tokenizer, s) for s in ("positive", "negative")}
        assert guidance["prompt_ids"]["positive"] != ReviewFormat().prompt_ids(tokenizer, "positive")
    adapter = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter["fan_in_fan_out"] is True and adapter["r"] == 4
    assert adapter["base_model_name_or_path"] == str(tiny_model_dir)
    assert not (out / "model.safetensors").exists()  # the adapter only, not a copy of the base
    assert validate_model_folder(out).kind == "adapter"
    assert validate_model_folder(out / MERGED_DIR).kind == "model"
    facts = json.loads((out / RUN_FACTS).read_text(encoding="utf-8"))
    assert facts["peft"] == {"r": 4, "alpha": 32, "dropout": 0.05, "target_modules": ["c_attn", "c_fc"]}
    assert facts["merged"] is False
    assert json.loads((out / MERGED_DIR / RUN_FACTS).read_text(encoding="utf-8"))["merged"] is True

    from peft import PeftModel

    ids = torch.tensor([[5, 300, 1200, 77, 2]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        base_logits = base(ids).logits
        reloaded = PeftModel.from_pretrained(base, out).eval()
        adapter_logits = reloaded(ids).logits
        merged_on_the_fly = reloaded.merge_and_unload()(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out / MERGED_DIR).eval()
        merged_logits = merged(ids).logits
    assert not torch.allclose(adapter_logits, base_logits, atol=1e-4)  # training moved the adapter
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(merged_on_the_fly, adapter_logits, atol=1e-5, rtol=1e-4)


class SimulatedKill(Exception):
    pass


class KillAfterSave(TrainerCallback):
    """Dies right after the first checkpoint is on disk, like a process killed at that moment."""

    def on_save(self, args, state, control, **kwargs):
        raise SimulatedKill(state.global_step)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tiny_model_dir, tiny_data_dir, tmp_path):
    common = ("--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3", "--eval_strategy", "no")
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    finetune.main(tiny_args(tiny_model_dir, tiny_data_dir, straight, *common))

    with pytest.raises(SimulatedKill):
        finetune.main(
            tiny_args(tiny_model_dir, tiny_data_dir, interrupted, *common), callbacks=[KillAfterSave()]
        )
    assert (interrupted / "checkpoint-3").is_dir() and not (interrupted / "model.safetensors").exists()
    finetune.main(tiny_args(tiny_model_dir, tiny_data_dir, interrupted, *common))  # finds checkpoint-3 itself

    state = json.loads((interrupted / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 6
    expected, resumed = (
        load_file(straight / "model.safetensors"),
        load_file(interrupted / "model.safetensors"),
    )
    start = load_file(Path(tiny_model_dir) / "model.safetensors")
    assert expected.keys() == resumed.keys()
    assert any(not torch.allclose(expected[k], start[k]) for k in expected)  # the runs did train
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], atol=1e-6, rtol=1e-5)


def _subprocess_env() -> dict[str, str]:
    src = str(Path(nsmc_gen.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_on_cpu_with_the_embedded_default(tiny_data_dir, tmp_path):
    out = tmp_path / "ddp"
    command = [
        *(sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"),
        *("--main_process_port", str(_free_port()), str(FINETUNE)),
        *("--data_dir", str(tiny_data_dir), "--validation_size", "16", "--max_train_samples", "32"),
        *("--max_eval_samples", "8", "--per_device_train_batch_size", "4", "--num_train_epochs", "1"),
        *("--save_strategy", "no", "--per_device_eval_batch_size", "4"),
        *("--output_dir", str(out), "--sample_reviews", "0", "--logging_steps", "1"),
        *("--calibrate_length_prior", "false"),
    ]
    env = {**_subprocess_env(), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads((out / RUN_FACTS).read_text(encoding="utf-8"))
    assert facts["base_model"] == EMBEDDED
    assert facts["processes"] == 2
    assert facts["batch_size"] == 8  # 4 per process x 2
    assert facts["global_step"] == 32 // 8  # each process saw half of every step's batch
    assert result.stdout.count("model folder:") == 1  # one main process, not two lone ones
    assert (out / "model.safetensors").is_file()


def test_packing_and_dynamic_padding_give_the_same_eval(tiny_model_dir, tiny_data_dir, tmp_path):
    results = {}
    for packing in (False, True):
        script, model_args, data_args, training_args = parse_args(
            tiny_args(
                tiny_model_dir, tiny_data_dir, tmp_path / str(packing), *(["--packing"] if packing else [])
            )
        )
        model, tokenizer = load_model(model_args, data_args)
        data = prepare_datasets(data_args, tokenizer, training_args)
        results[packing] = build_trainer(model, tokenizer, data, script, data_args, training_args).evaluate()
    assert results[True]["eval_tokens"] == results[False]["eval_tokens"]
    assert results[True]["eval_token_loss"] == pytest.approx(results[False]["eval_token_loss"], rel=1e-5)


@pytest.mark.slow
def test_push_to_hub_publishes_the_finished_folder_in_one_commit(tiny_model_dir, tiny_data_dir, tmp_path):
    from hub_server import HubServer

    server = HubServer({"hf_trainer_test": {"org"}}).start()
    try:
        out = tmp_path / "pushed"
        argv = tiny_args(tiny_model_dir, tiny_data_dir, out, "--max_steps", "2", "--eval_strategy", "no")
        argv += ["--save_strategy", "no", "--push_to_hub", "--hub_model_id", "org/nsmc-gen-tiny"]
        env = {**_subprocess_env(), "OMP_NUM_THREADS": "1", "HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "0"}
        env.update(HF_TOKEN="hf_trainer_test", HF_HUB_DISABLE_XET="1")
        result = subprocess.run(
            [sys.executable, str(FINETUNE), *argv], capture_output=True, text=True, env=env, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        commits = server.commits("model", "org/nsmc-gen-tiny")
        assert len(commits) == 2  # the repository's creation, then ONE commit with the whole folder
        pushed = commits[-1].files
        assert pushed["model.safetensors"] == (out / "model.safetensors").read_bytes()
        assert pushed["generation_config.json"] == (out / "generation_config.json").read_bytes()
        assert b"org/nsmc-gen-tiny" in pushed["README.md"]  # the card was rendered for this repository
        assert not any(name.startswith(("checkpoint-", "runs/")) for name in pushed)
        assert "pushed:" in result.stdout
    finally:
        server.stop()


def test_cpu_threads_0_shares_this_process_cores_among_local_processes(monkeypatch, tmp_path):
    training_args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(None, training_args) == before  # unset: OMP_NUM_THREADS stands
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(10 * os.cpu_count()))
        assert set_cpu_threads(0, training_args) == 1  # more processes than cores: one each
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
        assert set_cpu_threads(0, training_args) == len(os.sched_getaffinity(0))
        assert set_cpu_threads(3, training_args) == 3
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="cpu_threads must be >= 0"):
        parse_args(["--cpu_threads", "-1", "--output_dir", str(tmp_path)])
