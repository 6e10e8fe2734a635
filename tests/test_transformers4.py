"""Folders nsmc-gen writes, loaded by transformers 4.57 (the last 4.x) as by the pinned 5.x.

The 4.x side runs in a venv of its own (``.venv-tf4``: the same torch wheel, ``transformers<5``,
peft; built on first use, ~1-2 min, then reused), in a process that never imports nsmc_gen:
``tests/transformers_client.py`` loads each folder as a Hub user would (AutoTokenizer,
AutoModelForCausalLM or AutoPeftModelForCausalLM, pipeline, pipeline with remote code). The same
client runs here under 5.x; both must agree, and agree with the tokenizer training used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import transformers_client
from conftest import REPO, load_finetune_recipe
from huggingface_hub import constants
from replicas import KOGPT2_DOCUMENTED_TOKENS, nsmc_sample_reviews, put_in_hub_cache
from transformers import PreTrainedTokenizerFast

from nsmc_gen.formatting import ReviewFormat
from nsmc_gen.hub import validate_model_folder
from nsmc_gen.model_folder import MERGED_DIR
from nsmc_gen.modeling import EMBEDDED_BASE, load_embedded_tokenizer

TF4_VENV = REPO / ".venv-tf4"
TF4_REQUIREMENTS = ("torch==2.13.0", "transformers<5", "peft")  # torch: the CPU wheel the project pins
# float32 on the same torch; the two versions' GPT-2 code may order a few operations differently.
LOGITS_TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}
LOGITS_TOLERANCE_HALF = {"atol": 2e-2, "rtol": 1e-2}  # float16 against float32: 2**-11 relative steps
# Whole texts of a fine-tuned model (a finished folder's decoder keeps a continuation's leading space,
# so a bare review decoded alone would start with one: nsmc_gen.tokenization.continuation_decoder)
TEXTS = [ReviewFormat().example(review, i % 2) for i, review in enumerate(nsmc_sample_reviews("test")[:100])]
PROMPT = "긍정 이 영화"


@pytest.fixture(scope="session")
def tf4_python() -> Path:
    """The interpreter of a venv with transformers 4.x beside the same torch, built when missing."""
    python = TF4_VENV / "bin" / "python"
    check = "import peft, transformers as t; assert t.__version__.startswith('4.'), t.__version__"
    if python.exists() and subprocess.run([python, "-c", check], capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", TF4_VENV], check=True)
    install = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *TF4_REQUIREMENTS]
    proc = subprocess.run(install, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"pip cannot install {' '.join(TF4_REQUIREMENTS)} into {TF4_VENV}: {last}")
    return python


@pytest.fixture(scope="session")
def embedded_lora_run(small_nsmc, tmp_path_factory) -> Path:
    """A LoRA adapter trained on the embedded base (the recipe's defaults, 1 step)."""
    out = tmp_path_factory.mktemp("embedded-lora")
    argv = [
        *("--data_dir", str(small_nsmc), "--validation_size", "8", "--max_length", "32"),
        *("--use_peft", "--lora_r", "4", "--max_steps", "1", "--per_device_train_batch_size", "4"),
        *("--eval_strategy", "no", "--save_strategy", "no", "--sample_reviews", "0"),
        *("--cpu_threads", "1", "--output_dir", str(out), "--calibrate_length_prior", "false"),
    ]
    return load_finetune_recipe().main(argv)


PUBLISHED = "org/kogpt2-nsmc"  # the full KoGPT2 folder as `nsmc-gen push` uploads it, downloaded


@pytest.fixture(scope="module")
def clients(tf4_python, kogpt2_full_run, kogpt2_lora_run, embedded_lora_run, tmp_path_factory):
    """The client's results under transformers 4.x (a fresh process, no nsmc_gen) and 5.x (here)."""
    folders = {
        "kogpt2-full": ("full", kogpt2_full_run),
        "kogpt2-merged": ("merged", kogpt2_lora_run / MERGED_DIR),
        "kogpt2-adapter": ("adapter", kogpt2_lora_run),  # its base by id, from the Hub cache
        "embedded-adapter": ("adapter", embedded_lora_run),
    }
    files = validate_model_folder(kogpt2_full_run).files
    put_in_hub_cache(Path(constants.HF_HUB_CACHE), PUBLISHED, kogpt2_full_run, files)
    out = tmp_path_factory.mktemp("clients")
    spec = out / "spec.json"
    paths = {name: (kind, str(folder)) for name, (kind, folder) in folders.items()}
    spec.write_text(
        json.dumps({"folders": paths, "repos": [PUBLISHED], "texts": TEXTS, "prompt": PROMPT}),
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(Path(transformers_client.__file__).parent)}  # not src/
    started = time.perf_counter()
    client = [tf4_python, transformers_client.__file__, spec, out / "tf4"]
    proc = subprocess.run(
        client, env=env, capture_output=True, text=True, timeout=600, cwd=out, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"\ntransformers 4.x client: {time.perf_counter() - started:.1f} s")
    transformers_client.main(spec, out / "tf5")  # the same client, here: transformers 5.x
    tf4, tf5 = (json.loads((out / v / "results.json").read_text(encoding="utf-8")) for v in ("tf4", "tf5"))
    assert tf4["transformers"].startswith("4.") and tf5["transformers"].startswith("5.")
    assert not tf4["nsmc_gen_imported"]
    return {"tf4": tf4, "tf5": tf5, "folders": folders, "out": out}


@pytest.mark.slow
def test_tokenizers_weights_and_adapters_load_alike_in_transformers_4_and_5(clients, embedded_lora_run):
    adapter = json.loads((embedded_lora_run / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter["base_model_name_or_path"] == str(EMBEDDED_BASE)  # a folder any loader opens
    kogpt2 = PreTrainedTokenizerFast.from_pretrained("skt/kogpt2-base-v2", **KOGPT2_DOCUMENTED_TOKENS)
    for name, (kind, _) in clients["folders"].items():
        old, new = clients["tf4"]["folders"][name], clients["tf5"]["folders"][name]
        trained_with = load_embedded_tokenizer() if name.startswith("embedded") else kogpt2
        assert old["tokenizer_class"] == "PreTrainedTokenizerFast", name
        assert old["ids"] == new["ids"] == trained_with(TEXTS, add_special_tokens=False)["input_ids"], name
        assert old["decoded"] == new["decoded"] == TEXTS, name
        assert old["special_ids"] == new["special_ids"] and old["vocabulary"] == new["vocabulary"], name
        old_logits, new_logits = (
            torch.load(clients["out"] / v / f"{name}-logits.pt") for v in ("tf4", "tf5")
        )
        if (
            name == "embedded-adapter"
        ):  # its base is stored in float16: 5.x loads it so (dtype "auto"), 4.x in float32
            assert (old_logits.dtype, new_logits.dtype) == (torch.float32, torch.float16)
            old_logits, new_logits = old_logits.float(), new_logits.float()
        tolerance = LOGITS_TOLERANCE_HALF if name == "embedded-adapter" else LOGITS_TOLERANCE
        torch.testing.assert_close(old_logits, new_logits, **tolerance)
        print(f"{name}: max |logits 4.x - 5.x| = {(old_logits - new_logits).abs().max().item():.2e}")
        for way in ("plain", "remote") if kind != "adapter" else ("plain",):
            # 4.x decodes the whole sequence; 5.x decodes the new tokens alone and glues them to the
            # prompt, which loses the space a Metaspace decoder strips from the start of a text.
            # (a pipeline's text leaves out special tokens: an EOS the review ended with too)
            assert old[way]["text"] == trained_with.decode(old[way]["ids"], skip_special_tokens=True), name
            assert old[way]["text"].startswith(PROMPT) and new[way]["text"].startswith(PROMPT), name
        if kind == "adapter":
            assert old["peft_model_class"] == new["peft_model_class"] == "PeftModelForCausalLM", name
            assert old["plain"]["ids"] == new["plain"]["ids"], name
        else:  # with trust_remote_code both run the folder's custom_generate/
            assert old["remote"]["generate"].endswith("custom_generate.generate"), name
            assert new["remote"]["generate"].endswith("custom_generate.generate"), name
            # Plain, 5.x decodes with its built-ins; 4.52-4.57 run a LOCAL folder's custom_generate/
            # even without trust_remote_code (they ignore their resolve_trust_remote_code result).
            assert new["plain"]["generate"] == "transformers.generation.utils", name
            assert old["plain"]["generate"].endswith("custom_generate.generate"), name


@pytest.mark.slow
def test_a_published_folder_by_id_needs_trust_remote_code_in_transformers_4(clients):
    """4.57 refuses a Hub repo with custom_generate/ unless trust_remote_code=True (a terminal gets
    a 15-second y/N prompt instead); 5.x loads it plainly, and both load it with remote code."""
    old, new = clients["tf4"]["repos"][PUBLISHED], clients["tf5"]["repos"][PUBLISHED]
    assert (
        old["plain"]["error"].startswith("ValueError") and "trust_remote_code=True" in old["plain"]["error"]
    )
    assert old["remote"]["generate"].endswith("custom_generate.generate")
    assert new["plain"]["ids"] == clients["tf5"]["folders"]["kogpt2-full"]["plain"]["ids"]
    assert new["remote"]["ids"] == clients["tf5"]["folders"]["kogpt2-full"]["remote"]["ids"]


@pytest.mark.slow
def test_custom_generate_decodes_alike_in_transformers_4_and_5(clients):
    tf4, tf5 = clients["tf4"], clients["tf5"]
    for name in ("kogpt2-full", "kogpt2-merged"):
        assert tf4["folders"][name]["remote"]["ids"] == tf5["folders"][name]["remote"]["ids"], name
        assert tf4["folders"][name]["plain"]["ids"] == tf5["folders"][name]["remote"]["ids"], name
    assert tf4["repos"][PUBLISHED]["remote"]["ids"] == tf5["repos"][PUBLISHED]["remote"]["ids"]
