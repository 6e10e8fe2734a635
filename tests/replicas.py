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
