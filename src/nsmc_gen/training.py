"""Fine-tuning on NSMC: argument dataclasses, training data, Trainer assembly, the run's figures.

``recipes/finetune.py`` is a straight line over this module: :func:`parse_args` (a YAML recipe plus
command-line overrides), :func:`load_model` (with optional LoRA), :func:`prepare_datasets`,
:func:`build_trainer`, ``trainer.train``, :func:`training_facts`; the finished folder is written by
:mod:`nsmc_gen.model_folder`. Every decision lives here, so the same run can be driven from Python.

Example:
    >>> script, model_args, data_args, training_args = parse_args(
    ...     ["--max_train_samples", "64", "--max_steps", "2", "--output_dir", "/tmp/nsmc-gen-doc"]
    ... )
    >>> model, tokenizer = load_model(model_args, data_args)
    >>> data = prepare_datasets(data_args, tokenizer, training_args)
    >>> trainer = build_trainer(model, tokenizer, data, script, data_args, training_args)
    >>> _ = trainer.train(resume_from_checkpoint=last_checkpoint(training_args))
    >>> from nsmc_gen.model_folder import save_finished_model
    >>> facts = training_facts(trainer, model_args, data_args, trainer.evaluate())
    >>> folder = save_finished_model(trainer, facts, data_args.review_format)
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from transformers import (
    EarlyStoppingCallback,
    EvalPrediction,
    HfArgumentParser,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.pytorch_utils import Conv1D
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from nsmc_gen import __version__
from nsmc_gen.card import DEFAULT_DATASET, hub_model_id
from nsmc_gen.data import NSMC_URL, load_nsmc
from nsmc_gen.formatting import (
    IGNORE_INDEX,
    PackedReviewCollator,
    ReviewCollator,
    ReviewFormat,
    tokenize_reviews,
)
from nsmc_gen.model_folder import MERGED_DIR, RUN_FACTS, LoraFacts, RunFacts
from nsmc_gen.modeling import (
    EMBEDDED,
    EMBEDDED_BASE,
    NSMC_SAMPLE,
    check_special_tokens,
    load_finished_model,
    load_model_and_tokenizer,
    publish_dtype,
    zero3_paused,
)

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


@dataclass
class ScriptArguments:
    """What the recipe does around training."""

    config: str | None = field(
        default=None,
        metadata={"help": "a YAML recipe (flat keys = these arguments); the command line overrides it"},
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={
            "help": "stop after this many evaluations without improvement (needs load_best_model_at_end)"
        },
    )
    sample_reviews: int = field(
        default=3, metadata={"help": "generated reviews printed per sentiment after training (0: none)"}
    )
    calibrate_length_prior: bool = field(
        default=True,
        metadata={
            "help": "after training, calibrate the model's length prior against the training reviews "
            "and save it in generation_config.json (samples 2 rounds x 2 sentiments x calibration_reviews)"
        },
    )
    calibration_reviews: int = field(
        default=200, metadata={"help": "reviews sampled per sentiment in each calibration round"}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "train afresh into an output_dir that already holds a finished model (its checkpoints "
            "are deleted, its files replaced); without it such a run is refused"
        },
    )
    cpu_threads: int | None = field(
        default=None,
        metadata={
            "help": "torch threads per process when training on CPU; 0: the cores this process may use, "
            "shared among the machine's processes (unset: keep OMP_NUM_THREADS, which accelerate "
            "launch without a config sets to 1)"
        },
    )


@dataclass
class ModelArguments:
    """The base model, how it is loaded, and LoRA."""

    model_name_or_path: str = field(
        default=EMBEDDED, metadata={"help": "'embedded' (the shipped base), a Hub id or a model folder"}
    )
    from_scratch: bool = field(
        default=False, metadata={"help": "random initialisation with the base's config"}
    )
    dtype: str = field(
        default="float32",
        metadata={"help": "weights dtype at load; mixed precision is bf16/fp16", "choices": list(DTYPES)},
    )
    attn_implementation: str = field(
        default="sdpa", metadata={"help": "sdpa (needed by packing), eager, ..."}
    )
    use_peft: bool = field(default=False, metadata={"help": "train a LoRA adapter instead of all weights"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch, in [0, 1)"})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "module names to adapt, or all-linear (default: peft's choice for the architecture)"
        },
    )
    merge_lora: bool = field(
        default=False, metadata={"help": f"also save the merged full model in output_dir/{MERGED_DIR}"}
    )
    save_dtype: str = field(
        default="auto",
        metadata={
            "help": "dtype of the saved (and merged) model's weights; auto: the dtype the base is published "
            "in (bfloat16 for Qwen2.5, Llama-3.2, EXAONE-4; float32 for KoGPT2 and the embedded base)",
            "choices": list(DTYPES),
        },
    )


@dataclass
class DataArguments:
    """NSMC, the review format and how examples are batched."""

    data_dir: str | None = field(
        default=str(NSMC_SAMPLE),
        metadata={"help": "folder with ratings_{train,test}.txt[.gz] (default: the shipped sample)"},
    )
    validation_size: float | None = field(
        default=None,
        metadata={
            "help": "validation rows carved from train (>= 1) or a share (< 1); default: the data folder's "
            "ratings_validation.txt (the shipped sample's: reviews the embedded base never saw), else 5000"
        },
    )
    # 128 covers NSMC: reviews run to 140 characters; with the shipped tokenizer p99 is 77 tokens and
    # one review in 50k exceeds 127 (+ prefix + EOS). The course's 32 cuts most long reviews mid-way.
    max_length: int = field(default=128, metadata={"help": "tokens per example, prefix and EOS included"})
    packing: bool = field(default=False, metadata={"help": "pack several reviews per row (sdpa attention)"})
    positive_word: str = field(
        default=ReviewFormat.positive_word, metadata={"help": "prefix of positive reviews"}
    )
    negative_word: str = field(
        default=ReviewFormat.negative_word, metadata={"help": "prefix of negative reviews"}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "use only this many train rows"})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "use only this many validation rows"}
    )

    @property
    def review_format(self) -> ReviewFormat:
        return ReviewFormat(positive_word=self.positive_word, negative_word=self.negative_word)


# Library defaults under every recipe (a recipe's YAML and the command line override them).
TRAINING_DEFAULTS: dict[str, Any] = dict(
    output_dir="runs/nsmc-gen",
    seed=7,  # the course's
    learning_rate=5e-5,  # the course's AdamW setting for KoGPT2 (optim defaults to AdamW)
    num_train_epochs=3,  # the course's
    per_device_train_batch_size=32,
    per_device_eval_batch_size=64,
    eval_strategy="epoch",
    save_strategy="epoch",
    save_total_limit=2,
    logging_steps=50,
    # Batches of similar lengths: dynamic padding then wastes almost nothing, without packing.
    train_sampling_strategy="group_by_length",
    # Keeps the `length` column for the sampler (our collators read only input_ids); otherwise the
    # Trainer drops it and re-measures every example at start.
    remove_unused_columns=False,
    report_to="none",
    dataloader_pin_memory=torch.cuda.is_available(),  # pinning needs a GPU (a warning otherwise)
    # Without a GPU, use_cpu=True is what makes `accelerate launch --multi_gpu --num_processes 2` real
    # DDP over gloo: otherwise every process trains alone (world_size 1), silently.
    use_cpu=not torch.cuda.is_available(),
    ddp_find_unused_parameters=False,  # every trainable weight is used each step: skip DDP's extra graph walk
    # Mixed precision whenever a GPU supports it: bf16 where it exists, fp16 on older GPUs.
    bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    fp16=torch.cuda.is_available() and not torch.cuda.is_bf16_supported(),
)


def build_parser() -> HfArgumentParser:
    """The recipe's parser: script, model, data and ``TrainingArguments`` fields, library defaults."""
    parser = HfArgumentParser(
        (ScriptArguments, ModelArguments, DataArguments, TrainingArguments), allow_abbrev=False
    )
    parser.set_defaults(**TRAINING_DEFAULTS)
    return parser


