"""The documentation: the site builds strict, and the README's and the docs' commands run.

The commands are read from the ```bash blocks of README.md and docs/*.md, so this test follows the
docs: a command it neither runs nor lists in ``NOT_RUN`` with a reason fails it. The offline ones
run in a scratch folder laid out like a clone (``recipes/`` and ``../shared`` beside it) with tiny
settings appended; the model the recipe writes there is the one the later commands use.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKDOWN = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
BIN = Path(sys.executable).parent  # accelerate, nsmc-gen and mkdocs of this interpreter

# Commands the test cannot run here, each with the reason (pattern: a regex from the start).
NOT_RUN = {
    r"git clone ": "needs the network (GitHub)",
    r"pip install ": "needs the package index (network)",
    r"python -m pytest$": "the test suite itself",
    r"accelerate launch recipes/finetune\.py --config recipes/(kogpt2|trinity|qwen[^/]*)/": "downloads its "
    "base model and the official NSMC files (network), and wants a GPU",
    r"accelerate launch recipes/finetune\.py --model_name_or_path [\w.-]+/": "downloads its base model "
    "(network)",
    r"accelerate launch --config_file recipes/accelerate_configs/(multi_gpu|deepspeed_zero[23]|fsdp)\.yaml": (
        "needs GPUs (several machines for --num_machines)"
    ),
    r"accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3_cpu\.yaml": "the same "
    "config runs in tests/test_distributed.py (2 DeepSpeed CPU processes, minutes)",
    r"nsmc-gen push(-dataset)? ": "needs the network and a Hub token (tests/test_hub.py pushes to a "
    "loopback Hub server)",
    r"nsmc-gen serve ": "needs vLLM, installed on its own (the serving tests run it)",
    r"(#!/bin/bash|#SBATCH|export |srun )": "a Slurm job script: needs a cluster",
    r"curl http://127\.0\.0\.1:": "asks a running vLLM server (tests/test_serving.py sends such requests)",
    r"(python3 -m venv ~/\.venvs/vllm|~/\.venvs/vllm/bin/pip )": "builds vLLM's own venv (the package "
    "index; tests/test_serving.py builds it the same way)",
    r"hf download ": "needs the network (the Hub)",
    r"PYTHONPATH=\S+/custom_generate VLLM_USE_V2_MODEL_RUNNER=0 python -m vllm\.": "needs vLLM (the "
    "serving tests start the same server through nsmc-gen serve)",
    r"(cp -rL src/nsmc_gen/assets/base |python -c \"from nsmc_gen\.modeling import load_model_and_tokenizer"
    r"|python benchmarks/)": "a benchmark's set-up and run: minutes of machine time, not a test",
}

# The offline commands: pattern -> the tiny settings appended, and the order they run in (the
# recipe first: it writes the runs/ folder the other commands read).
TINY_TRAINING = (
    "--max_steps 2 --max_train_samples 64 --max_eval_samples 16 --per_device_train_batch_size 8 "
    "--per_device_eval_batch_size 8 --calibrate_length_prior false --sample_reviews 1 --save_strategy no "
    "--cpu_threads 1"
)
RUN = {
    r"accelerate launch recipes/finetune\.py( --max_steps| --output_dir|$)": (0, TINY_TRAINING),
    r"nsmc-gen generate runs/": (1, "--max-new-tokens 6"),
    r"nsmc-gen evaluate runs/": (1, "--num-reviews 2 --test-reviews 20 --rows greedy,default --no-progress"),
    r"nsmc-gen demo runs/": (2, ""),  # a server: started, answered, stopped
}


def commands(path: Path) -> list[str]:
    """The commands of the ```bash blocks of a Markdown file: continuations joined, comments dropped."""
    text = path.read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()  # a trailing comment
            if line and not (line.startswith("# ") or line == "#"):
                found.append(re.sub(r"\s+", " ", line))
    return found


def classify(command: str) -> str:
    """``"run"`` or the reason it is not run; an error for a command the test does not know."""
    runs = [p for p in RUN if re.match(p, command)]
    skipped = [reason for p, reason in NOT_RUN.items() if re.match(p, command)]
    assert len(runs) + len(skipped) == 1, f"the docs test does not know how to treat {command!r}"
    return "run" if runs else skipped[0]


ALL_COMMANDS = {command: path.relative_to(ROOT) for path in MARKDOWN for command in commands(path)}


def test_every_documented_command_is_run_or_says_why_not():
    reasons = {command: classify(command) for command in ALL_COMMANDS}
    run = [c for c, r in reasons.items() if r == "run"]
    assert any(c == "accelerate launch recipes/finetune.py" for c in run)  # the quick start's
    assert any(c.startswith("nsmc-gen generate") for c in run) and any(
        c.startswith("nsmc-gen evaluate") for c in run
    )


def test_the_readme_keeps_the_ci_test_command():
    """.ci/run runs the first non-comment line of the block after the marker."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- test-command -->", 1)[1].split("```", 2)[1]
    lines = [line for line in block.splitlines()[1:] if line and not line.startswith("#")]
    assert lines[0] == "python -m pytest"


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(nav):
        for entry in nav:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            yield from pages(value) if isinstance(value, list) else [value]

    nav = set(pages(config["nav"]))
    files = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert nav == files
    assert {"bring-your-own-base.md", "serving.md"} <= nav  # issue 22's and 23's pages


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(config),
            "--site-dir",
            str(site),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_the_site_builds_strict_with_the_api_reference(tmp_path):
    result = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "decoding" / "index.html").read_text(encoding="utf-8")
    # rendered from the docstrings: the signature, and a doctest as code, not as Markdown text
    assert "generate_reviews" in api and "StrictRepetitionPenaltyLogitsProcessor" in api
    assert "&gt;&gt;&gt;" in api and "Examples" in api


