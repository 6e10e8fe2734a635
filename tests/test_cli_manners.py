"""The command line's manners: --help imports nothing heavy, a mistyped folder is named as one,
and every suggestion names a flag the command really has."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nsmc_gen.cli import SUBCOMMAND_MODULES, build_parser, main
from nsmc_gen.cli._model import check_model_argument

SHA = "0" * 40
HEAVY = ("torch", "transformers", "peft", "gradio", "datasets", "sklearn")


def subcommands() -> list[str]:
    return list(build_parser()._subparsers._group_actions[0].choices)


def imported_by_help(argv: list[str]) -> list[str]:
    """The heavy modules a fresh interpreter holds after ``nsmc-gen ARGV`` printed its help."""
    code = (
        "import json, sys\n"
        "from nsmc_gen.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: nsmc-gen" in result.stdout
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_help_of_every_command_imports_nothing_heavy():
    """`nsmc-gen --help` took ~5 s because building the parser imported torch and peft."""
    assert imported_by_help(["--help"]) == []
    for name in subcommands():
        assert imported_by_help([name, "--help"]) == [], name


def test_help_speaks_to_users():
    parser = build_parser()
    texts = [parser.format_help()]
    texts += [sub.format_help() for sub in parser._subparsers._group_actions[0].choices.values()]
    for text in texts:
        assert "every decision is made" not in text and "``" not in text and "token=" not in text
    assert "serve" in SUBCOMMAND_MODULES


def test_the_clis_strategy_table_is_the_librarys():
    """generate's --help is built without torch from its own copy of the strategy table: the copy
    must say what nsmc_gen.generation does."""
    from nsmc_gen import decoding, generation, modeling
    from nsmc_gen.cli import _model
    from nsmc_gen.cli import generate as cli

    assert cli.DEFAULT_STRATEGY == decoding.DEFAULT_STRATEGY
    assert cli.DEFAULT_GUIDANCE_SCALE == decoding.DEFAULT_GUIDANCE_SCALE
    assert _model.EMBEDDED == modeling.EMBEDDED
    assert set(cli.COMMON_KNOBS) == set(generation.COMMON_KNOBS)
    assert list(cli.STRATEGY_KNOBS) == list(generation.STRATEGIES)
    for name, strategy in generation.STRATEGIES.items():
        # the knobs with a flag; the others (keep_eos_probability, length_prior) have none on purpose
        assert cli.STRATEGY_KNOBS[name] == tuple(k for k in strategy.knobs if k in cli.KNOB_OPTIONS), name
        for knob, default in {**strategy.knobs, **generation.COMMON_KNOBS}.items():
            if knob in cli.KNOB_OPTIONS:
                assert cli.KNOB_OPTIONS[knob][2] == default, (name, knob)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory with a runs/ folder, as after a first training run."""
    (tmp_path / "runs" / "embedded").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "name",
    ["runs/embedd", "./runs/embedd", "runs/embedded/checkpoint-9", "~/no-such-run", "a/b/c", "missing/"],
)
def test_a_name_that_can_only_be_a_path_is_no_such_model_folder(workdir, name):
    with pytest.raises(ValueError, match=f"^MODEL '{re.escape(name)}': no such model folder$"):
        check_model_argument(name)


def test_folders_embedded_and_cached_hub_ids_pass(workdir):
    from huggingface_hub import constants

    check_model_argument("runs/embedded")
    check_model_argument("embedded")
    repo = Path(constants.HF_HUB_CACHE) / "models--org--cached-model"  # "downloaded earlier"
    (repo / "snapshots" / SHA).mkdir(parents=True, exist_ok=True)
    (repo / "snapshots" / SHA / "config.json").write_text("{}", encoding="utf-8")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(SHA, encoding="utf-8")
    check_model_argument("org/cached-model")


def test_a_hub_id_not_in_the_offline_cache_says_it_needs_the_network(workdir):
    with pytest.raises(ValueError, match="'org/kogpt2-nsmc': not a folder here and not in the Hub cache"):
        check_model_argument("org/kogpt2-nsmc")
    with pytest.raises(ValueError, match="not a valid Hub id"):
        check_model_argument("org/bad name!")


