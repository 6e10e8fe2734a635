import gzip

import pytest
import torch
from transformers import GPT2LMHeadModel

from nsmc_gen.modeling import (
    EMBEDDED_BASE,
    NSMC_SAMPLE,
    load_embedded_default,
    load_model_and_tokenizer,
    train_nsmc_tokenizer,
)


def sample_reviews(split: str = "train") -> list[str]:
    with gzip.open(NSMC_SAMPLE / f"ratings_{split}.txt.gz", "rt", encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t")[1] for line in f][1:]


def test_every_shipped_review_round_trips_through_the_tokenizer(tokenizer):
    reviews = sample_reviews("train") + sample_reviews("test")
    encoded = tokenizer(reviews, add_special_tokens=False)["input_ids"]
    assert [tokenizer.decode(ids) for ids in encoded] == reviews
    assert tokenizer.unk_token_id not in {i for ids in encoded for i in ids}


@pytest.mark.parametrize("text", ["😀 좋아", "a  b", "ㅋㅋㅋㅋ 최고!!", "\u00a0공백"])
def test_rare_characters_and_double_spaces_round_trip(tokenizer, text):
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_special_tokens(tokenizer):
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == ("</s>", "<pad>", "<unk>")
    assert len({tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id}) == 3
    assert len(tokenizer) == 6000


def test_tokenizer_training_is_reproducible_and_round_trips():
    reviews = sample_reviews("test")[:2000]
    first, second = (train_nsmc_tokenizer(reviews, vocab_size=600) for _ in range(2))
    assert first.get_vocab() == second.get_vocab()
    ids = first(reviews[:50], add_special_tokens=False)["input_ids"]
    assert [first.decode(x) for x in ids] == reviews[:50]


def test_the_embedded_default_is_a_float32_gpt2_for_the_shipped_tokenizer():
    model, tokenizer = load_embedded_default(from_scratch=True)
    assert isinstance(model, GPT2LMHeadModel)
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert model.config.n_positions >= 128  # every NSMC review but one fits
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.skipif(not (EMBEDDED_BASE / "model.safetensors").exists(), reason="the base is not built yet")
def test_the_shipped_base_is_small_half_precision_and_loads_as_float32():
    weights = EMBEDDED_BASE / "model.safetensors"
    assert weights.stat().st_size < 8 * 2**20
    assert "validation loss" in (EMBEDDED_BASE / "README.md").read_text(encoding="utf-8")
    pretrained, _ = load_embedded_default()
    scratch, _ = load_embedded_default(from_scratch=True)
    assert next(pretrained.parameters()).dtype == torch.float32
    assert not torch.equal(pretrained.transformer.wte.weight, scratch.transformer.wte.weight)


def test_any_causal_lm_loads_from_a_folder_and_gets_a_pad_token(tmp_path, tiny_model, tokenizer):
    tokenizer_without_pad = tokenizer.__class__(
        tokenizer_object=tokenizer.backend_tokenizer, eos_token="</s>"
    )
    tiny_model.save_pretrained(tmp_path)
    tokenizer_without_pad.save_pretrained(tmp_path)
    model, loaded = load_model_and_tokenizer(str(tmp_path))
    assert loaded.pad_token == loaded.eos_token == "</s>"
    assert torch.equal(model.transformer.wte.weight, tiny_model.transformer.wte.weight)
    scratch, _ = load_model_and_tokenizer(str(tmp_path), from_scratch=True)
    assert not torch.equal(scratch.transformer.wte.weight, tiny_model.transformer.wte.weight)
