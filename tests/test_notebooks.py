"""The Colab notebooks (notebooks/*.ipynb) are executed, cell by cell, so that they cannot rot.

Each runs in a real Jupyter kernel of this interpreter (nbclient), offline, on the embedded default,
with its ``parameters`` cell followed by an injected cell of tiny values (papermill's convention):
a 3-step fine-tune on a 6,000-review slice of the shipped NSMC sample, a 2-review decoding study,
and a push to a loopback stand-in for the Hub (``tests/hub_server.py``). The inference notebook
then decodes the model the training notebook wrote. The executed notebooks are kept in
``test-artifacts/`` (open them to see what a learner sees).
"""

from __future__ import annotations

import gzip
import html
import os
import re
import time
from pathlib import Path

import nbformat
import pytest
from hub_server import HubServer
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from nsmc_gen.evaluation.study import STUDY_ROWS
from nsmc_gen.generation import generate_reviews
from nsmc_gen.modeling import NSMC_SAMPLE, load_model_and_tokenizer

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
TOKEN = "hf_notebook_learner"
PUSH_TO = "learner/kogpt2-nsmc"
PROMPT = "이 영화"


def parameters_cell(nb: nbformat.NotebookNode) -> int:
    [index] = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
    return index


def test_committed_notebooks_are_valid_stripped_and_parameterised():
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [p.name for p in paths] == ["inference.ipynb", "training.ipynb"]
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (
                    f"{path.name}: outputs not stripped"
                )
        assert set(nb.metadata) <= {"kernelspec", "language_info", "colab", "accelerator"}, path.name
        assert f"notebooks/{path.name}" in (REPO / "README.md").read_text(encoding="utf-8")
        parameters_cell(nb)


