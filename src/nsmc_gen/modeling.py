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

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


@contextmanager
def zero3_paused() -> Iterator[None]:
    """Load a model whole on one process while a DeepSpeed ZeRO-3 run is live.

    Under ZeRO-3 transformers builds every new model partitioned across the run's processes (a
    collective), so a model that the main process alone loads, to merge an adapter or to print
    samples, would wait for the other processes forever.
    """
    from transformers.integrations import deepspeed as hf_deepspeed

    live = hf_deepspeed._hf_deepspeed_config_weak_ref  # private, but there is no public getter
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = live


def load_finished_model(folder: str | Path) -> PreTrainedModel:
    """A saved folder loaded whole on this process: a full model, or a LoRA adapter over its base
    (``base_model_name_or_path`` loaded as :func:`load_model_and_tokenizer` loads it).

    Example:
        >>> model = load_finished_model("runs/embedded")  # doctest: +SKIP
    """
    folder = Path(folder)
    with zero3_paused():
        adapter_config = folder / "adapter_config.json"
        if not adapter_config.is_file():
            return AutoModelForCausalLM.from_pretrained(folder)
        from peft import PeftModel

        base_name = json.loads(adapter_config.read_text(encoding="utf-8"))["base_model_name_or_path"]
        base, _ = load_model_and_tokenizer(base_name)
        return PeftModel.from_pretrained(base, folder)
