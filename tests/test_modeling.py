import gzip
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, processors
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

from nsmc_gen.modeling import (
    EMBEDDED,
    EMBEDDED_BASE,
    NSMC_SAMPLE,
    check_special_tokens,
    is_sentiment_model,
    load_embedded_default,
    load_model_and_tokenizer,
    repo_file,
    save_tokenizer,
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


# ---------------------------------------------------------------- the tokenizer a model was trained with


def kogpt2_variant(tmp_path, kogpt2_files, config=None, **files) -> Path:
    """A folder with the KoGPT2 replica's files, config.json fields replaced, JSON files added."""
    folder = tmp_path / "variant"
    shutil.copytree(kogpt2_files, folder)
    if config:
        path = folder / "config.json"
        path.write_text(
            json.dumps({**json.loads(path.read_text(encoding="utf-8")), **config}), encoding="utf-8"
        )
    for name, content in files.items():
        (folder / f"{name}.json").write_text(json.dumps(content), encoding="utf-8")
    return folder


def test_a_bare_tokenizer_json_takes_its_special_tokens_from_the_config_ids_and_the_file(kogpt2_files):
    _, tokenizer = load_model_and_tokenizer(str(kogpt2_files))  # a folder, as by id
    assert type(tokenizer) is PreTrainedTokenizerFast
    assert tokenizer.special_tokens_map == {
        "bos_token": "</s>",  # no token starts a text: the previous text's EOS does (config: <s>)
        "eos_token": "</s>",  # config eos_token_id 1
        "pad_token": "<pad>",  # config pad_token_id 3
        "unk_token": "<unk>",  # tokenizer.json's BPE unk_token
        "mask_token": "<mask>",  # the conventional name
    }
    assert tokenizer("이 영화")["input_ids"] == tokenizer("이 영화", add_special_tokens=False)["input_ids"]


def test_bos_is_the_token_the_tokenizer_puts_before_every_text(tmp_path, kogpt2_files):
    folder = kogpt2_variant(tmp_path, kogpt2_files)
    backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    backend.save(str(folder / "tokenizer.json"))
    _, tokenizer = load_model_and_tokenizer(str(folder))
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<s>", "</s>")
    assert tokenizer("이 영화")["input_ids"][0] == 0


def test_a_tokenizer_class_that_rebuilds_the_pipeline_yields_to_tokenizer_json(tmp_path, kogpt2_files):
    named = {"tokenizer_class": "GPT2Tokenizer", "eos_token": "</s>", "pad_token": "<unk>"}
    folder = kogpt2_variant(tmp_path, kogpt2_files, tokenizer_config=named)
    assert AutoTokenizer.from_pretrained(folder)("이 영화")["input_ids"] == []  # byte-level: nothing
    _, tokenizer = load_model_and_tokenizer(str(folder))
    assert type(tokenizer) is PreTrainedTokenizerFast and len(tokenizer) == 51_200
    assert tokenizer.decode(tokenizer("이 영화 최고")["input_ids"]) == "이 영화 최고"
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("</s>", "<unk>")  # as tokenizer_config.json names


def test_a_tokenizer_config_that_keeps_the_pipeline_is_loaded_as_saved(tmp_path, kogpt2_files):
    named = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>"}
    folder = kogpt2_variant(tmp_path, kogpt2_files, tokenizer_config=named)
    _, tokenizer = load_model_and_tokenizer(str(folder))
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "</s>")


@pytest.mark.parametrize(
    ("config", "files", "message"),
    [
        (  # AutoTokenizer keeps the pipeline but adds the token it is told of: caught before any use
            None,
            {
                "tokenizer_config": {
                    "tokenizer_class": "PreTrainedTokenizerFast",
                    "eos_token": "<|endoftext|>",
                }
            },
            "eos_token '<|endoftext|>' has id 51200, outside the model's embedding (ids 0..51199)",
        ),
        (
            None,
            {"tokenizer_config": {"tokenizer_class": "GPT2Tokenizer", "eos_token": "<|endoftext|>"}},
            "eos_token '<|endoftext|>' (from tokenizer_config.json) is not in tokenizer.json's vocabulary",
        ),
        (
            {"pad_token_id": 60_000},
            {},
            "the model config's special token id 60000 is not in tokenizer.json's vocabulary of 51200",
        ),
    ],
)
def test_a_special_token_the_model_cannot_embed_is_a_clear_error(
    tmp_path, kogpt2_files, config, files, message
):
    folder = kogpt2_variant(tmp_path, kogpt2_files, config, **files)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_model_and_tokenizer(str(folder))


def test_check_special_tokens_names_the_token_and_its_id(tiny_model, tokenizer):
    check_special_tokens(tiny_model, tokenizer)
    small = GPT2LMHeadModel(GPT2Config(vocab_size=2, n_layer=1, n_embd=8, n_head=2))
    message = "pad_token '<pad>' has id 2, outside the model's embedding (ids 0..1)"  # eos </s> is 1
    with pytest.raises(ValueError, match=re.escape(message)):
        check_special_tokens(small, tokenizer)