def parse_args(
    args: list[str] | None = None, default_config: str | Path | None = None
) -> tuple[ScriptArguments, ModelArguments, DataArguments, TrainingArguments]:
    """Parse ``--config recipe.yaml`` plus command-line overrides into the four dataclasses.

    Precedence: command line > the YAML recipe (``--config``, else ``default_config``) > library
    defaults. Unknown keys in either place, a missing file and out-of-range values raise at once.

    Our own few lines over ``HfArgumentParser`` rather than TRL's ``TrlParser`` (trl 1.16 installs
    beside transformers 5.23): TrlParser accepts abbreviations (``--learning_rat 3`` sets
    learning_rate), names neither the recipe file nor a close key for an unknown one, and would
    add trl as a dependency for these lines alone.

    Example:
        >>> _, model_args, _, training_args = parse_args(["--max_steps", "20", "--use_peft"])
        >>> model_args.use_peft, training_args.max_steps, training_args.seed
        (True, 20, 7)
    """
    parser = build_parser()
    args = list(sys.argv[1:] if args is None else args)
    config, args = _pop_config(args)
    config = config or default_config
    if config is not None:
        parser.set_defaults(**load_recipe(config, parser))
    *parsed, remaining = parser.parse_args_into_dataclasses(args, return_remaining_strings=True)
    if remaining:
        raise ValueError(f"unknown command-line arguments {remaining}{_did_you_mean(remaining[0], parser)}")
    script_args, model_args, data_args, training_args = parsed
    script_args.config = None if config is None else str(config)
    validate_args(script_args, model_args, data_args, training_args)
    return script_args, model_args, data_args, training_args


