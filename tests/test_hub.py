"""Hub integration, for real and offline.

Uploads: the real huggingface_hub client, in a fresh process with ``HF_ENDPOINT`` set (it reads it
at import) and ``HF_HUB_DISABLE_XET=1``, talks HTTP to ``tests/hub_server.py`` (a loopback
stand-in for the Hub's upload API), which records what arrived.
Downloads: what the upload server received is written into git repositories served by ``olah``
(a real read-only Hub server on loopback), then loaded by id with transformers' ``pipeline``,
``from_pretrained``, ``snapshot_download`` and datasets' ``load_dataset`` in a process that never
imports nsmc_gen.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import build_tiny_model, save_lora_adapter
from hub_server import HubServer
from huggingface_hub import ModelCard

import nsmc_gen
from nsmc_gen.decoding import DECODING_DEFAULTS, recommended_generation_config
from nsmc_gen.hub import (
    HubPushError,
    ModelFolder,
    prepare_dataset_folder,
    push_model,
    validate_model_folder,
)
from nsmc_gen.model_folder import RUN_FACTS, install_custom_generate, merge_adapter, save_model_card

TOKEN = "hf_TestTokenNeverPrinted0123456789"
SRC = str(Path(nsmc_gen.__file__).resolve().parents[1])
# nsmc_gen_run.json, as nsmc_gen.training writes it (the few keys these tests need)
RUN = {"base_model": "embedded", "train_rows": 900, "validation_rows": 100, "eval_perplexity": 99.5}
# What the test processes run: one function of nsmc_gen.hub, its result or its HubPushError as JSON.
HUB_CALL = """
import json, sys
from nsmc_gen import hub
args, kwargs = json.loads(sys.argv[2])
try:
    info = getattr(hub, sys.argv[1])(*args, **kwargs)
except hub.HubPushError as error:
    print(json.dumps({"error": str(error), "status": error.status, "retry_safe": error.retry_safe}))
else:
    print(json.dumps({"oid": info.oid, "commit_url": info.commit_url, "pr_url": info.pr_url}))
