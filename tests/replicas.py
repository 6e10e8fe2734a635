"""Faithful replicas of real Hub repositories, put in a Hub cache so that they load by id offline.

``skt/kogpt2-base-v2`` (FIELD-NOTES, "Real base models and other clients") holds exactly
``config.json``, ``tokenizer.json`` and ``pytorch_model.bin``: no ``tokenizer_config.json``,
``special_tokens_map.json`` or ``generation_config.json``. The replica has the same files and
nothing more, the same configuration and tokenizer structure, and tiny weights. A loopback Hub
server (olah) cannot stand in: it answers 401 for a file a repo lacks where the Hub answers 404.
Instead the files go where ``hf_hub_download`` left them for a user who downloaded the repo
earlier: ``$HF_HOME/hub/models--ORG--NAME/snapshots/<sha>/`` with the sha in ``refs/main``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel

from nsmc_gen.modeling import NSMC_SAMPLE

KOGPT2 = "skt/kogpt2-base-v2"
KOGPT2_VOCAB = 51_200
# The first ids of KoGPT2's tokenizer.json, in order (config.json: bos 0, eos 1, pad 3).
KOGPT2_SPECIAL_TOKENS = [
    "<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>", "<d>", "</d>",
    *(f"<unused{i}>" for i in range(100)),
]  # fmt: skip
# How the model card, the course and every user load it (bos = eos = "</s>", id 1).
KOGPT2_DOCUMENTED_TOKENS = {
    "bos_token": "</s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}

# KoGPT2's config.json as published (written by transformers 4.3.3), shrunk to 2 layers x 32 wide.
KOGPT2_CONFIG = {
    "_num_labels": 1,
    "activation_function": "gelu_new",
    "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.1,
    "author": "Heewon Jeon(madjakarta@gmail.com)",
    "bos_token_id": 0,
    "created": "2021-04-28",
    "embd_pdrop": 0.1,
    "eos_token_id": 1,
    "gradient_checkpointing": False,
    "id2label": {"0": "LABEL_0"},
    "initializer_range": 0.02,
    "label2id": {"LABEL_0": 0},
    "layer_norm_epsilon": 1e-05,
    "license": "CC-BY-NC-SA 4.0",
    "model_type": "gpt2",
    "n_ctx": 1024,
    "n_embd": 32,  # 768 in the real model
    "n_head": 2,  # 12
    "n_inner": None,
    "n_layer": 2,  # 12
    "n_positions": 1024,
    "pad_token_id": 3,
    "resid_pdrop": 0.1,
    "summary_activation": None,
    "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True,
    "summary_type": "cls_index",
    "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "transformers_version": "4.3.3",
    "use_cache": True,
    "vocab_size": KOGPT2_VOCAB,
}


def nsmc_sample_reviews(*splits: str) -> list[str]:
    """The shipped NSMC sample's review texts (default: train and test)."""
    reviews = []
    for split in splits or ("train", "test"):
        with gzip.open(NSMC_SAMPLE / f"ratings_{split}.txt.gz", "rt", encoding="utf-8") as f:
            reviews += [line.rstrip("\n").split("\t")[1] for line in f][1:]
    return reviews


def kogpt2_tokenizer(reviews: list[str], trained_vocab: int = 8000) -> Tokenizer:
    """A tokenizer with KoGPT2's structure: BPE over Metaspace words (prefix always added, no
    byte fallback, ``<unk>`` for unseen characters), no normalizer, no post-processor, the special
    tokens at ids 0..108 and a vocabulary of 51,200.

    ``trained_vocab`` entries are learned from ``reviews`` (seconds; 51,200 real merges take
    three times longer); the rest of the 51,200 are entries no merge reaches, as rare tokens are
    for most texts.
    """
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=trained_vocab, special_tokens=KOGPT2_SPECIAL_TOKENS, show_progress=False
    )
    tokenizer.train_from_iterator(reviews, trainer=trainer)
    data = json.loads(tokenizer.to_str())
    vocab = data["model"]["vocab"]
    for i in range(len(vocab), KOGPT2_VOCAB):
        vocab[f"▁unreached{i}"] = i
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def write_kogpt2_repo(folder: Path, tokenizer: Tokenizer, config: dict | None = None, seed: int = 0) -> Path:
    """KoGPT2's three files in ``folder``: config.json, tokenizer.json, pytorch_model.bin."""
    config = {**KOGPT2_CONFIG, **(config or {})}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    tokenizer.save(str(folder / "tokenizer.json"))
    torch.manual_seed(seed)
    known = set(GPT2Config().to_dict())
    model = GPT2LMHeadModel(GPT2Config(**{k: v for k, v in config.items() if k in known}))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # a pickled state dict, as in 2021
    return folder