def _pop_config(args: list[str]) -> tuple[str | None, list[str]]:
    for i, arg in enumerate(args):
        if arg == "--config":
            if i + 1 == len(args):
                raise ValueError("--config needs a path to a YAML recipe")
            return args[i + 1], args[:i] + args[i + 2 :]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1], args[:i] + args[i + 1 :]
    return None, args


def _known_keys(parser: HfArgumentParser) -> set[str]:
    return {action.dest for action in parser._actions if action.dest not in ("help", "config")}


def _did_you_mean(key: str, parser: HfArgumentParser) -> str:
    close = difflib.get_close_matches(key.lstrip("-").split("=")[0], _known_keys(parser), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_recipe(path: str | Path, parser: HfArgumentParser | None = None) -> dict[str, Any]:
    """Read a YAML recipe: a flat mapping of argument names to values, every name checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config: no recipe file {path}")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"config: {path} must be a mapping of argument names to values")
    known = _known_keys(parser or build_parser())
    for key in values:
        if key not in known:
            raise ValueError(
                f"config: unknown key {key!r} in {path}{_did_you_mean(key, parser or build_parser())}"
            )
    return values


def validate_args(
    script_args: ScriptArguments,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
) -> None:
    """Reject what would fail later, before any training time is spent."""
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(training_args, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(training_args, name)}")
    if data_args.data_dir is not None and not Path(data_args.data_dir).is_dir():
        raise FileNotFoundError(f"data_dir: no folder {data_args.data_dir}")
    if data_args.max_length < 2:
        raise ValueError(f"max_length must be >= 2 (a prefix and a token), got {data_args.max_length}")
    if data_args.validation_size is not None and data_args.validation_size <= 0:
        raise ValueError(f"validation_size must be > 0 (rows or a share), got {data_args.validation_size}")
    for name in ("max_train_samples", "max_eval_samples"):
        if getattr(data_args, name) is not None and getattr(data_args, name) < 1:
            raise ValueError(f"{name} must be >= 1 or unset, got {getattr(data_args, name)}")
    data_args.review_format  # noqa: B018  (raises on bad sentiment words)
    if data_args.packing and model_args.attn_implementation != "sdpa":
        raise ValueError("packing needs attn_implementation='sdpa' (its block-diagonal 4-D mask)")
    if model_args.lora_r < 1 or model_args.lora_alpha < 1:
        raise ValueError(
            f"lora_r and lora_alpha must be >= 1, got {model_args.lora_r}, {model_args.lora_alpha}"
        )
    if not 0 <= model_args.lora_dropout < 1:
        raise ValueError(f"lora_dropout must be in [0, 1), got {model_args.lora_dropout}")
    if model_args.merge_lora and not model_args.use_peft:
        raise ValueError("merge_lora needs use_peft")
    if model_args.use_peft and model_args.from_scratch:
        raise ValueError(
            "use_peft cannot go with from_scratch: the adapter would stand on random base weights that "
            "are never saved (train all weights from scratch, or LoRA over a pretrained base)"
        )
    if training_args.push_to_hub and model_args.use_peft and not model_args.merge_lora:
        base = model_args.model_name_or_path
        if hub_model_id(base) is None:
            raise ValueError(
                f"push_to_hub with use_peft needs merge_lora when the base is not a Hub id ({base!r}): "
                "the pushed adapter would point to a base nobody else has"
            )
    if script_args.cpu_threads is not None and script_args.cpu_threads < 0:
        raise ValueError(f"cpu_threads must be >= 0 (0: every core) or unset, got {script_args.cpu_threads}")
    if script_args.sample_reviews < 0:
        raise ValueError(f"sample_reviews must be >= 0, got {script_args.sample_reviews}")
    if script_args.calibration_reviews < 1:
        raise ValueError(f"calibration_reviews must be >= 1, got {script_args.calibration_reviews}")
    if script_args.early_stopping_patience is not None:
        if script_args.early_stopping_patience < 1:
            raise ValueError(
                f"early_stopping_patience must be >= 1, got {script_args.early_stopping_patience}"
            )
        if not training_args.load_best_model_at_end or training_args.eval_strategy == "no":
            raise ValueError("early_stopping_patience needs load_best_model_at_end=true and an eval_strategy")
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint and not _no_resume(checkpoint) and not Path(checkpoint).is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint: no checkpoint folder {checkpoint}")
    if script_args.overwrite_output_dir:
        _start_afresh(training_args)


# Files a finished run writes at the top of output_dir; a run that crashed has only checkpoint-N/.
FINISHED_FILES = (RUN_FACTS, "config.json", "adapter_config.json")


def finished_model_files(output_dir: str | Path) -> list[str]:
    """The finished model's files already in ``output_dir`` (empty: nothing finished there)."""
    return [name for name in FINISHED_FILES if (Path(output_dir) / name).is_file()]


def check_output_dir(training_args: TrainingArguments) -> None:
    """Refuse to train into a finished run's folder unless told how (HF's example scripts refuse too).

    Resuming its last checkpoint silently would train 0 steps and rewrite its facts (a 5-step run
    written up as the 938 steps of the checkpoint it resumed, its test perplexity "not recorded").
    Told how: ``--resume_from_checkpoint DIR`` resumes that checkpoint, ``--overwrite_output_dir
    true`` (or ``--resume_from_checkpoint false``) starts afresh. A run that crashed (checkpoints,
    no finished files) still resumes by itself. :func:`last_checkpoint` checks this; a script calls
    it first, right after :func:`parse_args`, to refuse before loading anything.

    Example:
        >>> _, _, _, training_args = parse_args(["--output_dir", "/tmp/nsmc-gen-nothing-here"])
        >>> check_output_dir(training_args)  # nothing finished there: passes
    """
    output_dir = Path(training_args.output_dir)
    finished = finished_model_files(output_dir)
    if finished and not training_args.resume_from_checkpoint:
        found = get_last_checkpoint(output_dir)
        checkpoint = found or f"{output_dir}/{PREFIX_CHECKPOINT_DIR}-N"
        raise ValueError(
            f"output_dir {output_dir} already holds a finished model ({', '.join(finished)}); training "
            "into it would replace the model and its run facts. Choose another --output_dir, pass "
            "--overwrite_output_dir true to train afresh into it, or --resume_from_checkpoint "
            f"{checkpoint} to resume one of its checkpoints"
        )


def _start_afresh(training_args: TrainingArguments) -> None:
    """``overwrite_output_dir``: no resuming, and the old run's checkpoints go (the main process
    deletes them), or the Trainer's rotation would delete the new run's lower-numbered ones and a
    later crash would resume the old run."""
    training_args.resume_from_checkpoint = "false"  # the field last_checkpoint reads
    if training_args.process_index == 0:
        for old in sorted(Path(training_args.output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")):
            logger.warning("overwrite_output_dir: deleting %s", old)
            shutil.rmtree(old)


def set_cpu_threads(cpu_threads: int | None, training_args: TrainingArguments) -> int:
    """Apply ``cpu_threads`` to torch when training runs on CPU; returns torch's thread count.

    ``accelerate launch`` without a config exports ``OMP_NUM_THREADS=1`` for a CPU run, which
    halves the no-argument run's speed on a 2-core machine; the embedded recipe asks for 0 (all
    the cores this process may use, divided among the processes on this machine).
    """
    if cpu_threads is not None and (training_args.use_cpu or not torch.cuda.is_available()):
        if cpu_threads == 0:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            cpu_threads = max(1, (cores or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
        torch.set_num_threads(cpu_threads)
    return torch.get_num_threads()


def _no_resume(value: str | None) -> bool:
    return str(value).lower() in {"false", "no", "none"}


def last_checkpoint(training_args: TrainingArguments) -> str | None:
    """The checkpoint to resume from: ``resume_from_checkpoint``, else the last one in output_dir
    (a run that crashed; a finished run's folder is refused unless told how: :func:`check_output_dir`).

    ``--resume_from_checkpoint false`` starts afresh even when output_dir holds checkpoints.
    """
    check_output_dir(training_args)
    if training_args.resume_from_checkpoint:
        return (
            None if _no_resume(training_args.resume_from_checkpoint) else training_args.resume_from_checkpoint
        )
    if not Path(training_args.output_dir).is_dir():
        return None
    found = get_last_checkpoint(training_args.output_dir)
    if found:
        logger.warning("resuming from %s (--resume_from_checkpoint false starts afresh)", found)
    return found


def load_model(model_args: ModelArguments, data_args: DataArguments | None = None):
    """The base model and tokenizer, with LoRA when ``use_peft`` (checked against the model first).

    Example:
        >>> model, tokenizer = load_model(ModelArguments(use_peft=True, lora_r=4))
        >>> model.peft_config["default"].fan_in_fan_out  # GPT-2's Conv1D layers
        True
    """
    dtype = DTYPES[model_args.dtype]
    if model_args.model_name_or_path == EMBEDDED:  # the embedded loader takes no kwargs
        model, tokenizer = load_model_and_tokenizer(EMBEDDED, from_scratch=model_args.from_scratch)
        if dtype != "auto":
            model.to(dtype)
    else:
        model, tokenizer = load_model_and_tokenizer(
            model_args.model_name_or_path, from_scratch=model_args.from_scratch, dtype=dtype
        )
    if model.config._attn_implementation != model_args.attn_implementation:
        model.set_attn_implementation(model_args.attn_implementation)
    if data_args is not None:
        positions = getattr(model.config, "n_positions", None) or getattr(
            model.config, "max_position_embeddings", None
        )
        if positions and data_args.max_length > positions:
            raise ValueError(
                f"max_length must be <= {positions} (the model's positions), got {data_args.max_length}"
            )
    if model_args.use_peft:
        model = apply_lora(model, model_args)
    return model, tokenizer


def apply_lora(model: PreTrainedModel, model_args: ModelArguments):
    """Wrap ``model`` in a LoRA ``PeftModel``; unknown target modules raise, listing the valid ones.

    peft 0.21 checks targets and sets fan_in_fan_out for Conv1D itself, but its error names no
    valid module and its fix-up comes as a warning at every run: both are done here first.
    """
    from peft import LoraConfig, get_peft_model
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    adaptable = {
        name.rsplit(".", 1)[-1]: module
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, Conv1D))
    }
    targets = model_args.lora_target_modules or PEFT_DEFAULTS.get(model.config.model_type)
    if not targets:
        raise ValueError(
            f"lora_target_modules: peft has no default for {model.config.model_type!r}; "
            f"choose among {sorted(adaptable)} or all-linear"
        )
    if targets != ["all-linear"]:
        missing = [t for t in targets if t not in adaptable]
        if missing:
            raise ValueError(
                f"lora_target_modules: {missing} not in {type(model).__name__}; "
                f"its linear layers: {sorted(adaptable)}"
            )
    chosen = adaptable.values() if targets == ["all-linear"] else [adaptable[t] for t in targets]
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=targets[0] if targets == ["all-linear"] else list(targets),
        # GPT-2's Conv1D stores weights transposed (in, out): LoRA must know.
        fan_in_fan_out=any(isinstance(m, Conv1D) for m in chosen),
    )
    peft_model = get_peft_model(model, config)
    # The adapter names its base so that AutoPeftModelForCausalLM can load it: a Hub id or a folder
    # as the user gave it; the embedded default by the folder of its weights, since "embedded" is
    # no id a loader resolves (the run facts keep "embedded").
    base = model_args.model_name_or_path
    base = str(EMBEDDED_BASE) if base == EMBEDDED else base
    peft_model.peft_config["default"].base_model_name_or_path = base
    return peft_model


def save_dtype(model_args: ModelArguments) -> torch.dtype:
    """The dtype the finished folder's weights are saved in: ``save_dtype``, or with ``auto`` the one
    the base is published in (:func:`nsmc_gen.modeling.publish_dtype`).

    Example:
        >>> save_dtype(ModelArguments()), save_dtype(ModelArguments(save_dtype="bfloat16"))
        (torch.float32, torch.bfloat16)
    """
    if model_args.save_dtype == "auto":
        return publish_dtype(model_args.model_name_or_path)
    return DTYPES[model_args.save_dtype]


def _tokenize_with_length(batch: dict[str, list], **kwargs: Any) -> dict[str, list]:
    encoded = tokenize_reviews(batch, **kwargs)
    return {**encoded, "length": [len(ids) for ids in encoded["input_ids"]]}


def prepare_datasets(
    data_args: DataArguments, tokenizer: PreTrainedTokenizerBase, training_args: TrainingArguments
) -> datasets.DatasetDict:
    """NSMC train/validation as token ids (prefix + review + EOS) with a ``length`` column.

    Example:
        >>> from nsmc_gen.modeling import load_embedded_tokenizer
        >>> data = prepare_datasets(DataArguments(max_train_samples=8, validation_size=100),
        ...                         load_embedded_tokenizer(), TrainingArguments("/tmp/x"))
        >>> data["train"].column_names, data["train"].num_rows
        (['input_ids', 'length'], 8)
    """
    with training_args.main_process_first(desc="NSMC tokenization"):
        prepared = {}
        for split, rows in _nsmc_splits(data_args, training_args.seed).items():
            prepared[split] = rows.map(
                _tokenize_with_length,
                batched=True,
                remove_columns=rows.column_names,
                fn_kwargs={
                    "tokenizer": tokenizer,
                    "review_format": data_args.review_format,
                    "max_length": data_args.max_length,
                },
                desc=f"tokenizing NSMC {split}",
            )
    return datasets.DatasetDict(prepared)


def _nsmc_splits(data_args: DataArguments, seed: int) -> dict[str, datasets.Dataset]:
    """The train and validation reviews the run uses: the carve, then the row limits."""
    size = data_args.validation_size
    nsmc = load_nsmc(
        data_dir=data_args.data_dir,
        validation_size=None if size is None else int(size) if size >= 1 else size,
        seed=seed,
    )
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples}
    return {
        split: nsmc[split] if limit is None else nsmc[split].select(range(min(limit, nsmc[split].num_rows)))
        for split, limit in limits.items()
    }


def train_reviews(data_args: DataArguments, training_args: TrainingArguments) -> list[str]:
    """The texts of the reviews the run trains on (the length prior's reference)."""
    return _nsmc_splits(data_args, training_args.seed)["train"]["document"]


def review_token_nll(logits: torch.Tensor | tuple, labels: torch.Tensor) -> torch.Tensor:
    """``preprocess_logits_for_metrics``: per row, summed NLL and count of scored (non -100) tokens.

    Reducing the (batch, length, vocab) logits at once keeps evaluation memory flat; the sums
    make :func:`perplexity_metrics` exact per token, whatever the batch lengths.
    """
    if isinstance(logits, tuple):
        logits = logits[0]
    targets = labels[:, 1:]
    nll = F.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
    )
    return torch.stack([nll.sum(dim=1), (targets != IGNORE_INDEX).sum(dim=1).float()], dim=1)