def run_notebook(
    name: str, parameters: dict, cwd: Path, env: dict[str, str]
) -> tuple[nbformat.NotebookNode, float]:
    """Execute ``notebooks/name`` with ``parameters`` injected after its parameters cell."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    index = parameters_cell(nb)
    declared = set(re.findall(r"^([A-Z_]+) =", nb.cells[index].source, flags=re.M))
    assert set(parameters) <= declared, f"{name} has no parameter {set(parameters) - declared}"
    injected = new_code_cell("\n".join(f"{key} = {value!r}" for key, value in parameters.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, injected)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    start = time.perf_counter()
    client.execute(env=env)
    seconds = time.perf_counter() - start
    print(f"{name}: executed in {seconds:.1f} s")
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    nbformat.write(nb, REPO / "test-artifacts" / name)  # to read what a learner sees
    return nb, seconds


def outputs(nb: nbformat.NotebookNode, tag: str | None = None) -> str:
    """The text and HTML of every output (of the cells tagged ``tag``), concatenated."""
    cells = [
        c for c in nb.cells if c.cell_type == "code" and (tag is None or tag in c.metadata.get("tags", []))
    ]
    parts = []
    for cell in cells:
        for output in cell.outputs:
            parts.append(output.get("text", ""))
            parts.extend(str(output.get("data", {}).get(kind, "")) for kind in ("text/plain", "text/html"))
    return "\n".join(parts)


def slice_of_nsmc(folder: Path, train: int = 6000, test: int = 300) -> Path:
    """The first rows of the shipped sample, in NSMC's own file format."""
    folder.mkdir(parents=True)
    for split, rows in (("train", train), ("test", test)):
        with gzip.open(NSMC_SAMPLE / f"ratings_{split}.txt.gz", "rt", encoding="utf-8") as source:
            lines = [next(source) for _ in range(rows + 1)]
        (folder / f"ratings_{split}.txt").write_text("".join(lines), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def kernel_env():
    # One thread, as in the test process: the same sampled reviews on both sides.
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def training(tmp_path_factory, kernel_env):
    work = tmp_path_factory.mktemp("training-notebook")
    data = slice_of_nsmc(work / "nsmc")
    hub = HubServer({TOKEN: {"learner"}}).start()
    # The Hub is the loopback stand-in: online mode reaches nothing else.
    hub_env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0"}
    env = {**kernel_env, **hub_env}
    parameters = {
        "INSTALL": False,
        "REPO_DIR": str(REPO),
        "OUTPUT_DIR": str(work / "model"),
        "TRAIN_ARGS": f"--data_dir {data} --validation_size 64 --max_train_samples 256 --max_eval_samples 32 "
        "--max_steps 3 --cpu_threads 1 --sample_reviews 0 --save_strategy no --logging_steps 1 "
        "--calibrate_length_prior false",
        "EVAL_ARGS": f"--num-reviews 2 --rows greedy,guidance-2 --test-reviews 20 --max-new-tokens 12 "
        f"--nsmc-dir {data}",
        "PUSH_TO": PUSH_TO,
    }
    try:
        nb, seconds = run_notebook("training.ipynb", parameters, work, env)
        yield nb, work / "model", hub, seconds
    finally:
        hub.stop()


def test_training_notebook_fine_tunes_evaluates_publishes_and_writes_reviews(training):
    nb, folder, hub, seconds = training
    text = outputs(nb)
    assert "recipe: the embedded default" in text  # "auto" on a CPU
    for name in (
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "README.md",
        "eval_results.json",
    ):
        assert (folder / name).is_file(), name
    assert (folder / "custom_generate" / "generate.py").is_file()
    assert "eval_perplexity" in text
    study = folder / "decoding-study" / "decoding_study.md"
    assert "| greedy |" in study.read_text(encoding="utf-8") and "| guidance-2 |" in text
    # The push arrived at the (stand-in) Hub: the folder's own weights, in one commit.
    [commit] = hub.commits("model", PUSH_TO)[-1:]
    assert commit.files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert {"config.json", "tokenizer.json", "README.md", "custom_generate/generate.py"} <= set(commit.files)
    # The last cell shows the reviews the finished model writes with the default decoding.
    model, tokenizer = load_model_and_tokenizer(str(folder))
    shown = outputs(nb, "try-it")
    for sentiment in ("positive", "negative"):
        for review in generate_reviews(model, tokenizer, sentiment, num_return_sequences=3, seed=0):
            assert f"  - {review}\n" in shown
    assert seconds < 600


def test_inference_notebook_decodes_the_base_and_the_fine_tuned_model_strategy_by_strategy(
    training, tmp_path, kernel_env
):
    _, folder, _, _ = training
    parameters = {
        "INSTALL": False,
        "BASE_MODEL": "embedded",
        "FINETUNED_MODEL": str(folder),
        "MAX_NEW_TOKENS": 12,
    }
    nb, seconds = run_notebook("inference.ipynb", parameters, tmp_path, kernel_env)
    # The base model: no sentiment, so no guidance.
    assert "(sentiment guidance needs a sentiment)" in outputs(nb, "base")
    # Every strategy of the lesson, for each sentiment, the rows being what generation writes.
    model, tokenizer = load_model_and_tokenizer(str(folder))
    lesson = outputs(nb, "lesson")
    for name in STUDY_ROWS:
        assert f"<th>{name}</th>" in lesson
    for sentiment in ("positive", "negative"):
        for row in ("greedy", "beam-5", "penalty-strict", "guidance-2"):
            [review] = generate_reviews(
                model, tokenizer, sentiment, PROMPT, seed=0, max_new_tokens=12, **STUDY_ROWS[row]
            )
            assert f"<td>{html.escape(review, quote=False)}</td>" in lesson, (sentiment, row)
    # Why: the distribution at one step, in words and as a table with bars.
    why = outputs(nb, "why")
    assert re.search(r"Step \d+ of \d+\. The model has read “긍정 이 영화", why)
    assert "top-p 0.8 keeps" in why and "p (temperature 0.7)" in why
    assert seconds < 600
