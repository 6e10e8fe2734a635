"""``nsmc-gen demo MODEL``: serve the web demo (Gradio) for a model folder or Hub id.

A base model (KoGPT2 as published, the embedded base) gets a page without sentiment control:
it only continues the prompt.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from typing import Any

from nsmc_gen.cli._extras import require_extra
from nsmc_gen.cli._model import EMBEDDED, check_model_argument, load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="serve the web demo for a model",
        description="Serve the web demo: prompt, sentiment, strategy and every decoding parameter.",
    )
    parser.add_argument("model", metavar="MODEL", help=f"model folder, Hub id, or {EMBEDDED!r}")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default: %(default)s)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_model_argument(args.model)
    require_extra("demo")
    # Imported here: gradio takes seconds to import, and other subcommands must not pay for it.
    from nsmc_gen.demo import build_demo
    from nsmc_gen.modeling import is_sentiment_model

    sentiment_control = is_sentiment_model(args.model)
    model, tokenizer = load_model(args.model)
    demo = build_demo(model, tokenizer, **_sentiment_option(build_demo, sentiment_control, args.model))
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


def _sentiment_option(build_demo: Any, sentiment_control: bool, name: str) -> dict[str, bool]:
    """``sentiment_control=`` for a ``build_demo`` that takes it (the demo module gains it separately)."""
    if "sentiment_control" in inspect.signature(build_demo).parameters:
        return {"sentiment_control": sentiment_control}
    if not sentiment_control:
        note = f"nsmc-gen demo: note: {name!r} is a base model: its sentiment choices mean nothing"
        print(note, file=sys.stderr)
    return {}
