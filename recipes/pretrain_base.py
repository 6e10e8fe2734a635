"""Pretrain the embedded base: the shipped tokenizer + the small GPT-2, as a plain language model.

    python recipes/pretrain_base.py --nsmc_dir ../shared/nsmc-rebuild

Trains on NSMC train reviews with no sentiment prefix (labels unused; the test split is never
read), evaluates on the seeded validation carve, checkpoints every ``save_steps`` and resumes
from the last checkpoint in ``output_dir`` when restarted. At the end it writes the base into the
package (``src/nsmc_gen/assets/base``): float16 safetensors, config and a short card.
Any ``TrainingArguments`` field can be overridden (``--num_train_epochs 1``).
"""

from __future__ import annotations

import math
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import GPT2LMHeadModel, HfArgumentParser, Trainer, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from nsmc_gen.data import load_nsmc
from nsmc_gen.formatting import ReviewCollator, tokenize_reviews
from nsmc_gen.modeling import EMBEDDED_BASE, embedded_config, load_embedded_tokenizer, with_causal_lm_loss
from nsmc_gen.tokenization import save_tokenizer


@dataclass
class PretrainArguments:
    nsmc_dir: str = field(default="../shared/nsmc-rebuild", metadata={"help": "NSMC files (None: download)"})
    max_length: int = field(default=128, metadata={"help": "tokens per review (covers > 99.9% of NSMC)"})
    export_dir: str = field(default=str(EMBEDDED_BASE), metadata={"help": "where the shipped base goes"})
    init_from: str | None = field(
        default=None,
        metadata={"help": "continue from this base folder instead of random init"},
    )
    dropout: float = field(default=0.1, metadata={"help": "GPT-2 dropouts; 0 suits short, underfit runs"})


DEFAULTS = dict(
    output_dir="runs/pretrain-base",
    per_device_train_batch_size=64,
    per_device_eval_batch_size=128,
    learning_rate=1e-3,
    warmup_steps=0.03,
    lr_scheduler_type="cosine",
    weight_decay=0.01,
    num_train_epochs=1,
    train_sampling_strategy="group_by_length",  # little padding without packing
    eval_strategy="steps",
    eval_steps=250,
    save_steps=250,
    save_total_limit=2,
    logging_steps=50,
    seed=7,
    use_cpu=not torch.cuda.is_available(),
    report_to="none",
)


def parse() -> tuple[PretrainArguments, TrainingArguments]:
    parser = HfArgumentParser((PretrainArguments, TrainingArguments))
    parser.set_defaults(**DEFAULTS)
    return parser.parse_args_into_dataclasses()


def earlier_stages(init_from: str | None) -> str:
    """The card lines of the stage this run continued from (its own stages included)."""
    if not init_from or not (Path(init_from) / "README.md").exists():
        return ""
    card = (Path(init_from) / "README.md").read_text(encoding="utf-8")
    return card[card.index("- data:") :].replace("\n", "\n  ").rstrip() + "\n"


def export_base(trainer: Trainer, export_dir: Path, eval_loss: float, command: str, earlier: str) -> None:
    """Write the base into the package: float16 weights (loaded back as float32), config, tokenizer, card."""
    model = trainer.model
    model.to(torch.float16).save_pretrained(export_dir, safe_serialization=True)
    save_tokenizer(trainer.processing_class, export_dir)  # a complete model folder: it loads by path
    model.to(torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    tokens = trainer.state.num_input_tokens_seen or "n/a"
    args = trainer.args
    (export_dir / "README.md").write_text(
        f"""# nsmc-gen embedded base

A {n_params / 1e6:.1f} M-parameter GPT-2 ({model.config.n_layer} layers, d={model.config.n_embd},
vocabulary {model.config.vocab_size}) pretrained as a plain language model on NSMC-rebuild
train reviews (no sentiment prefix, labels unused, the test split never seen), then stored in
float16. It plays the part KoGPT2 plays in the course: the base that `recipes/finetune.py`
fine-tunes on the sentiment format.

- data: NSMC-rebuild train minus the seeded 5,000-review validation carve
  ({trainer.train_dataset.num_rows:,} reviews)
- steps: {trainer.state.global_step:,}
  (batch {args.per_device_train_batch_size}, {trainer.state.epoch:.2f} epochs),
  tokens seen: {tokens}
- validation loss: {eval_loss:.3f} nats/token (perplexity {math.exp(eval_loss):.1f})
- command: `{command}`
{"- continued from a previous stage:" + chr(10) + "  " + earlier if earlier else ""}""",
        encoding="utf-8",
    )


def main() -> None:
    script_args, training_args = parse()
    training_args.include_num_input_tokens_seen = "non_padding"
    set_seed(training_args.seed)
    tokenizer = load_embedded_tokenizer()
    dropouts = dict.fromkeys(("resid_pdrop", "embd_pdrop", "attn_pdrop"), script_args.dropout)
    if script_args.init_from:
        model = GPT2LMHeadModel.from_pretrained(script_args.init_from, dtype=torch.float32, **dropouts)
    else:
        model = GPT2LMHeadModel(embedded_config(tokenizer, **dropouts))
    with_causal_lm_loss(model)  # else the Trainer's eval_loss reads ~0.8 nats low (first labels counted)

    nsmc = load_nsmc(data_dir=script_args.nsmc_dir, seed=training_args.seed)
    columns = nsmc["train"].column_names
    lm_data = {
        split: nsmc[split]
        .map(
            tokenize_reviews,
            batched=True,
            remove_columns=columns,
            fn_kwargs={"tokenizer": tokenizer, "review_format": None, "max_length": script_args.max_length},
        )
        .map(lambda row: {"length": len(row["input_ids"])})
        for split in ("train", "validation")
    }

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=lm_data["train"],
        eval_dataset=lm_data["validation"],
        data_collator=ReviewCollator(pad_token_id=tokenizer.pad_token_id),
        processing_class=tokenizer,
    )
    last = get_last_checkpoint(training_args.output_dir) if Path(training_args.output_dir).is_dir() else None
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint or last)
    eval_loss = trainer.evaluate()["eval_loss"]
    command = "python recipes/pretrain_base.py " + shlex.join(sys.argv[1:])
    earlier = earlier_stages(script_args.init_from)
    export_base(trainer, Path(script_args.export_dir), eval_loss, command.strip(), earlier)
    print(f"validation loss {eval_loss:.3f}; base written to {script_args.export_dir}")


if __name__ == "__main__":
    main()
