"""Real base models as users bring them: KoGPT2 as the Hub serves it, loaded by id, offline.

The replica (``kogpt2_repo`` in conftest, built by ``tests/replicas.py``) has exactly the real
repo's files: config.json, tokenizer.json, pytorch_model.bin; no tokenizer_config.json.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import load_finetune_recipe, recipe_args
from peft import AutoPeftModelForCausalLM
from replicas import KOGPT2_DOCUMENTED_TOKENS, KOGPT2_VOCAB, nsmc_sample_reviews
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from nsmc_gen import cli
from nsmc_gen.formatting import ReviewFormat
from nsmc_gen.modeling import load_model_and_tokenizer
from nsmc_gen.training import MERGED_DIR, load_model, parse_args, prepare_datasets

REVIEWS = nsmc_sample_reviews("test")[:300]
# Whole texts of a fine-tuned model: what decode must give back exactly (a finished folder's decoder keeps
# a continuation's leading space, so a bare review decoded alone starts with one: continuation_decoder)
WHOLE_TEXTS = [ReviewFormat().example(review, i % 2) for i, review in enumerate(REVIEWS)]


@pytest.fixture(scope="module")
def documented_tokenizer(kogpt2_repo):
    """KoGPT2's tokenizer as its model card, the course and every user load it."""
    return PreTrainedTokenizerFast.from_pretrained(kogpt2_repo, **KOGPT2_DOCUMENTED_TOKENS)


def assert_faithful_kogpt2_tokenizer(tokenizer, documented) -> None:
    """What training and generation rely on: KoGPT2's ids for Korean, its special tokens, none added."""
    assert len(tokenizer) == KOGPT2_VOCAB, f"{len(tokenizer) - KOGPT2_VOCAB} token(s) added"
    special = ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "mask_token_id")
    assert [getattr(tokenizer, name) for name in special] == [1, 1, 3, 5, 6]
    ids = tokenizer(REVIEWS, add_special_tokens=False)["input_ids"]
    assert ids == documented(REVIEWS, add_special_tokens=False)["input_ids"]
    whole = tokenizer(WHOLE_TEXTS, add_special_tokens=False)["input_ids"]
    assert whole == documented(WHOLE_TEXTS, add_special_tokens=False)["input_ids"]
    assert [tokenizer.decode(x) for x in whole] == WHOLE_TEXTS


def test_the_documented_way_round_trips_the_replica(documented_tokenizer):
    """The reference itself: a faithful tokenizer over the replica's tokenizer.json."""
    assert_faithful_kogpt2_tokenizer(documented_tokenizer, documented_tokenizer)


def test_kogpt2_by_id_gets_the_tokenizer_it_was_trained_with(kogpt2_repo, documented_tokenizer):
    model, tokenizer = load_model_and_tokenizer(kogpt2_repo)
    assert_faithful_kogpt2_tokenizer(tokenizer, documented_tokenizer)
    assert model.get_input_embeddings().num_embeddings == KOGPT2_VOCAB  # not resized
    with torch.no_grad():
        model(torch.tensor([tokenizer("이 영화 정말 재밌어요")["input_ids"]]))


def test_autotokenizer_alone_fails_the_same_checks(kogpt2_repo, documented_tokenizer):
    """The old loader (AutoTokenizer): transformers 5 picks GPT2Tokenizer (byte-level) for this layout,
    and adds <|endoftext|> at id 51,200; the checks above catch it."""
    with pytest.raises(AssertionError):
        assert_faithful_kogpt2_tokenizer(AutoTokenizer.from_pretrained(kogpt2_repo), documented_tokenizer)


# ---------------------------------------------------------------- the course's recipe, by id


@pytest.mark.slow
def test_the_kogpt2_recipe_trains_on_the_base_by_id(kogpt2_full_run, documented_tokenizer):
    folder = kogpt2_full_run
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.get_input_embeddings().num_embeddings == KOGPT2_VOCAB  # never resized
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert_faithful_kogpt2_tokenizer(tokenizer, documented_tokenizer)
    saved = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert saved["tokenizer_class"] == "PreTrainedTokenizerFast"  # what transformers 4.x and 5.x both load


def test_kogpt2_training_examples_end_with_its_eos_and_prompts_are_their_prefix(kogpt2_repo, small_nsmc):
    _, model_args, data_args, training_args = parse_args(recipe_args("full.yaml", small_nsmc, Path("unused")))
    _, tokenizer = load_model(model_args, data_args)
    examples = prepare_datasets(data_args, tokenizer, training_args)["train"]["input_ids"]
    assert all(ids[-1] == 1 for ids in examples if len(ids) < data_args.max_length)  # "</s>"
    assert max(max(ids) for ids in examples) < KOGPT2_VOCAB
    prompts = [ReviewFormat().prompt_ids(tokenizer, sentiment) for sentiment in ("positive", "negative")]
    assert all(any(ids[: len(p)] == p for p in prompts) for ids in examples)
    first = examples[0]
    prompt = next(p for p in prompts if first[: len(p)] == p)
    print(f"\nKoGPT2 replica, first training example: {first}\n  its prompt: {prompt}")


