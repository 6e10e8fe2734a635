"""The recipe's arguments: three dataclasses beside ``TrainingArguments``, a YAML recipe plus
command-line overrides, every check made before any work.

``recipes/finetune.py`` parses with :func:`parse_args` (``HfArgumentParser`` over
:class:`ScriptArguments`, :class:`ModelArguments`, :class:`DataArguments` and transformers'
``TrainingArguments``); :mod:`nsmc_gen.training` runs what they describe.

Example:
    >>> script, model_args, data_args, training_args = parse_args(["--max_steps", "2", "--lora_r", "4"])
    >>> model_args.model_name_or_path, model_args.lora_r, training_args.max_steps
    ('embedded', 4, 2)
"""

from __future__ import annotations

import difflib
import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from nsmc_gen.card import hub_model_id
from nsmc_gen.formatting import ReviewFormat
from nsmc_gen.model_folder import MERGED_DIR
from nsmc_gen.modeling import EMBEDDED, NSMC_SAMPLE

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
    # Mixed precision whenever a GPU supports it: bf16 where the hardware has it, fp16 on older GPUs
    # (a T4: torch counts its emulated bf16 as supported unless asked for hardware; emulated bf16 is
    # slow). Recipes of bf16-pretrained bases switch fp16 off (it can overflow): float32 there.
    bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False),
    fp16=torch.cuda.is_available() and not torch.cuda.is_bf16_supported(including_emulation=False),
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
    if checkpoint and not no_resume(checkpoint) and not Path(checkpoint).is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint: no checkpoint folder {checkpoint}")
    if script_args.overwrite_output_dir:
        _start_afresh(training_args)


def _start_afresh(training_args: TrainingArguments) -> None:
    """``overwrite_output_dir``: no resuming, and the old run's checkpoints go (the main process
    deletes them), or the Trainer's rotation would delete the new run's lower-numbered ones and a
    later crash would resume the old run."""
    training_args.resume_from_checkpoint = "false"  # the field last_checkpoint reads
    if training_args.process_index == 0:
        for old in sorted(Path(training_args.output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")):
            logger.warning("overwrite_output_dir: deleting %s", old)
            shutil.rmtree(old)


def no_resume(value: str | None) -> bool:
    """Whether a ``resume_from_checkpoint`` value says not to resume (``false``, ``no``, ``none``)."""
    return str(value).lower() in {"false", "no", "none"}