def test_repo_files_by_id_come_from_the_hub_cache_offline_and_absent_ones_are_none(kogpt2_repo):
    assert repo_file(kogpt2_repo, "config.json").is_file()
    assert repo_file(kogpt2_repo, "tokenizer_config.json") is None  # the repo has none
    assert repo_file("nobody/nothing", "config.json") is None


# ---------------------------------------------------------------- saving, base or fine-tuned


def test_saved_tokenizers_name_a_class_transformers_4_and_5_both_load(tmp_path, tokenizer):
    save_tokenizer(tokenizer, tmp_path)
    saved = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert saved["tokenizer_class"] == "PreTrainedTokenizerFast"
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    reviews = sample_reviews("test")[:200]
    assert reloaded(reviews)["input_ids"] == tokenizer(reviews)["input_ids"]
    assert reloaded.special_tokens_map == tokenizer.special_tokens_map


def test_a_sentiment_model_is_one_whose_generation_config_carries_the_sentiment_prompts(
    tiny_model_dir, kogpt2_repo, kogpt2_files
):
    assert is_sentiment_model(str(tiny_model_dir))  # conftest writes what training writes
    assert not is_sentiment_model(EMBEDDED) and not is_sentiment_model(kogpt2_repo)
    assert not is_sentiment_model(str(kogpt2_files))
    model, _ = load_model_and_tokenizer(str(tiny_model_dir))
    assert is_sentiment_model(model)
    assert not is_sentiment_model(load_embedded_default()[0])


def test_a_folder_without_tokenizer_files_is_refused_by_name(tmp_path, tiny_model):
    # transformers 5 would build a one-token GPT2Tokenizer for it: every review tokenizes to nothing
    tiny_model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=rf"{tmp_path}: no tokenizer files .* 1 token\(s\), all special"):
        load_model_and_tokenizer(str(tmp_path))


# ---------------------------------------------------------------- modern layouts: metadata, spellings

QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
)


def qwen_style_folder(folder: Path, tokenizer_class: str = "Qwen2Tokenizer") -> Path:
    """Qwen2.5's tokenizer layout (NFC, Split regex + ByteLevel, ByteLevel post-processor, no BOS,
    eos = pad = <|endoftext|>, two more special tokens) trained by tokenizers, which writes the BPE's
    unset ``continuing_subword_prefix`` as null where transformers' converter writes ""; and its
    tokenizer_config.json's fields."""
    from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    backend.train_from_iterator(sample_reviews("test")[:1000], trainer)
    specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    folder.mkdir(parents=True, exist_ok=True)
    backend.save(str(folder / "tokenizer.json"))
    config = {
        "add_prefix_space": False,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": tokenizer_class,
        "unk_token": None,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_a_spelling_that_changes_no_token_id_keeps_the_authors_class(tmp_path, caplog):
    from nsmc_gen.modeling import load_tokenizer

    folder = qwen_style_folder(tmp_path / "qwen")
    written = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    assert written["continuing_subword_prefix"] is None  # Qwen2Tokenizer's rebuilt BPE says ""
    with caplog.at_level("WARNING", logger="nsmc_gen.modeling"):
        tokenizer = load_tokenizer(str(folder), GPT2Config())
    assert type(tokenizer).__name__ == "Qwen2Tokenizer" and not caplog.records
    as_written = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    reviews = sample_reviews("train")[:300]
    assert tokenizer(reviews)["input_ids"] == as_written(reviews)["input_ids"]


def test_a_saved_tokenizer_keeps_its_bases_config_but_not_the_machine(tmp_path):
    from nsmc_gen.modeling import load_tokenizer

    folder = qwen_style_folder(tmp_path / "qwen")
    save_tokenizer(load_tokenizer(str(folder), GPT2Config()), tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert saved["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert saved["model_max_length"] == 32768 and saved["errors"] == "replace"
    assert saved["additional_special_tokens"] == ["<|im_start|>", "<|im_end|>"]  # the name 4.x reads
    assert not {"is_local", "local_files_only", "name_or_path"} & set(saved)
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert reloaded.chat_template == CHAT_TEMPLATE and reloaded.model_max_length == 32768


def test_the_fallback_route_keeps_the_config_metadata(tmp_path, kogpt2_files):
    """A class that rebuilds another pipeline: tokenizer.json is loaded as written, and the rest of
    tokenizer_config.json (and chat_template.jinja, which transformers prefers) comes along."""
    named = {
        "tokenizer_class": "GPT2Tokenizer",
        "eos_token": "</s>",
        "model_max_length": 1024,
        "chat_template": "unused: chat_template.jinja wins",
        "padding_side": "left",
        "is_local": True,  # a machine's key, as transformers 5 writes them
    }
    folder = kogpt2_variant(tmp_path, kogpt2_files, tokenizer_config=named)
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    _, tokenizer = load_model_and_tokenizer(str(folder))
    assert type(tokenizer) is PreTrainedTokenizerFast and len(tokenizer) == 51_200
    assert (tokenizer.model_max_length, tokenizer.padding_side) == (1024, "left")
    assert tokenizer.chat_template == CHAT_TEMPLATE
    save_tokenizer(tokenizer, tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert saved["model_max_length"] == 1024 and saved["padding_side"] == "left"
    assert not {"is_local", "local_files_only"} & set(saved)
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert reloaded.chat_template == CHAT_TEMPLATE and reloaded.model_max_length == 1024
    assert reloaded("이 영화 최고")["input_ids"] == tokenizer("이 영화 최고")["input_ids"]


def test_a_token_the_config_adds_on_the_fallback_route_is_refused(tmp_path, kogpt2_files):
    named = {"tokenizer_class": "GPT2Tokenizer", "additional_special_tokens": ["<|im_start|>"]}
    folder = kogpt2_variant(tmp_path, kogpt2_files, tokenizer_config=named)
    with pytest.raises(ValueError, match=re.escape("names token(s) ['<|im_start|>']")):
        load_model_and_tokenizer(str(folder))


# ---------------------------------------------------------------- the dtype a fine-tune is published in


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"dtype": "bfloat16"}, torch.bfloat16),  # transformers >= 4.56 (Qwen3, EXAONE-4)
        ({"torch_dtype": "bfloat16"}, torch.bfloat16),  # earlier (Qwen2.5, Llama-3.2)
        ({"torch_dtype": "float16"}, torch.float16),
        ({}, torch.float32),  # KoGPT2's config.json has no field
    ],
)
def test_a_hub_base_is_published_in_the_dtype_its_config_declares(tmp_path, kogpt2_files, fields, expected):
    from nsmc_gen.modeling import publish_dtype

    folder = kogpt2_variant(tmp_path, kogpt2_files, config=fields)
    assert publish_dtype(str(folder)) == expected