def perplexity_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """``compute_metrics``: loss per review token (padding never counts) and its perplexity."""
    nll, tokens = np.asarray(prediction.predictions, dtype=np.float64).reshape(-1, 2).sum(axis=0)
    loss = float(nll / tokens)
    return {"token_loss": loss, "perplexity": math.exp(loss), "tokens": int(tokens)}


def build_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: datasets.DatasetDict,
    script_args: ScriptArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    callbacks: list[TrainerCallback] | None = None,
) -> Trainer:
    """A ``Trainer`` with the review collator (dynamic padding or packing) and token-level eval metrics.

    Raises ``ValueError`` first if a special token's id lies outside the model's embedding.
    """
    check_special_tokens(model, tokenizer)  # a clear error now, not an IndexError in the first step
    if data_args.packing:
        collator = PackedReviewCollator(tokenizer.pad_token_id, max_length=data_args.max_length)
        # The Trainer's non-padding count sums a 2-D attention mask; packed batches carry a 4-D one.
        training_args.include_num_input_tokens_seen = "no"
    else:
        mixed = training_args.bf16 or training_args.fp16
        collator = ReviewCollator(tokenizer.pad_token_id, pad_to_multiple_of=8 if mixed else None)
        # Set here, not as a parser default: that field parses only booleans from the command line.
        training_args.include_num_input_tokens_seen = "non_padding"
    callbacks = list(callbacks or [])
    if script_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=script_args.early_stopping_patience))
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=perplexity_metrics,
        preprocess_logits_for_metrics=review_token_nll,
        callbacks=callbacks,
    )
    if not _is_terminal(sys.stderr):
        # tqdm redraws its bar with carriage returns, which a log file or CI keeps as one line per
        # redraw (~500 for the no-argument run), and it writes every logging_steps dict on a line of
        # its own; PrinterCallback (disable_tqdm) prints the dicts too. The dicts stay in
        # trainer_state.json's log_history.
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(LogProgressCallback())
    return trainer


