"""The embedded default (shipped tokenizer + small GPT-2) and loading any causal LM.

The embedded default plays the part KoGPT2 plays in the course: a Korean GPT pretrained once
(on NSMC train reviews, as a plain language model) and shipped inside the package, so that
fine-tuning runs offline on a CPU in minutes. Real use means a real base model, e.g.
``load_model_and_tokenizer("skt/kogpt2-base-v2")``.

Example:
    >>> model, tokenizer = load_embedded_default()
    >>> tokenizer.decode(tokenizer("재밌어요")["input_ids"])
    '재밌어요'
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

logger = logging.getLogger(__name__)

ASSETS = Path(str(resources.files("nsmc_gen") / "assets"))
EMBEDDED_TOKENIZER = ASSETS / "tokenizer.json"
EMBEDDED_BASE = ASSETS / "base"  # pretrained weights + config + card, written by recipes/pretrain_base.py
NSMC_SAMPLE = ASSETS / "nsmc-sample"  # ratings_{train,test}.txt.gz in the official format
EMBEDDED = "embedded"  # the model name that selects the embedded default
KOGPT2 = "skt/kogpt2-base-v2"

SPECIAL_TOKENS = {"unk_token": "<unk>", "eos_token": "</s>", "pad_token": "<pad>"}

# Sized so that fine-tuning runs in minutes on 2 CPU cores and the float16 weights stay < 8 MB.
EMBEDDED_CONFIG = dict(n_layer=6, n_embd=192, n_head=6, n_positions=128)


def train_nsmc_tokenizer(texts: Iterable[str], vocab_size: int = 6000) -> PreTrainedTokenizerFast:
    """Train a KoGPT2-style tokenizer: BPE over Metaspace words, byte fallback for rare characters.

    Byte fallback keeps ``decode(encode(review)) == review`` for every review, emoji included.
    """
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    # Llama's decoder: the Metaspace decoder alone drops spaces once byte fallback is on.
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()) + bytes_,
        min_frequency=2,
        show_progress=True,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)


def with_causal_lm_loss(model: PreTrainedModel) -> PreTrainedModel:
    """Make the model's loss the shifted causal-LM loss, whatever its class is called.

    GPT2LMHeadModel's name does not end in "ForCausalLM", so transformers leaves ``loss_type``
    unset and the Trainer then counts each row's first label as a target: losses read low by
    about 1/length (the embedded base's first card said 5.308 where the per-token NLL is 6.065).
    """
    model.loss_type = "ForCausalLM"
    return model


def load_embedded_tokenizer() -> PreTrainedTokenizerFast:
    """The shipped Korean tokenizer (trained on NSMC train reviews)."""
    return PreTrainedTokenizerFast(tokenizer_file=str(EMBEDDED_TOKENIZER), **SPECIAL_TOKENS)


def embedded_config(tokenizer: PreTrainedTokenizerFast, **overrides: Any) -> GPT2Config:
    """The small GPT-2 configuration of the embedded default, for ``tokenizer``'s vocabulary."""
    return GPT2Config(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **{**EMBEDDED_CONFIG, **overrides},
    )


def load_embedded_default(from_scratch: bool = False) -> tuple[GPT2LMHeadModel, PreTrainedTokenizerFast]:
    """The embedded base model (float32, for CPU training) and its tokenizer.

    Args:
        from_scratch: a randomly initialised model with the same configuration instead of the
            shipped pretrained weights.
    """
    tokenizer = load_embedded_tokenizer()
    if from_scratch or not (EMBEDDED_BASE / "model.safetensors").exists():
        if not from_scratch:
            logger.warning("no pretrained embedded base in %s: starting from random weights", EMBEDDED_BASE)
        return with_causal_lm_loss(GPT2LMHeadModel(embedded_config(tokenizer))), tokenizer
    model = GPT2LMHeadModel.from_pretrained(EMBEDDED_BASE, dtype=torch.float32)
    return with_causal_lm_loss(model), tokenizer


def load_model_and_tokenizer(
    model_name_or_path: str = EMBEDDED,
    *,
    from_scratch: bool = False,
    **model_kwargs: Any,
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Load a causal LM and its tokenizer by Hub id or folder (``"embedded"``: the embedded default).

    A tokenizer without a pad token gets its EOS token as pad (padding is masked out of the loss
    by position, so this is safe).

    Example:
        >>> model, tok = load_model_and_tokenizer("skt/kogpt2-base-v2", dtype="auto")
    """
    if model_name_or_path == EMBEDDED:
        return load_embedded_default(from_scratch=from_scratch)
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if from_scratch:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model_name_or_path)
        model = AutoModelForCausalLM.from_config(config, **model_kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_name_or_path, **model_kwargs)
    return with_causal_lm_loss(model), tokenizer