def test_the_embedded_bases_fine_tunes_are_float32_though_it_is_stored_in_float16():
    from nsmc_gen.modeling import publish_dtype

    stored = json.loads((EMBEDDED_BASE / "config.json").read_text(encoding="utf-8"))
    assert (stored.get("dtype") or stored.get("torch_dtype")) == "float16"
    assert publish_dtype(EMBEDDED) == publish_dtype(str(EMBEDDED_BASE)) == torch.float32


def test_stored_weights_take_the_dtype_and_halve(tmp_path, tiny_model):
    from safetensors.torch import load_file

    from nsmc_gen.modeling import store_weights_as

    tiny_model.save_pretrained(tmp_path)
    before = (tmp_path / "model.safetensors").stat().st_size
    store_weights_as(tmp_path, torch.bfloat16)
    assert (tmp_path / "model.safetensors").stat().st_size < 0.51 * before
    assert json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))["dtype"] == "bfloat16"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)  # transformers 5: dtype "auto"
    assert loaded.dtype == torch.bfloat16
    stored = load_file(tmp_path / "model.safetensors")
    expected = tiny_model.transformer.wte.weight.detach().to(torch.bfloat16)
    assert torch.equal(stored["transformer.wte.weight"], expected)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        store_weights_as(tmp_path / "nothing", torch.bfloat16)


def test_an_adapter_and_its_merged_model_agree_in_the_same_dtype(tmp_path, tokenizer):
    """A bfloat16 base (as Qwen2.5 and Llama-3.2 are published): the merged folder is saved in
    bfloat16 too, so that AutoPeftModelForCausalLM (the base in its config's dtype) and the merged
    model agree, loaded by default or both in float32, within bfloat16's rounding."""
    from conftest import build_tiny_model, save_lora_adapter
    from peft import AutoPeftModelForCausalLM

    from nsmc_gen.modeling import load_finished_model, publish_dtype, store_weights_as

    base = tmp_path / "base"
    build_tiny_model(tokenizer).save_pretrained(base)
    save_tokenizer(tokenizer, base)
    store_weights_as(base, torch.bfloat16)
    adapter = tmp_path / "adapter"
    save_lora_adapter(tokenizer, adapter, str(base))
    merged = tmp_path / "merged"
    load_finished_model(adapter).merge_and_unload().save_pretrained(merged)  # model_folder.merge_adapter
    full_size = (merged / "model.safetensors").stat().st_size
    store_weights_as(merged, publish_dtype(str(base)))
    half_size = (merged / "model.safetensors").stat().st_size
    print(f"\nmerged folder: {full_size} bytes in float32, {half_size} in bfloat16")
    ids = torch.tensor([tokenizer("긍정 이 영화 정말 재밌어요")["input_ids"]])
    for dtype in ("auto", torch.float32):
        with torch.no_grad():
            by_adapter = AutoPeftModelForCausalLM.from_pretrained(adapter, dtype=dtype).eval()(ids).logits
            by_merged = AutoModelForCausalLM.from_pretrained(merged, dtype=dtype).eval()(ids).logits
        assert by_adapter.dtype == by_merged.dtype == (torch.bfloat16 if dtype == "auto" else torch.float32)
        difference = (by_adapter.float() - by_merged.float()).abs().max().item()
        print(f"dtype {dtype}: max |logits adapter - merged| = {difference:.1e}")
        assert difference < 1e-2  # logits of about 0.5: bfloat16 keeps 8 bits (2**-8 relative steps)