def test_a_broken_reference_fails_the_build(tmp_path):
    """The same site with one page pointing at an API object that does not exist."""
    shutil.copytree(DOCS, tmp_path / "docs")
    (tmp_path / "src").symlink_to(ROOT / "src")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    config["nav"].append({"Broken": "broken.md"})
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    (tmp_path / "docs" / "broken.md").write_text(
        "# Broken\n\nSee [`nowhere`][nsmc_gen.generation.no_such_function].\n", encoding="utf-8"
    )
    result = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0 and "no_such_function" in result.stderr


# --- the commands, run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A scratch folder laid out like a clone: recipes/ inside, ../shared/nsmc-rebuild beside it.

    A tiny setting: ../shared/nsmc-rebuild is the shipped 30,000-review sample (drawn from the
    rebuild, in the same format), so the study's judge trains in seconds, on any checkout.
    """
    from nsmc_gen.modeling import NSMC_SAMPLE

    top = tmp_path_factory.mktemp("docs-commands")
    work = top / "nsmc-gen"
    work.mkdir()
    (work / "recipes").symlink_to(ROOT / "recipes")
    (top / "shared").mkdir()
    (top / "shared" / "nsmc-rebuild").symlink_to(NSMC_SAMPLE)
    return work


def run_command(command: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def tiny(command: str) -> tuple[int, str]:
    (phase, extra), *_ = [value for pattern, value in RUN.items() if re.match(pattern, command)]
    return phase, f"{command} {extra}".strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_once(command: str, cwd: Path) -> None:
    """Start the demo, wait until its page answers, stop it."""
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    server = subprocess.Popen(
        f"exec {command} --port {port}",
        shell=True,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read().decode(errors="replace")[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200
                    return
            except OSError:
                time.sleep(1)
        pytest.fail(f"{command}: no page within 180 s")
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_the_offline_commands_run_on_tiny_settings(clone):
    """Every offline command of the README and the docs, in order: train, then use the model."""
    offline = sorted({tiny(c) for c in ALL_COMMANDS if classify(c) == "run"})
    for phase, command in offline:
        if phase == 2:
            serve_once(command, clone)
        else:
            result = run_command(command, clone)
            if command.startswith("nsmc-gen generate"):
                assert result.stdout.strip(), command  # reviews, one per line
    assert (clone / "runs" / "embedded" / "generation_config.json").is_file()
    assert (clone / "runs" / "embedded" / "decoding-study" / "decoding_study.md").is_file()