def _is_terminal(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", None)) and stream.isatty()


class LogProgressCallback(TrainerCallback):
    """Training progress for a log file: one bar, drawn again on a new line at each tenth of the run
    (and the validation figures once per evaluation), on stderr, by the main process only.

    Example line: ``train [######--------------]  30%  282/938 steps  loss 4.870  1:05 elapsed, ~2:31 left``
    """

    def __init__(self, lines: int = 10, stream: Any = None) -> None:
        self.lines = lines
        self.stream = stream
        self.loss: float | None = None
        self.started = 0.0
        self.shown = -1

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)

    def on_train_begin(self, args, state, control, **kwargs):
        self.started, self.shown = time.monotonic(), -1

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_step_end(self, args, state, control, **kwargs):
        total, step = max(state.max_steps, 1), state.global_step
        tenth = step * self.lines // total
        if not state.is_world_process_zero or (tenth == self.shown and step < total):
            return
        self.shown = tenth
        elapsed = time.monotonic() - self.started
        left = elapsed / max(step, 1) * (total - step)
        width = 20
        bar = "#" * (width * step // total) + "-" * (width - width * step // total)
        loss = "" if self.loss is None else f"  loss {self.loss:.3f}"
        self._print(
            f"train [{bar}] {100 * step // total:3d}%  {step}/{total} steps{loss}  "
            f"{_clock(elapsed)} elapsed, ~{_clock(left)} left"
        )

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if state.is_world_process_zero and metrics:
            ours = [key for key in ("eval_token_loss", "eval_perplexity") if key in metrics]
            figures = ", ".join(
                f"{key.removeprefix('eval_')} {metrics[key]:.4g}" for key in ours or ["eval_loss"]
            )
            self._print(f"eval  step {state.global_step}: {figures}")


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return (
        f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"
    )


def take_push_request(training_args: TrainingArguments) -> str | None:
    """The Hub repository to publish to (``--push_to_hub --hub_model_id org/name``), or None.

    Checked at start (repository id, a token), and the Trainer's own pushing is switched off: the
    finished folder is pushed once, in one commit, by :func:`nsmc_gen.hub.push_model`, whereas the
    Trainer would create the repository at start and push every checkpoint.
    """
    push, training_args.push_to_hub = training_args.push_to_hub, False
    if not push:
        return None
    if not training_args.hub_model_id or training_args.hub_model_id.count("/") != 1:
        raise ValueError(
            f"push_to_hub needs hub_model_id as namespace/name, got {training_args.hub_model_id!r}"
        )
    from huggingface_hub import get_token

    if not (training_args.hub_token or get_token()):
        raise ValueError("push_to_hub: no Hub token (set hub_token or HF_TOKEN, or run `hf auth login`)")
    return training_args.hub_model_id


def _command() -> str:
    return shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])