"""


def hub_env(endpoint: str, token: str | None = TOKEN) -> dict[str, str]:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1", "PYTHONPATH": SRC}
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        env.pop(name, None)
    if token:
        env["HF_TOKEN"] = token
    return env


def run_hub(endpoint: str, function: str, *args, token: str | None = TOKEN, **kwargs) -> tuple[dict, str]:
    """Run ``nsmc_gen.hub.<function>(*args, **kwargs)`` in a fresh process aimed at ``endpoint``."""
    command = [sys.executable, "-c", HUB_CALL, function, json.dumps([args, kwargs])]
    proc = subprocess.run(command, env=hub_env(endpoint, token), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout + proc.stderr


def complete_folder(folder: Path, tokenizer, model=None, repo_id: str | None = None) -> Path:
    """A folder as the training recipe leaves it: weights, tokenizer, generation config, facts, card."""
    (model or build_tiny_model(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    recommended_generation_config(tokenizer).save_pretrained(folder)
    (folder / RUN_FACTS).write_text(json.dumps(RUN), encoding="utf-8")
    save_model_card(folder, repo_id=repo_id)
    return folder


@pytest.fixture(scope="session")
def hub():
    server = HubServer({TOKEN: {"org"}}).start()
    yield server
    server.stop()


@pytest.fixture
def model_dir(tmp_path, tokenizer) -> Path:
    return complete_folder(tmp_path / "kogpt2-nsmc", tokenizer)


def remote_files(hub: HubServer, repo_id: str, kind: str = "model", branch: str = "main") -> dict[str, bytes]:
    return hub.commits(kind, repo_id, branch)[-1].files


# --------------------------------------------------------------------------- validation (no network)


def test_validation_lists_exactly_what_is_committed(model_dir):
    (model_dir / "training_args.bin").write_bytes(b"not pushed")
    (model_dir / "checkpoint-10").mkdir()
    (model_dir / "checkpoint-10" / "model.safetensors").write_bytes(b"not pushed")
    folder = validate_model_folder(model_dir)
    assert folder == ModelFolder(
        model_dir,
        "model",
        (
            "README.md",
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ),
    )


@pytest.mark.parametrize(
    "missing", ["model.safetensors", "tokenizer.json", "generation_config.json", "config.json", "README.md"]
)
def test_each_missing_file_is_named(model_dir, missing):
    (model_dir / missing).unlink()
    with pytest.raises(ValueError, match=missing.replace(".", r"\.")):
        validate_model_folder(model_dir)


def test_card_without_metadata_is_refused(model_dir):
    (model_dir / "README.md").write_text("# A model\n\nNo metadata here.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="README.md has no YAML metadata"):
        validate_model_folder(model_dir)


def test_sharded_weights_need_every_shard(tmp_path, tokenizer):
    folder = tmp_path / "sharded"
    build_tiny_model(tokenizer).save_pretrained(folder, max_shard_size="300KB")
    tokenizer.save_pretrained(folder)
    recommended_generation_config(tokenizer).save_pretrained(folder)
    shards = sorted(p.name for p in folder.glob("model-*.safetensors"))
    assert len(shards) > 1
    files = validate_model_folder(folder, check_card=False).files
    assert {"model.safetensors.index.json", *shards} <= set(files)
    (folder / shards[-1]).unlink()
    with pytest.raises(ValueError, match=f"missing.*{shards[-1]}"):
        validate_model_folder(folder, check_card=False)


def test_custom_generate_is_included_without_caches(model_dir):
    (model_dir / "custom_generate" / "__pycache__").mkdir(parents=True)
    (model_dir / "custom_generate" / "__pycache__" / "generate.cpython-311.pyc").write_bytes(b"\0")
    (model_dir / "custom_generate" / "requirements.txt").write_text("torch\n")
    with pytest.raises(ValueError, match=r"custom_generate/generate\.py is missing"):
        validate_model_folder(model_dir)
    (model_dir / "custom_generate" / "generate.py").write_text("def generate(model, **kwargs): ...\n")
    files = validate_model_folder(model_dir).files
    assert [f for f in files if f.startswith("custom_generate/")] == [
        "custom_generate/generate.py",
        "custom_generate/requirements.txt",
    ]


def test_push_checks_the_folder_before_writing_or_connecting(model_dir, monkeypatch):
    (model_dir / "README.md").unlink()
    (model_dir / "tokenizer.json").unlink()
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(ValueError, match="tokenizer files are missing"):
        push_model(model_dir, "org/broken")
    assert not (model_dir / "README.md").exists()  # nothing rendered into a broken folder


def test_a_file_holding_the_token_is_never_pushed(model_dir):
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    (model_dir / "tokenizer_config.json").write_text(json.dumps({**config, "token": TOKEN}))
    with pytest.raises(ValueError, match="tokenizer_config.json contains your Hub token") as error:
        push_model(model_dir, "org/leak", token=TOKEN, render_card=False)
    assert TOKEN not in str(error.value)


def test_no_token_is_a_clear_error(model_dir, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ValueError, match="no Hub token: set HF_TOKEN or run `hf auth login`"):
        push_model(model_dir, "org/anon", render_card=False)


def test_offline_mode_is_named_not_mistaken_for_a_network_failure(model_dir):
    with pytest.raises(HubPushError, match="HF_HUB_OFFLINE is set") as error:  # conftest sets it
        push_model(model_dir, "org/offline-mode", token=TOKEN, render_card=False)
    assert error.value.retry_safe and TOKEN not in str(error.value)
    assert "Nothing was uploaded" in str(error.value)


def test_bad_repo_id_is_named(model_dir):
    with pytest.raises(ValueError, match="repo_id must look like 'namespace/name'"):
        push_model(model_dir, "no-namespace")


# --------------------------------------------------------------------------- uploads (loopback server)


def test_push_is_one_commit_holding_exactly_the_folder(hub, model_dir):
    save_model_card(model_dir, repo_id="org/one-commit")
    mark = len(hub.requests)
    result, _ = run_hub(hub.url, "push_model", str(model_dir), "org/one-commit", render_card=False)
    initial, pushed = hub.commits("model", "org/one-commit")
    assert result["oid"] == pushed.oid and pushed.parent == initial.oid
    expected = {name: (model_dir / name).read_bytes() for name in validate_model_folder(model_dir).files}
    assert pushed.files == {**initial.files, **expected}
    routes = [name for _, name, _ in hub.requests[mark:]]
    assert routes.count("commit") == 1 and routes.count("create") == 1
    assert "lfs-upload" in routes  # the weights travelled by LFS, as on the Hub
    card = ModelCard(pushed.files["README.md"].decode())
    assert card.data.pipeline_tag == "text-generation" and "org/one-commit" in card.text


def test_wrong_token_fails_clearly_and_uploads_nothing(hub, model_dir):
    wrong = "hf_WrongTokenAlsoNeverPrinted987654"
    result, output = run_hub(
        hub.url, "push_model", str(model_dir), "org/refused", token=wrong, render_card=False
    )
    assert result["status"] == 401 and result["retry_safe"]
    assert "refused the token (401)" in result["error"] and "Nothing was uploaded" in result["error"]
    assert "Retrying is safe once the token is fixed" in result["error"]
    assert wrong not in output and TOKEN not in output  # the server quoted it; we must not
    assert hub.commits("model", "org/refused") == []


def test_namespace_without_write_access_is_403(hub, model_dir):
    result, _ = run_hub(hub.url, "push_model", str(model_dir), "someone-else/model", render_card=False)
    assert result["status"] == 403 and "write access" in result["error"]
    assert hub.commits("model", "someone-else/model") == []


def test_server_error_mid_upload_leaves_repo_unchanged_and_retry_works(hub, model_dir):
    hub.fail("commit", 500)  # after the weights were uploaded: the commit itself fails
    mark = len(hub.requests)
    result, _ = run_hub(hub.url, "push_model", str(model_dir), "org/flaky", render_card=False)
    assert "lfs-upload" in [name for _, name, _ in hub.requests[mark:]]
    assert result["status"] == 500 and result["retry_safe"]
    assert "whole or not at all" in result["error"] and "Retrying is safe" in result["error"]
    assert [c.message for c in hub.commits("model", "org/flaky")] == ["initial commit"]

    mark = len(hub.requests)
    result, _ = run_hub(hub.url, "push_model", str(model_dir), "org/flaky", render_card=False)
    assert "oid" in result
    assert len(hub.commits("model", "org/flaky")) == 2
    assert "lfs-upload" not in [name for _, name, _ in hub.requests[mark:]]  # the weights were already there


def test_a_commit_landing_during_the_push_is_refused_not_merged(hub, model_dir):
    """The commit names the head it was planned against: another writer's commit in between (here
    a stale adapter file this push would have deleted) makes it fail whole; the retry cleans up."""
    run_hub(hub.url, "push_model", str(model_dir), "org/race", render_card=False)
    card = model_dir / "README.md"
    card.write_text(card.read_text(encoding="utf-8") + "\nA second version.\n", encoding="utf-8")
    hub.commit_first("model", "org/race", "adapter_model.safetensors", b"another writer")
    result, _ = run_hub(hub.url, "push_model", str(model_dir), "org/race", render_card=False)
    assert result["status"] == 412 and result["retry_safe"]
    assert "changed while this push was being prepared" in result["error"]
    assert hub.commits("model", "org/race")[-1].message == "concurrent commit"
    result, _ = run_hub(hub.url, "push_model", str(model_dir), "org/race", render_card=False)
    assert "oid" in result and "adapter_model.safetensors" not in remote_files(hub, "org/race")


def test_unreachable_hub_is_a_clear_network_error(model_dir):
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result, _ = run_hub(closed, "push_model", str(model_dir), "org/offline", render_card=False)
    assert result["status"] is None and result["retry_safe"]
    assert "could not be reached" in result["error"]


def test_branch_and_pull_request(hub, model_dir):
    run_hub(hub.url, "push_model", str(model_dir), "org/branches", render_card=False, revision="dev")
    assert len(hub.commits("model", "org/branches", "dev")) == 2
    assert len(hub.commits("model", "org/branches", "main")) == 1
    result, _ = run_hub(
        hub.url, "push_model", str(model_dir), "org/branches", render_card=False, create_pr=True
    )
    assert result["pr_url"].endswith("/org/branches/discussions/1")
    assert len(hub.commits("model", "org/branches", "main")) == 1  # main untouched until the PR is merged
    assert "model.safetensors" in hub.repos[("model", "org/branches")].prs[0].files


TINY_BASE = "org/tiny-base"  # the adapter's base: a Hub id, so that others can load the adapter


@pytest.fixture
def adapter_dir(tmp_path, tokenizer):
    """A LoRA adapter (non-zero B, so merging changes the weights) over a tiny base that this
    session's Hub cache holds as ``org/tiny-base`` (downloaded earlier, as it were)."""
    from huggingface_hub import constants
    from replicas import put_in_hub_cache

    base_dir = tmp_path / "base"
    build_tiny_model(tokenizer).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    put_in_hub_cache(Path(constants.HF_HUB_CACHE), TINY_BASE, base_dir)
    folder = tmp_path / "adapter"
    peft_model = save_lora_adapter(tokenizer, folder, TINY_BASE)
    (folder / RUN_FACTS).write_text(json.dumps({**RUN, "peft": {"r": 2, "alpha": 4}}), encoding="utf-8")
    save_model_card(folder)
    return folder, peft_model


