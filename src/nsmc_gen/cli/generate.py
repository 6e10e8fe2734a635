"""``nsmc-gen generate``: write reviews of a sentiment with any decoding strategy.

A base model (KoGPT2 as published, the embedded base) knows no sentiment format: it continues
the prompt, with ``--sentiment none`` (its default); asking it for a sentiment is an error.

Example:
    nsmc-gen generate outputs/model --sentiment positive --num-return-sequences 20 \\
        --strategy top-p --top-p 0.92 --repetition-penalty 1.2 --seed 0 --json
    nsmc-gen generate skt/kogpt2-base-v2 --sentiment none --prompt "이 영화"
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from nsmc_gen.custom_generate.generate import GUIDANCE_FIELD
from nsmc_gen.decoding import DEFAULT_GUIDANCE_SCALE, DEFAULT_STRATEGY
from nsmc_gen.generation import COMMON_KNOBS, STRATEGIES, decoding_settings, generate_reviews
from nsmc_gen.modeling import EMBEDDED, is_sentiment_model, load_model_and_tokenizer

# The knobs of every strategy as options: name -> (type, help).
_KNOB_OPTIONS: dict[str, tuple[Any, str]] = {
    "temperature": (float, "softmax temperature (sampling, top-k, top-p)"),
    "top_k": (int, "keep the k most probable tokens (top-k)"),
    "top_p": (float, "keep the smallest set of tokens holding this probability (top-p), in (0, 1]"),
    "num_beams": (int, "beams (beam)"),
    "repetition_penalty": (
        float,
        "divide seen tokens' scores by this (> 0; 1: off; inf: never repeat a token)",
    ),
    "no_repeat_ngram_size": (int, "never repeat an n-gram of this size (0: off)"),
    "min_new_tokens": (int, "generate at least this many tokens"),
    "max_new_tokens": (int, "generate at most this many tokens (>= 1)"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` subcommand."""
    parser = subparsers.add_parser(
        "generate",
        help="write movie reviews of a sentiment",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("model", metavar="MODEL", help=f"model folder, Hub id, or {EMBEDDED!r}")
    parser.add_argument(
        "--sentiment",
        choices=["positive", "negative", "none"],
        default=None,
        help="the sentiment of the reviews (none: no sentiment word; default: positive for a model "
        "fine-tuned by nsmc-gen, none for a base model such as skt/kogpt2-base-v2)",
    )
    parser.add_argument("--prompt", default="", help="the start of every review")
    parser.add_argument("--num-return-sequences", type=int, default=1, help="how many reviews (default: 1)")
    parser.add_argument(
        "--strategy", choices=list(STRATEGIES), default=DEFAULT_STRATEGY, help=f"default: {DEFAULT_STRATEGY}"
    )
    defaults = {**{k: v for s in STRATEGIES.values() for k, v in s.knobs.items()}, **COMMON_KNOBS}
    for name, (kind, help_text) in _KNOB_OPTIONS.items():
        help_text = f"{help_text}; default: {defaults[name]}"
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=help_text)
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=None,
        help=f"sentiment guidance (1: off; default with a sentiment: {DEFAULT_GUIDANCE_SCALE})",
    )
    parser.add_argument("--seed", type=int, default=None, help="same seed, same reviews")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per review: text, sentiment, decoding"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the model, generate, print one review per line (or one JSON object per line)."""
    _check_model_name(args.model)
    sentiment = _sentiment(args.model, args.sentiment)
    knobs = {name: getattr(args, name) for name in _KNOB_OPTIONS if getattr(args, name) is not None}
    options = {"strategy": args.strategy, "guidance_scale": args.guidance_scale, **knobs}
    # Check every argument before the (slow) model load.
    settings = decoding_settings(
        sentiment=sentiment, num_return_sequences=args.num_return_sequences, **options
    )
    model, tokenizer = _load(args.model)
    reviews = generate_reviews(
        model,
        tokenizer,
        sentiment,
        args.prompt,
        num_return_sequences=args.num_return_sequences,
        seed=args.seed,
        **options,
    )
    for text in reviews:
        if args.json:
            record = {"text": text, "sentiment": sentiment, "prompt": args.prompt, "seed": args.seed}
            print(json.dumps({**record, "decoding": _json_safe(settings)}, ensure_ascii=False))
        else:
            print(text)
    return 0


def _check_model_name(name: str) -> None:
    if not name.strip():
        raise ValueError(f"MODEL must be a model folder, a Hub id or {EMBEDDED!r}, got {name!r}")
    if name.startswith((".", "/", "~")) and not Path(name).expanduser().is_dir():
        raise ValueError(f"MODEL {name!r}: no such model folder")


def _sentiment(name: str, asked: str | None) -> str | None:
    """The sentiment to write: as asked (default positive); a base model writes with none."""
    fine_tuned = is_sentiment_model(name)  # reads generation_config.json only: before the slow load
    if asked is None:
        return "positive" if fine_tuned else None
    if asked != "none" and not fine_tuned:
        raise ValueError(
            f"--sentiment {asked}: MODEL {name!r} is a base model, not fine-tuned on the sentiment "
            f"format (its generation_config.json has no {GUIDANCE_FIELD!r}); use --sentiment none "
            f"to continue a prompt, or fine-tune it first (recipes/finetune.py --model_name_or_path {name})"
        )
    return None if asked == "none" else asked


def _load(name: str) -> tuple[Any, Any]:
    try:
        return load_model_and_tokenizer(name)
    except OSError as error:  # transformers' "not a folder, not reachable on the Hub", as one line
        raise ValueError(f"cannot load MODEL {name!r}: {str(error).splitlines()[0]}") from error


def _json_safe(settings: dict[str, Any]) -> dict[str, Any]:
    """JSON has no infinity: the strict repetition penalty is written as the string "inf"."""
    return {k: "inf" if isinstance(v, float) and math.isinf(v) else v for k, v in settings.items()}
