"""The finished model folder's one writer: run facts, generation config (length prior), custom_generate,
file modes, the LoRA merge."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest
import torch
from conftest import save_lora_adapter
from transformers import AutoModelForCausalLM, GenerationConfig

from nsmc_gen.custom_generate import generate as custom_generate
from nsmc_gen.decoding import (
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_KEEP_EOS_PROBABILITY,
    recommended_generation_config,
)
from nsmc_gen.formatting import ReviewFormat
from nsmc_gen.generation import build_generate_kwargs
from nsmc_gen.model_folder import (
    RUN_FACTS,
    LoraFacts,
    RunFacts,
    folder_facts,
    install_custom_generate,
    make_readable,
    merge_adapter,
    read_run_facts,
    record_evaluation,
    save_length_prior,
    write_run_facts,
)
from nsmc_gen.processors import LengthPriorLogitsProcessor

FMT = ReviewFormat()


# ---------------------------------------------------------------- run facts


def test_run_facts_round_trip_through_the_file_and_keep_unknown_keys(tmp_path):
    facts = RunFacts(
        base_model="embedded",
        train_rows=900,
        eval_perplexity=99.5,
        peft=LoraFacts(r=4, alpha=8, dropout=0.05, target_modules=["c_attn", "c_fc"]),
    )
    write_run_facts(tmp_path, facts)
    on_disk = json.loads((tmp_path / RUN_FACTS).read_text(encoding="utf-8"))
    assert on_disk["peft"] == {"r": 4, "alpha": 8, "dropout": 0.05, "target_modules": ["c_attn", "c_fc"]}
    assert on_disk["max_steps"] is None  # every field is written; null = not recorded
    assert read_run_facts(tmp_path) == facts
    # a key this version does not know (a later version's, or added by hand) survives a rewrite
    (tmp_path / RUN_FACTS).write_text(json.dumps({**on_disk, "notes": "kept"}), encoding="utf-8")
    updated = read_run_facts(tmp_path).updated(test_perplexity=101.0, another="also kept")
    write_run_facts(tmp_path, updated)
    again = json.loads((tmp_path / RUN_FACTS).read_text(encoding="utf-8"))
    assert again["notes"] == "kept" and again["another"] == "also kept" and again["test_perplexity"] == 101.0
    assert again["train_rows"] == 900
    assert read_run_facts(tmp_path / "nothing-here") == RunFacts()


def test_lora_facts_read_peft_names_in_one_place():
    from peft import LoraConfig

    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules=["c_fc", "c_attn"])
    expected = LoraFacts(r=4, alpha=8, dropout=0.1, target_modules=["c_attn", "c_fc"])
    assert LoraFacts.from_adapter_config(config.to_dict()) == expected  # what training reads
    saved = json.loads(json.dumps(config.to_dict(), default=list))  # adapter_config.json's form
    assert LoraFacts.from_adapter_config(saved) == expected
    assert LoraFacts.from_adapter_config({"target_modules": "all-linear"}).target_modules == ["all-linear"]


def test_record_evaluation_merges_figures_and_renders_the_card(tiny_model_dir):
    write_run_facts(tiny_model_dir, RunFacts(base_model="embedded", seed=7))
    card = record_evaluation(tiny_model_dir, test_perplexity=212.6, decoding_study="| a | b |\n|---|---|")
    facts = read_run_facts(tiny_model_dir)
    assert facts.seed == 7 and facts.test_perplexity == 212.6
    text = card.read_text(encoding="utf-8")
    assert "212.60" in text and "| a | b |" in text
    assert folder_facts(tiny_model_dir).run == facts.to_dict()  # what the card reads: the file


# ---------------------------------------------------------------- generation_config.json


def test_save_length_prior_round_trips_through_the_folder(tmp_path, tiny_model, tokenizer):
    folder = tmp_path / "model"
    tiny_model.generation_config = recommended_generation_config(tokenizer)
    tiny_model.save_pretrained(folder)
    save_length_prior(folder, [-2, -1.5])
    reloaded = AutoModelForCausalLM.from_pretrained(folder)
    assert reloaded.generation_config.length_prior == [-2.0, -1.5]
    assert reloaded.generation_config.sentiment_guidance  # the other fields survive
    kwargs = build_generate_kwargs(reloaded, tokenizer, "positive")
    assert [p.eos_bias for p in kwargs["logits_processor"] if isinstance(p, LengthPriorLogitsProcessor)] == [
        [-2.0, -1.5]
    ]
    with pytest.raises(ValueError, match="prior must be a list of finite numbers"):
        save_length_prior(folder, [math.inf])
    with pytest.raises(FileNotFoundError, match="generation_config.json"):
        save_length_prior(tmp_path / "nothing", [-1.0])


def test_install_custom_generate_copies_the_package_files_and_adds_the_guidance_field(
    tmp_path, tiny_model, tokenizer
):
    folder = tmp_path / "model"
    tiny_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    target = install_custom_generate(folder)
    from nsmc_gen import processors

    for module in (custom_generate, processors):
        source = Path(module.__file__)
        assert (target / source.name).read_bytes() == source.read_bytes()
    config = GenerationConfig.from_pretrained(folder)
    assert config.sentiment_guidance["prompt_ids"]["negative"] == FMT.prompt_ids(tokenizer, "negative")
    assert config.sentiment_guidance["scale"] == DEFAULT_GUIDANCE_SCALE
    assert config.keep_eos_probability == DEFAULT_KEEP_EOS_PROBABILITY
    # a folder written before keep_eos_probability existed gets it, its own settings kept
    old = GenerationConfig.from_pretrained(folder)
    del old.keep_eos_probability
    old.max_new_tokens = 7
    old.save_pretrained(folder)
    assert not hasattr(GenerationConfig.from_pretrained(folder), "keep_eos_probability")
    install_custom_generate(folder)
    config = GenerationConfig.from_pretrained(folder)
    assert config.keep_eos_probability == DEFAULT_KEEP_EOS_PROBABILITY and config.max_new_tokens == 7
    with pytest.raises(FileNotFoundError, match="model_dir must be a saved model folder"):
        install_custom_generate(tmp_path / "nothing")


# ---------------------------------------------------------------- files


def test_saved_weights_become_readable_by_everyone_the_umask_allows(tmp_path, tiny_model):
    folder = tmp_path / "model"
    tiny_model.save_pretrained(folder)  # safetensors 0.8 writes the weights 0600
    weights = folder / "model.safetensors"
    assert stat.S_IMODE(weights.stat().st_mode) == 0o600
    mask = os.umask(0o022)
    try:
        make_readable(folder)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(weights.stat().st_mode) == 0o644
    assert stat.S_IMODE((folder / "config.json").stat().st_mode) == 0o644


# ---------------------------------------------------------------- the LoRA merge


def test_merge_carries_the_length_prior_and_states_the_adapter(tmp_path, tiny_model, tokenizer):
    base_dir = tmp_path / "base"
    tiny_model.save_pretrained(base_dir)  # build_tiny_model's weights: the adapter's base
    adapter = tmp_path / "adapter"
    peft_model = save_lora_adapter(tokenizer, adapter, str(base_dir))
    save_length_prior(adapter, [-1.0, 0.5])

    merged = merge_adapter(adapter, tmp_path / "merged")
    assert GenerationConfig.from_pretrained(merged).length_prior == [-1.0, 0.5]
    facts = read_run_facts(merged)
    assert facts.merged is True and facts.base_model == str(base_dir)
    assert facts.peft == LoraFacts(r=2, alpha=4, dropout=0.0, target_modules=["c_attn"])
    assert (merged / "custom_generate" / "generate.py").is_file()
    assert stat.S_IMODE((merged / "model.safetensors").stat().st_mode) & 0o044 == 0o044 & ~_umask()
    ids = torch.tensor([[5, 17, 42, 7]])
    with torch.no_grad():
        merged_logits = AutoModelForCausalLM.from_pretrained(merged).eval()(ids).logits
        torch.testing.assert_close(merged_logits, peft_model(ids).logits, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="merge_adapter needs a LoRA adapter folder"):
        merge_adapter(merged, tmp_path / "again")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_docstring_examples_run():
    import doctest

    import nsmc_gen.card
    import nsmc_gen.model_folder

    for module in (nsmc_gen.model_folder, nsmc_gen.card):
        result = doctest.testmod(module)
        assert result.attempted and not result.failed, module.__name__


def test_card_imports_nothing_from_the_model_folder():
    """The arrow points one way: model_folder -> card (a fresh process, so nothing is imported yet)."""
    import subprocess
    import sys

    check = "import sys, nsmc_gen.card; print('nsmc_gen.model_folder' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"
    import ast

    import nsmc_gen.card

    tree = ast.parse(Path(nsmc_gen.card.__file__).read_text(encoding="utf-8"))  # lazy imports too
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert "nsmc_gen.model_folder" not in imported, imported


def test_plain_eos_bias_is_saved_in_the_list_form_that_loads_again(tiny_model_dir, tokenizer):
    """The dict form (``{(1,): -1.5}``) is saved with a string key and refused on loading (5.23)."""
    from nsmc_gen.model_folder import save_plain_eos_bias

    save_plain_eos_bias(tiny_model_dir, -1.25)
    saved = json.loads((tiny_model_dir / "generation_config.json").read_text(encoding="utf-8"))
    assert saved["sequence_bias"] == [[[tokenizer.eos_token_id], -1.25]]
    assert saved["sentiment_guidance"]  # the other fields stay
    assert GenerationConfig.from_pretrained(tiny_model_dir).sequence_bias == [
        [[tokenizer.eos_token_id], -1.25]
    ]
    with pytest.raises(ValueError, match="finite"):
        save_plain_eos_bias(tiny_model_dir, float("nan"))


def test_review_lengths_round_trip_in_the_run_facts(tmp_path):
    lengths = {
        "reference": {"reviews": 3, "mean_characters": 30.0, "share_under_5": 0.0},
        "plain": {"reviews": 4, "mean_characters": 28.5, "share_under_5": 0.25},
        "nsmc_gen": {"reviews": 4, "mean_characters": 31.0, "share_under_5": 0.0},
    }
    facts = RunFacts(review_lengths=lengths, test_data="NSMC-rebuild test")
    write_run_facts(tmp_path, facts)
    assert read_run_facts(tmp_path) == facts and read_run_facts(tmp_path).extra == {}
