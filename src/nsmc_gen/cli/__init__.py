"""``nsmc-gen``: the command line. Parsing and printing only; every decision is made in the library.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its parser
and sets ``func(args) -> int``. Errors from the library (``ValueError``, ``FileNotFoundError``)
print as one line and exit with status 2, like argparse's own usage errors. Building the parser
imports nothing heavy (no torch, transformers, peft or gradio): each subcommand imports what it
needs inside its ``func``, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMAND_MODULES = ("generate", "evaluate", "demo", "push", "serve")

DESCRIPTION = (
    "Fine-tune a Korean GPT on NSMC movie reviews, then write reviews of a chosen sentiment with "
    "any decoding strategy, study the strategies, demo, publish and serve the model."
)
EPILOG = (
    "Run 'nsmc-gen COMMAND --help' for a command's options. Training is a recipe: "
    "accelerate launch recipes/finetune.py"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nsmc-gen", description=DESCRIPTION, epilog=EPILOG)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:  # a subcommand not built yet
            if error.name != f"{__name__}.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError) as error:
        print(f"nsmc-gen {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
