"""Shared fixtures. Tests never touch the network: the Hub is offline and HF_HOME is temporary.

The environment is set before anything imports huggingface_hub (which reads it at import).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_HF_HOME = tempfile.mkdtemp(prefix="nsmc-gen-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402

from nsmc_gen.decoding import recommended_generation_config  # noqa: E402
from nsmc_gen.modeling import embedded_config, load_embedded_tokenizer  # noqa: E402
from nsmc_gen.tokenization import save_tokenizer  # noqa: E402

# 1 thread: on a busy 2-core machine two threads wait on each other (measured 8.6 s vs 0.8 s for a
# 12-token greedy generate on the tiny model); the tiny models gain nothing from a second thread.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer():
    """The shipped Korean tokenizer (vocabulary 6,000, Metaspace BPE with byte fallback)."""
    return load_embedded_tokenizer()


def build_tiny_model(tokenizer, seed: int = 0, **overrides) -> GPT2LMHeadModel:
    """A 2-layer, 32-dim GPT-2 over ``tokenizer``'s vocabulary: random, seeded, fast."""
    torch.manual_seed(seed)
    config = embedded_config(tokenizer, **{"n_layer": 2, "n_embd": 32, "n_head": 2, **overrides})
    return GPT2LMHeadModel(config).eval()


def save_lora_adapter(tokenizer, folder: Path, base_name_or_path: str, generation_config=None):
    """A LoRA adapter over a tiny model (non-zero B, so merging changes the weights) saved in
    ``folder`` with the tokenizer and ``generation_config`` (default: the recommended one), naming
    ``base_name_or_path`` as its base. Returns the adapter model, in eval mode."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"], fan_in_fan_out=True)
    peft_model = get_peft_model(build_tiny_model(tokenizer), config)
    torch.manual_seed(1)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    peft_model.peft_config["default"].base_model_name_or_path = base_name_or_path
    peft_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (generation_config or recommended_generation_config(tokenizer)).save_pretrained(folder)
    return peft_model.eval()


@pytest.fixture
def tiny_model(tokenizer) -> GPT2LMHeadModel:
    return build_tiny_model(tokenizer)


@pytest.fixture
def tiny_model_dir(tmp_path, tiny_model, tokenizer):
    """The tiny model saved as a fine-tuned folder is: weights, tokenizer, and the recommended
    generation config with the sentiment prompts (what training writes; without it the folder
    reads as a base model, see ``nsmc_gen.modeling.is_sentiment_model``)."""
    folder = tmp_path / "tiny-model"
    tiny_model.save_pretrained(folder)
    save_tokenizer(tokenizer, folder)
    recommended_generation_config(tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def kogpt2_files(tmp_path_factory) -> Path:
    """A folder with ``skt/kogpt2-base-v2``'s files as the Hub serves them: config.json,
    tokenizer.json, pytorch_model.bin and nothing more (tiny weights). See ``tests/replicas.py``.

    Built once per session (~4 s: a BPE trained on the NSMC sample).
    """
    from replicas import kogpt2_tokenizer, nsmc_sample_reviews, write_kogpt2_repo

    return write_kogpt2_repo(tmp_path_factory.mktemp("kogpt2-files"), kogpt2_tokenizer(nsmc_sample_reviews()))


@pytest.fixture(scope="session")
def kogpt2_repo(kogpt2_files) -> str:
    """``skt/kogpt2-base-v2``'s replica in this session's Hub cache, as a user who downloaded it
    earlier has it: it loads by id with HF_HUB_OFFLINE=1."""
    from huggingface_hub import constants
    from replicas import KOGPT2, put_in_hub_cache

    put_in_hub_cache(Path(constants.HF_HUB_CACHE), KOGPT2, kogpt2_files)
    return KOGPT2


# ---------------------------------------------------------------- the course's recipes on the replica

REPO = Path(__file__).resolve().parents[1]


def load_finetune_recipe():
    """``recipes/finetune.py`` as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("finetune_recipe", REPO / "recipes" / "finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recipe_args(recipe: str, data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    """A KoGPT2 recipe (``recipes/kogpt2/<recipe>``) with small overrides only: data, size, output."""
    return [
        *("--config", str(REPO / "recipes" / "kogpt2" / recipe), "--data_dir", str(data_dir)),
        *("--validation_size", "8", "--max_length", "32", "--output_dir", str(output_dir)),
        *("--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4"),
        *("--max_steps", "2", "--eval_strategy", "steps", "--eval_steps", "2"),
        *("--save_strategy", "steps", "--save_steps", "2", "--logging_steps", "1"),
        *("--sample_reviews", "1", "--dataloader_num_workers", "0", "--cpu_threads", "1"),
        *("--calibrate_length_prior", "false"),  # tests/test_training.py runs the calibration
        *extra,
    ]


def write_nsmc_slice(folder: Path, train_rows: int, test_rows: int) -> Path:
    """The first rows of the shipped sample's train and test files, in the official format."""
    from nsmc_gen.data import read_nsmc_file
    from nsmc_gen.modeling import NSMC_SAMPLE

    for split, rows in (("train", train_rows), ("test", test_rows)):
        source = read_nsmc_file(NSMC_SAMPLE / f"ratings_{split}.txt.gz")
        lines = ["id\tdocument\tlabel"] + [
            f"{r['id']}\t{r['document']}\t{r['label']}" for _, r in zip(range(rows), source, strict=False)
        ]
        (folder / f"ratings_{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def small_nsmc(tmp_path_factory) -> Path:
    """An NSMC folder of 64 train / 8 test rows from the shipped sample."""
    return write_nsmc_slice(tmp_path_factory.mktemp("small-nsmc"), 64, 8)


@pytest.fixture(scope="session")
def kogpt2_full_run(kogpt2_repo, small_nsmc, tmp_path_factory) -> Path:
    """``recipes/finetune.py --config recipes/kogpt2/full.yaml`` on the replica by id (in-process,
    2 steps): the finished folder."""
    out = tmp_path_factory.mktemp("kogpt2-full")
    return load_finetune_recipe().main(recipe_args("full.yaml", small_nsmc, out))


@pytest.fixture(scope="session")
def kogpt2_lora_run(kogpt2_repo, small_nsmc, tmp_path_factory) -> Path:
    """``accelerate launch recipes/finetune.py --config recipes/kogpt2/lora.yaml`` on the replica by
    id, as a user runs it (a fresh process, offline, this session's Hub cache; 2 steps): the
    output folder (the LoRA adapter; the merged model in ``merged/``)."""
    out = tmp_path_factory.mktemp("kogpt2-lora")
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
    ]  # `accelerate launch`
    command = [*launch, str(REPO / "recipes" / "finetune.py")]
    command += recipe_args("lora.yaml", small_nsmc, out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"model folder: {out / 'merged'}" in proc.stdout
    return out