def put_in_hub_cache(hub_cache: Path, repo_id: str, folder: Path, files: list[str] | None = None) -> Path:
    """Lay ``folder``'s files out as a repo downloaded earlier: loadable by id with HF_HUB_OFFLINE=1.

    ``files``: paths relative to ``folder`` (default: its top-level files), e.g. what
    ``nsmc_gen.hub.validate_model_folder`` says a push uploads. Returns the snapshot folder. Files
    the repo lacks are simply absent, as a 404 would leave them.
    """
    files = sorted(files or (p.name for p in folder.iterdir() if p.is_file()))
    digest = hashlib.sha1()
    for name in files:
        digest.update(name.encode() + (folder / name).read_bytes())
    repo = Path(hub_cache) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / digest.hexdigest()
    for name in files:
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / name, snapshot / name)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(digest.hexdigest(), encoding="utf-8")
    return snapshot


# ======================================================================= modern Korean bases
#
# FIELD-NOTES, "Modern Korean bases", holds what these replicas rely on (special tokens and ids,
# tied or untied, classes, generation defaults); the remaining fields are the real files' as
# recalled from the repos and the transformers docs (marked "recalled" where not in FIELD-NOTES).
# Each replica: the real repo's files that a loader reads, the real tokenizer.json structure
# (normalizer, pre-tokenizer, post-processor, decoder, BPE options), the special tokens at their
# real ids, the vocabulary padded to the real size with tokens no merge reaches (as rare tokens are
# for most texts), an embedding padded past the tokenizer where the real one is, 2 layers x 64,
# stored in the real dtype. The BPE's merges are learnt once on the NSMC sample (byte level).

QWEN = "Qwen/Qwen2.5-0.5B"
LLAMA = "meta-llama/Llama-3.2-1B"
POLYGLOT = "EleutherAI/polyglot-ko-1.3b"
EXAONE = "LGAI-EXAONE/EXAONE-4.0-1.2B"
MODERN_BASES = (QWEN, LLAMA, POLYGLOT, EXAONE)

_BYTE_LEVEL = {"add_prefix_space": False, "trim_offsets": False, "use_regex": False}
# The pre-tokenizer regexes of the real tokenizer.json files (Qwen2 and Llama-3 differ in \p{N}).
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA_SPLIT = QWEN_SPLIT.replace(r"|\p{N}|", r"|\p{N}{1,3}|")

QWEN_SPECIALS = [  # ids 151643.. (special false: the tool-call and fill-in-the-middle markers)
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
    ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False), ("<|repo_name|>", False), ("<|file_sep|>", False),
]  # fmt: skip
LLAMA_SPECIALS = [  # ids 128000..128255
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
    *(f"<|reserved_special_token_{i}|>" for i in range(3, 248)),
]  # fmt: skip
# polyglot-ko: config eos_token_id 2 = <|endoftext|> (pad = eos); the other names are recalled.
POLYGLOT_SPECIALS = [
    "<|startoftext|>",
    "<|unk|>",
    "<|endoftext|>",
    "<|sep|>",
    "<|acc|>",
    "<|tel|>",
    "<|rrn|>",
]
# EXAONE 4.0: [PAD] 0, [BOS] 1, [|endofturn|] 361 (FIELD-NOTES); [EOS] 2, [UNK] 3 and the chat
# markers' places are recalled; the ids between are reserved names here.
EXAONE_SPECIALS = {0: "[PAD]", 1: "[BOS]", 2: "[EOS]", 3: "[UNK]", 361: "[|endofturn|]"}
EXAONE_CHAT_MARKERS = ["[|system|]", "[|user|]", "[|assistant|]", "[|tool|]", "<think>", "</think>"]
EXAONE_SPECIALS |= {4 + i: token for i, token in enumerate(EXAONE_CHAT_MARKERS)}