def training_facts(
    trainer: Trainer,
    model_args: ModelArguments,
    data_args: DataArguments,
    eval_metrics: dict[str, float],
    command: str | None = None,
) -> RunFacts:
    """The run's real figures (:class:`nsmc_gen.model_folder.RunFacts`), read from the trainer."""
    args, state = trainer.args, trainer.state
    train = trainer.train_dataset
    tokens_per_epoch = int(sum(train["length"]))
    lora = model_args.use_peft and trainer.model.peft_config["default"]
    closing = next((entry for entry in reversed(state.log_history) if "train_runtime" in entry), {})
    return RunFacts(
        base_model=None if model_args.from_scratch else model_args.model_name_or_path,
        from_scratch_config=model_args.model_name_or_path if model_args.from_scratch else None,
        dataset=DEFAULT_DATASET,
        data_source=NSMC_URL if data_args.data_dir is None else _describe_data_dir(data_args.data_dir),
        train_rows=train.num_rows,
        validation_rows=trainer.eval_dataset.num_rows,
        epochs=round(state.epoch or 0.0, 4),
        global_step=state.global_step,
        max_steps=args.max_steps if args.max_steps > 0 else None,
        # Exact when the Trainer counted non-padding tokens; estimated from epochs with packing.
        train_tokens=state.num_input_tokens_seen or round((state.epoch or 0.0) * tokens_per_epoch),
        learning_rate=args.learning_rate,
        batch_size=args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
        max_length=data_args.max_length,
        seed=args.seed,
        eval_loss=eval_metrics.get("eval_token_loss"),
        eval_perplexity=eval_metrics.get("eval_perplexity"),
        peft=LoraFacts.from_adapter_config(lora.to_dict()) if lora else None,
        merged=False,
        train_runtime_s=closing.get("train_runtime"),
        hardware=_hardware(args),
        command=command or _command(),
        train_loss=closing.get("train_loss"),
        eval_tokens=eval_metrics.get("eval_tokens"),
        review_format={"positive": data_args.positive_word, "negative": data_args.negative_word},
        packing=data_args.packing,
        processes=args.world_size,
        per_device_batch_size=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        lr_scheduler=str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        warmup_steps=args.warmup_steps,
        optimizer=str(getattr(args.optim, "value", args.optim)),
        precision="bf16" if args.bf16 else "fp16" if args.fp16 else model_args.dtype,
        versions=_versions(),
    )