@pytest.mark.parametrize("command", ["generate", "evaluate", "demo", "push"])
def test_every_command_taking_a_model_says_no_such_model_folder(workdir, capsys, command):
    """`nsmc-gen generate runs/embedd --sentiment positive` said "is a base model", without
    --sentiment "couldn't connect to huggingface.co"."""
    extra = {"push": ["--repo-id", "org/x"], "generate": ["--sentiment", "positive"]}.get(command, [])
    assert main([command, "runs/embedd", *extra]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"nsmc-gen {command}: error: MODEL") and line.endswith(
        "'runs/embedd': no such model folder"
    )


def real_flags() -> set[str]:
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices.values()
    return {flag for sub in subparsers for action in sub._actions for flag in action.option_strings}


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["--top-k", "3"], "use --strategy top-k"),
        (["--num-beams", "3"], "use --strategy beam"),
        (["--strategy", "greedy", "--top-p", "0.9"], "use --strategy top-p"),
        (["--strategy", "beam", "--temperature", "0.7"], "use --strategy sampling or --strategy top-k"),
        (["--top-k", "3", "--top-p", "0.5"], "no strategy takes --top-k and --top-p together"),
    ],
)
def test_a_flag_of_another_strategy_suggests_the_strategy_flag(capsys, argv, suggestion):
    assert main(["generate", "embedded", *argv]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert suggestion in line
    assert "keep_eos_probability" not in line and "length_prior" not in line  # no flags for those
    assert set(re.findall(r"--[a-z-]+", line)) <= real_flags()


def test_push_without_a_token_names_what_a_cli_user_does(workdir, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(workdir / "no-token"))
    assert main(["push", "runs/embedded", "--repo-id", "org/x"]) == 2
    line = capsys.readouterr().err.strip()
    assert "HF_TOKEN" in line and "hf auth login" in line and "token=" not in line


def test_docstring_examples_run(workdir):
    import doctest

    from nsmc_gen.cli import _extras, _model

    for module in (_model, _extras):
        result = doctest.testmod(module)
        assert result.attempted and not result.failed, module.__name__


class _NoSuchRepo(BaseHTTPRequestHandler):
    """The Hub's answer for a repository that does not exist (or that the caller may not see)."""

    def _answer(self):
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("X-Error-Message", "Repository not found")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = _answer

    def log_message(self, *args):
        pass


def test_an_id_the_hub_does_not_have_is_said_before_the_sentiment_check(tmp_path):
    """Online, `nsmc-gen generate org/typo --sentiment positive` said "is a base model"."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoSuchRepo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "0",
        "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "HF_HOME": str(tmp_path / "hf"),
    }
    try:
        result = subprocess.run(
            [sys.executable, "-c", "import sys; from nsmc_gen.cli import main; sys.exit(main())", "generate"]
            + ["org/typo", "--sentiment", "positive"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
    finally:
        server.shutdown()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "nsmc-gen generate: error: MODEL 'org/typo': no such model folder, and no such model on the Hub "
        "(or it is private: set HF_TOKEN or run `hf auth login`)"
    )


@pytest.mark.parametrize(("command", "extra"), [("evaluate", "eval"), ("demo", "demo")])
def test_a_missing_extra_is_one_line_naming_the_pip_command(workdir, monkeypatch, capsys, command, extra):
    """Without scikit-learn or gradio these ended in a ModuleNotFoundError traceback."""
    from nsmc_gen.cli import _extras

    monkeypatch.setitem(_extras.EXTRAS, extra, ("nsmc_gen_no_such_package",))
    assert main([command, "runs/embedded"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"nsmc-gen {command}: error: this command needs the {extra!r} extra (nsmc_gen_no_such_package "
        f"missing): pip install 'nsmc-gen[{extra}]' (or pip install -e \".[{extra}]\" in a clone)"
    )
