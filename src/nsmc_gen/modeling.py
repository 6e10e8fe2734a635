"""The embedded default (shipped tokenizer + small GPT-2) and loading any causal LM.

The embedded default plays the part KoGPT2 plays in the course: a Korean GPT pretrained once
(on NSMC train reviews, as a plain language model) and shipped inside the package, so that
fine-tuning runs offline on a CPU in minutes. Real use means a real base model, e.g.
``load_model_and_tokenizer("skt/kogpt2-base-v2")``, which loads the tokenizer the model was
trained with (:func:`~nsmc_gen.tokenization.load_tokenizer`: a repo's tokenizer.json is the
authority where AutoTokenizer would rebuild another pipeline), checks every special token against
the embedding, and adds nothing.

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
from typing import TYPE_CHECKING, Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from nsmc_gen.custom_generate.generate import GUIDANCE_FIELD
from nsmc_gen.files import atomic_write, write_text_atomic
from nsmc_gen.tokenization import check_special_tokens, load_tokenizer, repo_file

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


class _DropDeepSpeedAcceleratorLine(logging.Filter):
    """DeepSpeed's "Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to
    detect it." (a WARNING on stdout, from ``deepspeed.accelerator.real_accelerator``), printed once by
    any process that imports deepspeed without a GPU: accelerate does, whenever it unwraps a model
    (every Trainer, every ``save_pretrained``). On a CPU it says nothing the user needs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Setting accelerator to CPU")