def test_adapter_then_merged_model_replaces_the_adapter(hub, adapter_dir, tmp_path):
    folder, peft_model = adapter_dir
    assert validate_model_folder(folder).kind == "adapter"
    run_hub(hub.url, "push_model", str(folder), "org/lora", render_card=False)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(remote_files(hub, "org/lora"))

    merged = merge_adapter(folder, tmp_path / "merged")
    ids = torch.tensor([[5, 17, 42, 7]])
    from transformers import AutoModelForCausalLM

    merged_logits = AutoModelForCausalLM.from_pretrained(merged).eval()(ids).logits
    torch.testing.assert_close(merged_logits, peft_model(input_ids=ids).logits, rtol=1e-4, atol=1e-4)
    assert ModelCard.load(merged / "README.md").data.library_name == "transformers"
    run_hub(hub.url, "push_model", str(merged), "org/lora", render_card=False)
    files = remote_files(hub, "org/lora")
    assert "adapter_config.json" not in files and "adapter_model.safetensors" not in files  # stale: deleted
    assert files["model.safetensors"] == (merged / "model.safetensors").read_bytes()
    assert len(hub.commits("model", "org/lora")) == 3


def test_adapter_over_a_local_base_is_pushed_only_merged(adapter_dir, tmp_path, capsys):
    folder, _ = adapter_dir
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = str(tmp_path / "base")  # a folder on this disk only
    (folder / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    # refused before any token or network call (HF_HUB_OFFLINE is set here: it would say so instead)
    with pytest.raises(ValueError, match=r"is a local folder, not a Hub id.*nsmc-gen push --merge"):
        push_model(folder, "org/lora-local")
    from nsmc_gen.cli import main

    assert main(["push", str(folder), "--repo-id", "org/lora-local"]) == 2  # a usage error
    assert "nsmc-gen push --merge" in capsys.readouterr().err


@pytest.mark.slow  # rendering the card imports torch in the fresh process
def test_cli_push_renders_the_card_with_the_repo_id(hub, model_dir):
    (model_dir / "README.md").unlink()
    code = "import sys; from nsmc_gen.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["push", str(model_dir), "--repo-id", "org/cli-model", "--commit-message", "First release"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=hub_env(hub.url), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    pushed = hub.commits("model", "org/cli-model")[-1]
    assert proc.stdout.strip().endswith(f"/org/cli-model/commit/{pushed.oid}")
    assert pushed.message == "First release"
    assert 'pipeline("text-generation", model="org/cli-model")' in pushed.files["README.md"].decode()


# --------------------------------------------------------------------------- dataset


@pytest.fixture(scope="session")
def nsmc_small(tmp_path_factory):
    """NSMC in its official file format, cut to a few hundred rows of the shipped sample (fast)."""
    import gzip

    from nsmc_gen.data import load_nsmc
    from nsmc_gen.modeling import NSMC_SAMPLE

    folder = tmp_path_factory.mktemp("nsmc-small")
    for name, rows in (("ratings_train.txt", 400), ("ratings_test.txt", 100)):
        with gzip.open(NSMC_SAMPLE / f"{name}.gz", "rt", encoding="utf-8") as f:
            lines = [next(f) for _ in range(rows + 1)]  # + the header
        (folder / name).write_text("".join(lines), encoding="utf-8")
    return load_nsmc(data_dir=folder, validation_size=100), folder


def test_dataset_push_is_parquet_with_a_card(hub, nsmc_small):
    nsmc, sample = nsmc_small
    result, _ = run_hub(hub.url, "push_dataset", "org/nsmc", str(sample), validation_size=100)
    pushed = hub.commits("dataset", "org/nsmc")[-1]
    assert result["oid"] == pushed.oid
    assert set(pushed.files) == {
        ".gitattributes",
        "README.md",
        *(f"data/{split}-00000-of-00001.parquet" for split in ("train", "validation", "test")),
    }
    card = pushed.files["README.md"].decode()
    assert 'load_dataset("org/nsmc")' in card and "slurs" in card
    metadata = ModelCard(card).data.to_dict()
    assert metadata["license"] == "cc0-1.0" and metadata["language"] == ["ko"]
    assert metadata["configs"][0]["data_files"][0] == {"split": "train", "path": "data/train-*"}
    splits = {s["name"]: s["num_examples"] for s in metadata["dataset_info"]["splits"]}
    assert splits == {split: nsmc[split].num_rows for split in nsmc}


def test_dataset_push_replaces_an_earlier_layout_in_the_same_commit(hub, nsmc_small):
    """Shards an earlier push left (datasets' push_to_hub with two train shards, a split since
    renamed) match ``data/train-*`` too, so load_dataset would read them: the push deletes them in
    its one commit and leaves files it does not manage."""
    from hub_server import Commit

    nsmc, sample = nsmc_small
    repo_id = "org/nsmc-relayout"
    run_hub(hub.url, "push_dataset", repo_id, str(sample), validation_size=100)
    ours = hub.commits("dataset", repo_id)[-1]
    earlier = {
        ".gitattributes": ours.files[".gitattributes"],
        "README.md": b"---\nlicense: other\n---\nan older card\n",
        "data/train-00000-of-00002.parquet": b"old shard",
        "data/train-00001-of-00002.parquet": b"old shard",
        "data/dev-00000-of-00001.parquet": b"old split",
        "notes/provenance.txt": b"not managed by nsmc-gen",
    }
    hub.repos[("dataset", repo_id)].branches["main"].append(
        Commit("e" * 40, "an earlier push", earlier, ours.oid)
    )

    result, _ = run_hub(hub.url, "push_dataset", repo_id, str(sample), validation_size=100)
    commits = hub.commits("dataset", repo_id)
    assert len(commits) == 4 and commits[-1].oid == result["oid"] and commits[-1].parent == "e" * 40
    pushed = commits[-1].files
    assert sorted(name for name in pushed if name.startswith("data/")) == [
        f"data/{split}-00000-of-00001.parquet" for split in ("test", "train", "validation")
    ]
    assert all(pushed[name] == content for name, content in ours.files.items())  # data and card: ours
    assert pushed["notes/provenance.txt"] == b"not managed by nsmc-gen"


# --------------------------------------------------------------------------- downloads (olah)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _git_repo(folder: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    git = ["git", "-c", "user.name=nsmc-gen", "-c", "user.email=tests@nsmc-gen", "-C", str(folder)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "what the Hub received"], check=True)


OLAH_CONFIG = """[basic]
host = "127.0.0.1"
port = {port}
repos-path = "{root}/cache"
mirrors-path = ["{root}/mirrors"]
mirror-scheme = "http"
mirror-netloc = "127.0.0.1:{port}"
mirror-lfs-netloc = "127.0.0.1:{port}"
hf-scheme = "http"
hf-netloc = "127.0.0.1:9"
hf-lfs-netloc = "127.0.0.1:9"

[accessibility]
offline = true
"""


@pytest.fixture(scope="module", autouse=True)
def olah_server(request, tmp_path_factory):
    """Start olah at the module's start when a selected test needs it: its start-up (~10 s of imports)
    then overlaps the upload tests. It serves git repositories under ``root/mirrors`` (looked up per
    request, so they can be written later); ``hf-netloc`` is a closed port: nothing goes upstream."""
    wanted = any("olah" in item.fixturenames for item in request.session.items)
    if not wanted or shutil.which("olah-cli") is None:
        yield None
        return
    root = tmp_path_factory.mktemp("olah")
    port = _free_port()
    (root / "configs.toml").write_text(OLAH_CONFIG.format(port=port, root=root), encoding="utf-8")
    with open(root / "olah.log", "wb") as log:
        server = subprocess.Popen(["olah-cli", "-c", "configs.toml"], cwd=root, stdout=log, stderr=log)
        yield root, f"http://127.0.0.1:{port}", server
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def olah(olah_server, hub, tokenizer, nsmc_small):
    """olah serving what the upload server received: the model repo and the dataset repo."""
    if olah_server is None:
        pytest.skip("olah is not installed (pip install olah)")
    root, url, server = olah_server
    model = complete_folder(root / "folder", tokenizer)
    install_custom_generate(model)  # sentiment guidance for users without nsmc-gen
    save_model_card(model, repo_id="org/tiny-nsmc")
    run_hub(hub.url, "push_model", str(model), "org/tiny-nsmc", render_card=False)
    _git_repo(root / "mirrors/models/org/tiny-nsmc", remote_files(hub, "org/tiny-nsmc"))
    nsmc, _ = nsmc_small
    prepared = root / "dataset"
    prepare_dataset_folder(nsmc, prepared, "org/nsmc-mirror")
    _git_repo(
        root / "mirrors/datasets/org/nsmc-mirror",
        {p.relative_to(prepared).as_posix(): p.read_bytes() for p in prepared.rglob("*") if p.is_file()},
    )
    deadline = time.monotonic() + 300  # generous: on a loaded 2-core machine olah's imports take minutes
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/models/org/tiny-nsmc/revision/main", timeout=5)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"olah did not start: {(root / 'olah.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
    return url, model, nsmc


# Runs in a fresh process that never imports nsmc_gen: what a user's script does with the ids.
DOWNLOADS = """
import json, sys
from pathlib import Path
from huggingface_hub import HfApi, snapshot_download
import torch
from transformers import AutoModelForCausalLM, pipeline, set_seed
from datasets import load_dataset

model_id, dataset_id = sys.argv[1:3]
api = HfApi()
sha = api.model_info(model_id, revision="main").sha  # offline olah resolves main from cache only
root = Path(snapshot_download(model_id, revision=sha))
files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
generator = pipeline("text-generation", model=model_id, revision=sha)
set_seed(0)
text = generator("긍정 이 영화", max_new_tokens=12)[0]["generated_text"]
model = AutoModelForCausalLM.from_pretrained(model_id, revision=sha).eval()
guided = pipeline("text-generation", model=model_id, revision=sha, trust_remote_code=True)
set_seed(0)
guided_text = guided("긍정", max_new_tokens=12, guidance_scale=2.0)[0]["generated_text"]
logits = model(torch.tensor([[5, 17, 42, 7]])).logits
data_sha = api.dataset_info(dataset_id, revision="main").sha
nsmc = load_dataset(dataset_id, revision=data_sha)
print(json.dumps({
    "files": files, "text": text, "guided_text": guided_text, "logits": logits.flatten().tolist(),
    "generation": model.generation_config.to_dict(),
    "rows": {split: nsmc[split].num_rows for split in nsmc},
    "labels": nsmc["train"].features["label"].names, "first": nsmc["test"][0],
    "imported_nsmc_gen": any(name.startswith("nsmc_gen") for name in sys.modules),
}, ensure_ascii=False))
"""


@pytest.fixture(scope="module")
def downloads(olah, tmp_path_factory):
    url, _, _ = olah
    env = hub_env(url, token=None)
    env["HF_HOME"] = str(tmp_path_factory.mktemp("hf-home-user"))  # a user with an empty cache
    env.pop("PYTHONPATH")
    command = [sys.executable, "-c", DOWNLOADS, "org/tiny-nsmc", "org/nsmc-mirror"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=env["HF_HOME"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_published_model_loads_by_id_with_pipeline(olah, downloads):
    _, model_dir, _ = olah
    assert not downloads["imported_nsmc_gen"]
    assert downloads["files"] == sorted({".gitattributes", *validate_model_folder(model_dir).files})
    assert downloads["text"].startswith("긍정 이 영화") and len(downloads["text"]) > len("긍정 이 영화")
    assert (
        "custom_generate/generate.py" in downloads["files"]
        and "custom_generate/processors.py" in downloads["files"]
    )
    assert downloads["guided_text"].startswith("긍정") and len(downloads["guided_text"]) > len("긍정")
    assert {k: downloads["generation"][k] for k in DECODING_DEFAULTS} == DECODING_DEFAULTS
    from transformers import AutoModelForCausalLM

    local = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    expected = local(torch.tensor([[5, 17, 42, 7]])).logits.flatten()
    torch.testing.assert_close(torch.tensor(downloads["logits"]), expected)


@pytest.mark.slow
def test_published_dataset_loads_by_id_with_load_dataset(olah, downloads):
    _, _, nsmc = olah
    assert downloads["rows"] == {split: nsmc[split].num_rows for split in nsmc}
    assert downloads["labels"] == ["negative", "positive"]
    assert downloads["first"] == nsmc["test"][0]