@pytest.mark.slow
def test_the_kogpt2_lora_recipe_keeps_the_hub_id_as_the_adapters_base(kogpt2_lora_run, documented_tokenizer):
    adapter = json.loads((kogpt2_lora_run / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter["base_model_name_or_path"] == "skt/kogpt2-base-v2"
    merged_dir = kogpt2_lora_run / MERGED_DIR
    assert_faithful_kogpt2_tokenizer(AutoTokenizer.from_pretrained(merged_dir), documented_tokenizer)
    ids = torch.tensor([documented_tokenizer("긍정 이 영화 정말")["input_ids"]])
    with torch.no_grad():
        adapted = AutoPeftModelForCausalLM.from_pretrained(kogpt2_lora_run).eval()(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
        assert merged.get_input_embeddings().num_embeddings == KOGPT2_VOCAB
        torch.testing.assert_close(merged(ids).logits, adapted, atol=1e-5, rtol=1e-4)


def test_a_token_the_base_cannot_embed_stops_the_recipe_before_training(tmp_path, kogpt2_files, small_nsmc):
    """A repo whose tokenizer_config.json names an EOS its tokenizer.json lacks: transformers adds it
    at id 51,200; the recipe says so before any step (no checkpoint, no output folder)."""
    base = tmp_path / "base"
    shutil.copytree(kogpt2_files, base)
    named = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>"}
    (base / "tokenizer_config.json").write_text(json.dumps(named), encoding="utf-8")
    out = tmp_path / "out"
    argv = recipe_args("full.yaml", small_nsmc, out, "--model_name_or_path", str(base))
    message = "eos_token '<|endoftext|>' has id 51200, outside the model's embedding (ids 0..51199)"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_finetune_recipe().main(argv)
    assert not out.exists()


# ---------------------------------------------------------------- KoGPT2 as it is: generate, demo


def generate(capsys, *argv: str) -> tuple[int, list[str], str]:
    capsys.readouterr()
    code = cli.main(["generate", *argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_generate_continues_a_prompt_with_the_base_model(capsys, kogpt2_repo):
    args = ("--prompt", "이 영화", "--max-new-tokens", "6", "--seed", "0", "--num-return-sequences", "2")
    code, lines, _ = generate(capsys, kogpt2_repo, "--sentiment", "none", *args)
    assert code == 0 and len(lines) == 2 and all(line.startswith("이 영화") for line in lines)
    assert generate(capsys, kogpt2_repo, *args)[1] == lines  # a base model's default: no sentiment


@pytest.mark.parametrize("sentiment", ["positive", "negative"])
def test_a_sentiment_on_the_base_model_is_one_clear_line(capsys, kogpt2_repo, sentiment):
    code, lines, err = generate(capsys, kogpt2_repo, "--sentiment", sentiment)
    assert code == 2 and lines == []
    (line,) = err.strip().splitlines()  # before the weights load: nothing else is printed
    assert line.startswith(
        f"nsmc-gen generate: error: --sentiment {sentiment}: MODEL 'skt/kogpt2-base-v2' is a base model"
    )
    assert "--sentiment none" in line


@pytest.mark.slow
def test_the_fine_tuned_kogpt2_writes_a_sentiment_by_default(capsys, kogpt2_full_run):
    code, lines, _ = generate(capsys, str(kogpt2_full_run), "--max-new-tokens", "4", "--json")
    assert code == 0 and json.loads(lines[0])["sentiment"] == "positive"


@pytest.mark.slow
def test_demo_offers_sentiment_control_only_to_a_fine_tuned_model(monkeypatch, kogpt2_repo, kogpt2_full_run):
    import nsmc_gen.demo

    calls = []

    class Page:
        def launch(self, **kwargs):
            calls[-1]["launch"] = kwargs

    def build_demo(model, tokenizer, *, sentiment_control: bool = True):
        calls.append({"tokenizer": tokenizer, "sentiment_control": sentiment_control})
        return Page()

    monkeypatch.setattr(nsmc_gen.demo, "build_demo", build_demo)
    assert cli.main(["demo", kogpt2_repo, "--port", "7999"]) == 0
    assert cli.main(["demo", str(kogpt2_full_run)]) == 0
    assert [call["sentiment_control"] for call in calls] == [False, True]
    assert calls[0]["tokenizer"].eos_token_id == 1 and calls[0]["launch"]["server_port"] == 7999
