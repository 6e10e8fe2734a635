"""``nsmc-gen generate``: write reviews of a sentiment with any decoding strategy.

A base model (KoGPT2 as published, the embedded base) knows no sentiment format: it continues
the prompt, with ``--sentiment none`` (its default); asking it for a sentiment is an error.

Example:
    nsmc-gen generate runs/embedded --sentiment positive --num-return-sequences 20 \\
        --strategy top-p --top-p 0.92 --repetition-penalty 1.2 --seed 0 --json
    nsmc-gen generate skt/kogpt2-base-v2 --sentiment none --prompt "이 영화"
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from nsmc_gen.cli._model import EMBEDDED, check_model_argument, load_model

# What --help shows, written here so that it needs no torch (nsmc_gen.generation imports it).
# tests/test_cli_manners.py checks every entry against nsmc_gen.generation.STRATEGIES,
# COMMON_KNOBS and nsmc_gen.decoding, so a change there that is not made here fails the suite.
DEFAULT_STRATEGY = "top-p"
DEFAULT_GUIDANCE_SCALE = 2.0
# strategy -> the knob flags it takes besides the common ones
STRATEGY_KNOBS: dict[str, tuple[str, ...]] = {
    "greedy": (),
    "beam": ("num_beams",),
    "sampling": ("temperature",),
    "top-k": ("top_k", "temperature"),
    "top-p": ("top_p", "temperature"),
}
COMMON_KNOBS = ("repetition_penalty", "no_repeat_ngram_size", "min_new_tokens", "max_new_tokens")
# knob -> (type, help, default)
KNOB_OPTIONS: dict[str, tuple[Any, str, Any]] = {
    "temperature": (float, "softmax temperature (sampling, top-k, top-p)", 1.0),
    "top_k": (int, "keep the k most probable tokens (top-k)", 50),
    "top_p": (float, "keep the smallest set of tokens holding this probability (top-p), in (0, 1]", 0.8),
    "num_beams": (int, "beams (beam)", 5),
    "repetition_penalty": (
        float,
        "divide seen tokens' scores by this (> 0; 1: off; inf: never repeat a token)",
        1.2,
    ),
    "no_repeat_ngram_size": (int, "never repeat an n-gram of this size (0: off)", 0),
    "min_new_tokens": (int, "generate at least this many tokens", 0),
    "max_new_tokens": (int, "generate at most this many tokens (>= 1)", 64),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` subcommand."""
    parser = subparsers.add_parser(
        "generate",
        help="write movie reviews of a sentiment",
        description="Write movie reviews of a sentiment with any strategy of the decoding lesson.",
        epilog="examples:\n" + __doc__.split("Example:\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        "--strategy", choices=list(STRATEGY_KNOBS), default=None, help=f"default: {DEFAULT_STRATEGY}"
    )
    for name, (kind, help_text, default) in KNOB_OPTIONS.items():
        parser.add_argument(_flag(name), type=kind, default=None, help=f"{help_text}; default: {default}")
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
    from nsmc_gen.generation import decoding_settings, generate_reviews

    check_model_argument(args.model)
    knobs = {name: getattr(args, name) for name in KNOB_OPTIONS if getattr(args, name) is not None}
    strategy = args.strategy or DEFAULT_STRATEGY
    _check_knobs_fit(strategy, knobs, explicit=args.strategy is not None)
    sentiment = _sentiment(args.model, args.sentiment)
    options = {"strategy": strategy, "guidance_scale": args.guidance_scale, **knobs}
    # Check every argument before the (slow) model load.
    settings = decoding_settings(
        sentiment=sentiment, num_return_sequences=args.num_return_sequences, **options
    )
    model, tokenizer = load_model(args.model)
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


def _flag(knob: str) -> str:
    return f"--{knob.replace('_', '-')}"


def _check_knobs_fit(strategy: str, knobs: dict[str, Any], *, explicit: bool) -> None:
    """A flag the strategy does not take: name the ``--strategy`` that does, in flags only."""
    own = [name for name in knobs if name not in COMMON_KNOBS]  # the strategy-specific flags given
    foreign = [name for name in own if name not in STRATEGY_KNOBS[strategy]]
    if not foreign:
        return
    takes = ", ".join(_flag(name) for name in STRATEGY_KNOBS[strategy])
    takes = f"takes {takes} besides the common flags" if takes else "takes only the common flags"
    which = f"--strategy {strategy}" if explicit else f"the default strategy ({strategy})"
    fitting = [name for name, flags in STRATEGY_KNOBS.items() if all(knob in flags for knob in own)]
    if fitting:
        hint = "use " + " or ".join(f"--strategy {name}" for name in fitting)
    else:
        hint = f"no strategy takes {' and '.join(_flag(name) for name in own)} together"
    flags = " and ".join(_flag(name) for name in foreign)
    raise ValueError(f"{flags} does not apply to {which}, which {takes}; {hint}")


def _sentiment(name: str, asked: str | None) -> str | None:
    """The sentiment to write: as asked (default positive); a base model writes with none."""
    from nsmc_gen.custom_generate.generate import GUIDANCE_FIELD
    from nsmc_gen.modeling import is_sentiment_model

    fine_tuned = is_sentiment_model(name)  # reads generation_config.json only: before the slow load
    if asked is None:
        return "positive" if fine_tuned else None
    if asked != "none" and not fine_tuned:
        raise ValueError(
            f"--sentiment {asked}: MODEL {name!r} is a base model, not fine-tuned on the sentiment "
            f"format (its generation_config.json has no {GUIDANCE_FIELD!r}); use --sentiment none "
            f"to continue a prompt, or fine-tune it first "
            f"(accelerate launch recipes/finetune.py --model_name_or_path {name})"
        )
    return None if asked == "none" else asked


def _json_safe(settings: dict[str, Any]) -> dict[str, Any]:
    """JSON has no infinity: the strict repetition penalty is written as the string "inf"."""
    return {k: "inf" if isinstance(v, float) and math.isinf(v) else v for k, v in settings.items()}