def _hardware(args: TrainingArguments) -> str:
    if torch.cuda.is_available() and not args.use_cpu:
        return f"{args.world_size} x {torch.cuda.get_device_name()}"
    per_process = f"{os.cpu_count()} CPU cores"
    return per_process if args.world_size == 1 else f"{args.world_size} processes on {per_process}"


def _describe_data_dir(data_dir: str) -> str:
    return (
        "nsmc-gen's shipped NSMC sample"
        if Path(data_dir).resolve() == NSMC_SAMPLE.resolve()
        else str(data_dir)
    )


def _versions() -> dict[str, str]:
    import peft
    import transformers

    return {
        "nsmc_gen": __version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "peft": peft.__version__,
    }


@contextmanager
def whole_model(trainer: Trainer, folder: Path) -> Iterator[PreTrainedModel]:
    """The trained model, whole, for the main process alone to generate with.

    Under DeepSpeed ZeRO-3 the weights in memory are partitioned across the processes and
    ``generate`` would wait for the others at every step (``synced_gpus``): the finished folder is
    loaded back instead, with ZeRO-3 paused. Elsewhere it is ``trainer.model`` itself.
    """
    if not (trainer.is_deepspeed_enabled and is_deepspeed_zero3_enabled()):
        yield trainer.model
        return
    with zero3_paused():
        yield load_finished_model(folder)