QWEN_CHAT_TEMPLATE = (  # Qwen2.5's (tool calls left out)
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first)"
    " or (message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
EXAONE_CHAT_TEMPLATE = (  # EXAONE's turn markers (reasoning and tools left out)
    "{%- for message in messages %}"
    "{{- '[|' + message.role + '|]' + message.content + '[|endofturn|]\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '[|assistant|]' }}{%- endif %}"
)


def byte_level_bpe(reviews: list[str], trained_vocab: int = 3000) -> tuple[list[str], list[list[str]]]:
    """A byte-level BPE learnt on ``reviews``: its tokens in id order and its merges (~2 s)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=trained_vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(reviews, trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return sorted(model["vocab"], key=model["vocab"].get), model["merges"]


def _added(token_id: int, content: str, special: bool = True) -> dict:
    return {
        "id": token_id, "content": content, "single_word": False, "lstrip": False,
        "rstrip": False, "normalized": False, "special": special,
    }  # fmt: skip


def _vocabulary(bpe: tuple[list[str], list], size: int, reserved: dict[int, str]) -> dict[str, int]:
    """``size`` entries: ``reserved`` at their ids, the learnt tokens in the free ids, then fillers."""
    learnt = iter(bpe[0])
    vocab = {}
    for i in range(size):
        token = reserved.get(i) or next(learnt, None) or f"unreached{i}"
        vocab[token] = i
    return vocab


def _tokenizer_json(vocab, merges, added, *, normalizer, pre_tokenizer, post_processor, decoder, bpe):
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
        "decoder": decoder,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False,
                  "byte_fallback": False, **bpe, "vocab": vocab, "merges": merges},
    }  # fmt: skip


def _split_then_bytes(pattern: str, trim_offsets: bool) -> dict:
    return {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", **_BYTE_LEVEL, "trim_offsets": trim_offsets},
        ],
    }


def _decoder_table(added: list[dict]) -> dict[str, dict]:
    return {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added}


def qwen_files(bpe) -> dict:
    """Qwen/Qwen2.5-0.5B: byte-level BPE over NFC + the Qwen2 split, no BOS (ByteLevel
    post-processor), 151,643 tokens + 22 added (eos = pad = <|endoftext|> 151643), embedding 151,936."""
    vocab = _vocabulary(bpe, 151_643, {})
    added = [_added(151_643 + i, t, s) for i, (t, s) in enumerate(QWEN_SPECIALS)]
    tokenizer = _tokenizer_json(
        vocab, bpe[1], added,
        normalizer={"type": "NFC"},
        pre_tokenizer=_split_then_bytes(QWEN_SPLIT, trim_offsets=False),
        post_processor={"type": "ByteLevel", **_BYTE_LEVEL},
        decoder={"type": "ByteLevel", **_BYTE_LEVEL},
        bpe={"continuing_subword_prefix": "", "end_of_word_suffix": "", "ignore_merges": False},
    )  # fmt: skip
    config = {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
        "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02,
        "intermediate_size": 128, "max_position_embeddings": 32768, "max_window_layers": 24,
        "model_type": "qwen2", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "transformers_version": "4.40.1", "use_cache": True, "use_mrope": False,
        "use_sliding_window": False, "vocab_size": 151936,
    }  # real: hidden 896, intermediate 4864, 14 heads (2 kv), 24 layers  # fmt: skip
    tokenizer_config = {
        "add_prefix_space": False, "added_tokens_decoder": _decoder_table(added),
        "additional_special_tokens": [t for t, s in QWEN_SPECIALS[1:14]], "bos_token": None,
        "chat_template": QWEN_CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>", "errors": "replace", "model_max_length": 131072,
        "pad_token": "<|endoftext|>", "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }  # fmt: skip
    generation = {"bos_token_id": 151643, "do_sample": False, "eos_token_id": 151643, "max_new_tokens": 2048,
                  "transformers_version": "4.37.0"}  # fmt: skip
    return {
        "config.json": config, "generation_config.json": generation, "tokenizer.json": tokenizer,
        "tokenizer_config.json": tokenizer_config, **_vocab_and_merges(vocab, bpe[1]),
    }  # fmt: skip


def llama_files(bpe) -> dict:
    """meta-llama/Llama-3.2-1B: byte-level BPE (ignore_merges), a post-processor that ADDS
    <|begin_of_text|> (128000), no pad token, eos <|end_of_text|> 128001, sampling defaults."""
    vocab = _vocabulary(bpe, 128_000, {})
    added = [_added(128_000 + i, t) for i, t in enumerate(LLAMA_SPECIALS)]
    bos = {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}
    post = {
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {
                "type": "TemplateProcessing",
                "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                         "tokens": ["<|begin_of_text|>"]}},
            },
        ],
    }  # fmt: skip
    tokenizer = _tokenizer_json(
        vocab, bpe[1], added,
        normalizer=None,
        pre_tokenizer=_split_then_bytes(LLAMA_SPLIT, trim_offsets=True),
        post_processor=post,
        decoder={"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        bpe={"continuing_subword_prefix": None, "end_of_word_suffix": None, "ignore_merges": True},
    )  # fmt: skip
    config = {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 16, "hidden_act": "silu",
        "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 128,
        "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
        "transformers_version": "4.45.0.dev0", "use_cache": True, "vocab_size": 128256,
    }  # real: head_dim 64, hidden 2048, intermediate 8192, 32 heads (8 kv), 16 layers  # fmt: skip
    tokenizer_config = {
        "added_tokens_decoder": _decoder_table(added), "bos_token": "<|begin_of_text|>",
        "clean_up_tokenization_spaces": True, "eos_token": "<|end_of_text|>",
        "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }  # fmt: skip
    special_map = {
        name: {"content": token, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
        for name, token in (("bos_token", "<|begin_of_text|>"), ("eos_token", "<|end_of_text|>"))
    }
    generation = {"bos_token_id": 128000, "do_sample": True, "eos_token_id": 128001, "temperature": 0.6,
                  "top_p": 0.9, "transformers_version": "4.45.0.dev0"}  # fmt: skip
    return {
        "config.json": config, "generation_config.json": generation, "tokenizer.json": tokenizer,
        "tokenizer_config.json": tokenizer_config, "special_tokens_map.json": special_map,
    }  # fmt: skip


def _gpt2_style_tokenizer_json(vocab: dict, merges: list, added: list[dict]) -> dict:
    """GPT-2's byte-level pipeline as polyglot-ko and EXAONE-4 publish it: ByteLevel pre-tokenizer,
    post-processor (adds nothing) and decoder, no normalizer; ``added``: the special tokens."""
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return _tokenizer_json(
        vocab, merges, added,
        normalizer=None,
        pre_tokenizer={"type": "ByteLevel", **byte_level},
        post_processor={"type": "ByteLevel", **byte_level},
        decoder={"type": "ByteLevel", **byte_level},
        bpe={"continuing_subword_prefix": None, "end_of_word_suffix": None, "ignore_merges": False},
    )  # fmt: skip


def polyglot_files(bpe) -> dict:
    """EleutherAI/polyglot-ko-1.3b (2022: no generation_config.json, weights in pytorch_model.bin):
    GPT-NeoX, untied, byte-level BPE of 30,003 tokens in an embedding of 30,080, pad = eos =
    <|endoftext|> (2), no BOS added."""
    reserved = dict(enumerate(POLYGLOT_SPECIALS))
    vocab = _vocabulary(bpe, 30_003, reserved)
    added = [_added(i, t) for i, t in reserved.items()]
    tokenizer = _gpt2_style_tokenizer_json(vocab, bpe[1], added)
    config = {
        "architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "gelu",
        "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 256, "layer_norm_eps": 1e-05,
        "max_position_embeddings": 2048, "model_type": "gpt_neox", "num_attention_heads": 4,
        "num_hidden_layers": 2, "rotary_emb_base": 10000, "rotary_pct": 0.5, "tie_word_embeddings": False,
        "torch_dtype": "float16", "transformers_version": "4.21.0.dev0", "use_cache": True,
        "use_parallel_residual": True, "vocab_size": 30080,
    }  # real: hidden 2048, intermediate 8192, 16 heads, 24 layers  # fmt: skip
    tokenizer_config = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                        "tokenizer_class": "PreTrainedTokenizerFast"}  # fmt: skip
    special_map = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
    return {
        "config.json": config, "tokenizer.json": tokenizer, "tokenizer_config.json": tokenizer_config,
        "special_tokens_map.json": special_map,
    }  # fmt: skip


def exaone_files(bpe) -> dict:
    """LGAI-EXAONE/EXAONE-4.0-1.2B: exaone4, tied, GPT2Tokenizer class over a byte-level BPE of
    102,400 with its special tokens at low ids: [PAD] 0, [BOS] 1, [|endofturn|] 361 (eos)."""
    reserved = {i: EXAONE_SPECIALS.get(i, f"[|reserved{i}|]") for i in range(362)}
    vocab = _vocabulary(bpe, 102_400, reserved)
    added = [_added(i, t) for i, t in reserved.items()]
    tokenizer = _gpt2_style_tokenizer_json(vocab, bpe[1], added)
    config = {
        "architectures": ["Exaone4ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
        "eos_token_id": 361, "head_dim": 16, "hidden_act": "silu", "hidden_size": 64,
        "initializer_range": 0.02, "intermediate_size": 128, "layer_types": ["full_attention"] * 2,
        "max_position_embeddings": 65536, "model_type": "exaone4", "num_attention_heads": 4,
        "num_hidden_layers": 2, "num_key_value_heads": 2, "pad_token_id": 0, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 16.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 1000000.0, "sliding_window": None, "sliding_window_pattern": None,
        "tie_word_embeddings": True, "torch_dtype": "bfloat16", "transformers_version": "4.54.0",
        "use_cache": True, "vocab_size": 102400,
    }  # real (recalled): head_dim 64, hidden 2048, intermediate 4096, 32 heads (8 kv), 30 layers  # fmt: skip
    tokenizer_config = {
        "add_prefix_space": False, "added_tokens_decoder": _decoder_table(added), "bos_token": "[BOS]",
        "chat_template": EXAONE_CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
        "eos_token": "[|endofturn|]", "model_max_length": 1000000000000000019884624838656,
        "pad_token": "[PAD]", "tokenizer_class": "GPT2Tokenizer", "unk_token": "[UNK]",
    }  # fmt: skip
    special_map = {
        "bos_token": "[BOS]",
        "eos_token": "[|endofturn|]",
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
    }
    generation = {"bos_token_id": 1, "eos_token_id": 361, "pad_token_id": 0, "transformers_version": "4.54.0"}
    return {
        "config.json": config, "generation_config.json": generation, "tokenizer.json": tokenizer,
        "tokenizer_config.json": tokenizer_config, "special_tokens_map.json": special_map,
        **_vocab_and_merges(vocab, bpe[1]),
    }  # fmt: skip


def _vocab_and_merges(vocab: dict[str, int], merges: list[list[str]]) -> dict:
    """vocab.json and merges.txt, which the GPT-2-style classes (Qwen2Tokenizer, GPT2Tokenizer) read."""
    return {"vocab.json": vocab, "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)}


MODERN_FILES = {QWEN: qwen_files, LLAMA: llama_files, POLYGLOT: polyglot_files, EXAONE: exaone_files}
MODERN_DTYPES = {QWEN: torch.bfloat16, LLAMA: torch.bfloat16, POLYGLOT: torch.float16, EXAONE: torch.bfloat16}


def write_modern_repo(repo_id: str, folder: Path, bpe, seed: int = 0) -> Path:
    """``repo_id``'s replica in ``folder``: its files as the Hub serves them, tiny weights in its dtype."""
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    files = MODERN_FILES[repo_id](bpe)
    for name, content in files.items():
        text = (
            content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False) + "\n"
        )
        (folder / name).write_text(text, encoding="utf-8")
    config = AutoConfig.from_pretrained(folder)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    state = {k: v.to(MODERN_DTYPES[repo_id]).contiguous() for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # tied: the real files hold the embedding once
    if repo_id == POLYGLOT:  # GPT-NeoX's output head under its 4.x name (5.x renames it on load)
        state["embed_out.weight"] = state.pop("lm_head.weight")
        torch.save(state, folder / "pytorch_model.bin")
    else:
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    return folder
