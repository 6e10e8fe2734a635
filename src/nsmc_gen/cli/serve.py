"""``nsmc-gen serve MODEL [vLLM args...]``: vLLM's OpenAI-compatible server for a model folder or Hub
id, with nsmc-gen's decoding (strict repetition penalty, nucleus with EOS kept, the length prior).

vLLM lives in a venv of its own (it pins an older transformers): ``--python`` names its interpreter.
Every argument after MODEL goes to vLLM (``--port 8000``, ``--tensor-parallel-size 2``, ...).
"""

from __future__ import annotations

import argparse

from nsmc_gen.cli._model import check_model_argument
from nsmc_gen.serving.launch import serve


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a model through vLLM's OpenAI-compatible server",
        description="Serve a model folder or Hub id through vLLM's OpenAI-compatible server with nsmc-gen's "
        "decoding (strict repetition penalty, nucleus with EOS kept, the length prior). vLLM lives in a venv "
        "of its own: --python names its interpreter. Every other argument after MODEL goes to vLLM.",
        epilog="Example: nsmc-gen serve runs/embedded --python ~/.venvs/vllm/bin/python --port 8000",
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="the interpreter of a venv with vLLM (default: this one); see docs/serving.md",
    )
    parser.add_argument("model", metavar="MODEL", help="model folder or Hub id")
    parser.add_argument(
        "vllm_args", nargs=argparse.REMAINDER, metavar="VLLM_ARGS", help="passed to vLLM's server as they are"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_model_argument(args.model)  # a mistyped folder says so before vLLM starts (tens of seconds)
    python, vllm_args = _own_python(args.python, args.vllm_args)
    serve(args.model, vllm_args, python)  # replaces this process; raises ValueError if it cannot
    return 0


def _own_python(python: str | None, vllm_args: list[str]) -> tuple[str | None, list[str]]:
    """``--python`` given after MODEL, where argparse's remainder took it (vLLM has no such flag).

    Example:
        >>> _own_python(None, ["--python", "/v/bin/python", "--port", "8000"])
        ('/v/bin/python', ['--port', '8000'])
        >>> _own_python("/a", ["--python=/b"])
        ('/b', [])
    """
    rest: list[str] = []
    args = iter(vllm_args)
    for arg in args:
        if arg == "--python":
            python = next(args, None)
            if python is None:
                raise ValueError("--python needs the path of an interpreter with vLLM")
        elif arg.startswith("--python="):
            python = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return python, rest
