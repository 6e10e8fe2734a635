"""``nsmc-gen demo MODEL``: serve the web demo (Gradio) for a model folder or Hub id."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="serve the web demo for a model",
        description="Serve the web demo: prompt, sentiment, strategy and every decoding parameter.",
    )
    parser.add_argument("model", metavar="MODEL", help="model folder, Hub id, or 'embedded'")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default: %(default)s)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: gradio takes seconds to import, and other subcommands must not pay for it.
    from nsmc_gen.demo import build_demo
    from nsmc_gen.modeling import load_model_and_tokenizer

    try:
        model, tokenizer = load_model_and_tokenizer(args.model)
    except OSError as error:  # transformers' "not a folder, not reachable on the Hub"
        raise ValueError(f"cannot load MODEL {args.model!r}: {error}") from error
    build_demo(model, tokenizer).launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0