# On the logger object itself, before deepspeed creates it: ``logging.getLogger("DeepSpeed")`` then
# returns this same object, filter included, and deepspeed's other messages are untouched.
logging.getLogger("DeepSpeed").addFilter(_DropDeepSpeedAcceleratorLine())

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

    The tokenizer is the one the model was trained with (:func:`load_tokenizer`); a tokenizer
    without a pad token gets its EOS token as pad (padding is masked out of the loss by position,
    so this is safe). Every special token id is checked to lie inside the model's embedding
    (:func:`check_special_tokens`): nothing is added, nothing is resized.

    Example:
        >>> model, tok = load_model_and_tokenizer("skt/kogpt2-base-v2", dtype="auto")  # doctest: +SKIP
        >>> tok.bos_token, tok.eos_token, tok.pad_token_id  # doctest: +SKIP
        ('</s>', '</s>', 3)
    """
    if model_name_or_path == EMBEDDED:
        return load_embedded_default(from_scratch=from_scratch)
    revision = model_kwargs.get("revision")
    if from_scratch:
        config = AutoConfig.from_pretrained(model_name_or_path, revision=revision)
        model = with_causal_lm_loss(AutoModelForCausalLM.from_config(config, **model_kwargs))
    else:
        model = load_base_model(model_name_or_path, **model_kwargs)
    tokenizer = load_tokenizer(model_name_or_path, model.config, revision=revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    check_special_tokens(model, tokenizer)
    return model, tokenizer


# ----------------------------------------------------------------------------- base or fine-tuned


def is_sentiment_model(model: PreTrainedModel | str) -> bool:
    """Whether ``model`` was fine-tuned on the sentiment format (``"긍정 ..."`` / ``"부정 ..."``).

    nsmc-gen's training writes a ``sentiment_guidance`` field (the sentiment prompts' token ids)
    into every finished folder's generation_config.json; a base model (KoGPT2, the embedded base)
    has none. ``model`` is a loaded model, or a folder / Hub id / ``"embedded"``, of which only
    generation_config.json is read (so a command can check its arguments before loading weights).

    Example:
        >>> is_sentiment_model("embedded")  # the shipped base: a plain language model
        False
    """
    if not isinstance(model, str):
        return bool(getattr(model.generation_config, GUIDANCE_FIELD, None))
    folder = str(EMBEDDED_BASE) if model == EMBEDDED else model
    try:
        path = repo_file(folder, "generation_config.json")
    except (OSError, ValueError):  # not a folder, not a repo: the loader will say so
        return False
    return path is not None and bool(json.loads(path.read_text(encoding="utf-8")).get(GUIDANCE_FIELD))


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
    (``base_model_name_or_path`` loaded by :func:`load_base_model`, in float32:
    the precision the adapter trained against, whatever the base's stored dtype, e.g. the
    embedded base's float16).

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
        return PeftModel.from_pretrained(load_base_model(base_name, dtype=torch.float32), folder)


def load_base_model(model_name_or_path: str, **model_kwargs: Any) -> PreTrainedModel:
    """The model of :func:`load_model_and_tokenizer` without its tokenizer: what an adapter loads
    over (the adapter folder carries the tokenizer, the base folder need not).

    Example:
        >>> load_base_model(EMBEDDED).config.n_layer
        6
    """
    if model_name_or_path == EMBEDDED:
        return load_embedded_default()[0]
    return with_causal_lm_loss(AutoModelForCausalLM.from_pretrained(model_name_or_path, **model_kwargs))


# ----------------------------------------------------------------------------- the published dtype

DTYPE_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def publish_dtype(model_name_or_path: str, revision: str | None = None) -> torch.dtype:
    """The dtype a fine-tune of ``model_name_or_path`` is saved in: the one its base is published in.

    A Hub base's ``config.json`` says it (``dtype``, or ``torch_dtype`` before transformers 4.56):
    bfloat16 for Qwen2.5, Llama-3.2, EXAONE-4; float32 for KoGPT2 (no field); a folder of ours
    says float32. Training runs in the recipe's ``dtype`` (float32 by default) whatever this is.

    The embedded base is the exception: its weights are stored in float16 only to keep the package
    small, and it is pretrained and fine-tuned in float32 on a CPU. Its fine-tunes are float32: a
    CPU computes no faster in half precision, float16 would round every fine-tuned weight to
    2**-11 for no gain (the folder is 15 MB in float32), and a folder saved in float16 would load
    as float16 by default in transformers 5 (``dtype="auto"``), slower and less exact on a CPU.

    Example:
        >>> publish_dtype(EMBEDDED)
        torch.float32
    """
    if (
        model_name_or_path == EMBEDDED
        or Path(model_name_or_path).expanduser().resolve() == EMBEDDED_BASE.resolve()
    ):
        return torch.float32
    path = repo_file(model_name_or_path, "config.json", revision)
    config = json.loads(path.read_text(encoding="utf-8")) if path is not None else {}
    declared = config.get("dtype") or config.get("torch_dtype")
    return DTYPE_NAMES.get(declared, torch.float32) if isinstance(declared, str) else torch.float32


def store_weights_as(folder: str | Path, dtype: torch.dtype) -> None:
    """Store a saved full model's floating-point weights in ``dtype``, in place, each file atomically.

    Works on the files, not on a model in memory, so that it serves every saver alike: the Trainer
    (whose ZeRO-3 or FSDP save gathers weights the process does not hold whole), a LoRA merge, a
    plain ``save_pretrained``. The safetensors files (and their index) and config.json's ``dtype``
    change; a LoRA adapter folder (no config.json) is left as peft saved it.

    Example:
        >>> model, _ = load_embedded_default(from_scratch=True)
        >>> model.save_pretrained("/tmp/nsmc-gen-dtype")
        >>> store_weights_as("/tmp/nsmc-gen-dtype", torch.bfloat16)
        >>> AutoModelForCausalLM.from_pretrained("/tmp/nsmc-gen-dtype").dtype
        torch.bfloat16
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder}: no config.json, not a saved full model")
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {sorted(DTYPE_NAMES)}, got {name}")
    sizes = {}
    for file in sorted(folder.glob("model*.safetensors")):
        with safe_open(file, framework="pt") as weights:
            metadata = weights.metadata()
            tensors = {key: weights.get_tensor(key) for key in weights.keys()}  # noqa: SIM118 (not a dict)
        cast = {k: t.to(dtype) if t.is_floating_point() else t for k, t in tensors.items()}
        if any(cast[k].dtype != tensors[k].dtype for k in tensors):
            atomic_write(
                file, lambda temporary, cast=cast, metadata=metadata: save_file(cast, temporary, metadata)
            )
        sizes[file.name] = sum(t.numel() * t.element_size() for t in cast.values())
    index_path = folder / "model.safetensors.index.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text(encoding="utf-8"))
        index.setdefault("metadata", {})["total_size"] = sum(sizes.values())
        write_text_atomic(index_path, json.dumps(index, indent=2, sort_keys=True) + "\n")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["dtype"] = name
    if "torch_dtype" in config:
        config["torch_dtype"] = name
    write_text_atomic(config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")
