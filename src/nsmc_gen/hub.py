"""Publishing to the Hugging Face Hub: a model folder in one commit, NSMC as Parquet with a card.

A push is all or nothing. The folder is checked before any network call (weights, tokenizer,
``config.json``, ``generation_config.json``, a card with metadata; every problem is named), then
``create_repo(exist_ok=True)`` and ONE ``create_commit`` carry exactly the checked files. The Hub
applies a commit whole or not at all, so a failed push leaves the repository as it was.
``upload_folder`` is not used: with Xet (huggingface_hub's default transport) it streams a folder
in several commits, which could leave half a model behind.

Tokens come from ``token=``, ``HF_TOKEN`` or the stored login (``hf auth login``), resolved by
huggingface_hub itself. A token never appears in errors, cards or uploaded files: files that
contain the token are refused, error texts are redacted.

Example:
    >>> info = push_model("out/kogpt2-nsmc", "org/kogpt2-nsmc")  # doctest: +SKIP
    >>> info.commit_url  # doctest: +SKIP
    'https://huggingface.co/org/kogpt2-nsmc/commit/...'
    >>> push_dataset("org/nsmc", data_dir="../shared/nsmc-rebuild")  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from huggingface_hub import (
    CommitInfo,
    CommitOperationAdd,
    CommitOperationDelete,
    DatasetCard,
    DatasetCardData,
    HfApi,
    ModelCard,
    get_token,
)
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from nsmc_gen.card import hub_model_id, redact_tokens
from nsmc_gen.model_folder import (
    ADAPTER_FILES,
    CARD_FILE,
    TOKENIZER_FILES,
    TOKENIZER_VOCAB_FILES,
    merge_adapter,
    read_json,
    save_model_card,
)

logger = logging.getLogger(__name__)

# Files the push owns in the repository: a stale one (an old shard, the adapter config after a
# switch to the merged model) would change what from_pretrained loads, so it is deleted in the
# same commit. Anything else in the repository is left alone.
MANAGED_PATTERNS = (
    "*.safetensors",
    "*.safetensors.index.json",
    "*.bin",
    "*.bin.index.json",
    "config.json",
    "adapter_config.json",
    "custom_generate/*",
    *TOKENIZER_FILES,
)
DATASET_CARD_TEMPLATE = Path(__file__).parent / "assets" / "dataset_card.md"
DATASET_LICENSE = "cc0-1.0"
TEXT_SUFFIXES = {".json", ".md", ".py", ".txt", ".jinja", ".yaml"}  # files checked for a leaked token


class HubPushError(RuntimeError):
    """A push that failed on the network or at the Hub; the message says whether a retry is safe.

    Attributes:
        status: the HTTP status the Hub answered (``None`` for network errors).
        retry_safe: whether running the same push again is safe.
    """

    def __init__(self, message: str, status: int | None, retry_safe: bool):
        super().__init__(message)
        self.status = status
        self.retry_safe = retry_safe


@dataclass(frozen=True)
class ModelFolder:
    """A validated model folder: what one push commits, exactly.

    Attributes:
        path: the folder.
        kind: ``"model"`` (full weights) or ``"adapter"`` (a LoRA adapter over ``base_model``).
        files: paths relative to ``path`` (POSIX), sorted: the commit's content.
    """

    path: Path
    kind: Literal["model", "adapter"]
    files: tuple[str, ...]


# --------------------------------------------------------------------------- folder validation


def _weight_files(path: Path, problems: list[str]) -> list[str]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
        missing = [s for s in shards if not (path / s).is_file()]
        if missing or not shards:
            problems.append(f"{index} lists shards that are missing: {missing or 'none listed'}")
        return [index.name, *shards]
    if (path / "model.safetensors").is_file():
        return ["model.safetensors"]
    if list(path.glob("pytorch_model*.bin")):
        problems.append(
            f"{path / 'model.safetensors'} is missing: only pytorch_model*.bin found; "
            "save with model.save_pretrained(path) (safetensors) before pushing"
        )
    else:
        problems.append(f"{path / 'model.safetensors'} is missing: no model weights in the folder")
    return []


def _custom_generate_files(path: Path, problems: list[str]) -> list[str]:
    folder = path / "custom_generate"
    if not folder.is_dir():
        return []
    if not (folder / "generate.py").is_file():
        problems.append(
            f"{folder / 'generate.py'} is missing: transformers loads custom_generate/generate.py"
        )
    return sorted(
        p.relative_to(path).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def _card_problem(path: Path) -> str | None:
    card_path = path / CARD_FILE
    if not card_path.is_file():
        return f"{card_path} is missing: render it with nsmc_gen.model_folder.save_model_card"
    try:
        card = ModelCard.load(card_path, ignore_metadata_errors=False)
    except ValueError as error:
        return f"{card_path} has unreadable YAML metadata: {error}"
    if not card.data.to_dict():
        return f"{card_path} has no YAML metadata (language, license, ...): render it from model_card.md"
    return None


def validate_model_folder(path: str | Path, check_card: bool = True) -> ModelFolder:
    """Check that ``path`` is a complete, Hub-ready model folder and list what a push commits.

    A full model needs safetensors weights (one file or an index with all its shards),
    ``config.json``; a LoRA adapter needs ``adapter_config.json`` and ``adapter_model.safetensors``.
    Both need a tokenizer (``tokenizer_config.json`` and a vocabulary file),
    ``generation_config.json`` and ``README.md`` with YAML metadata. ``custom_generate/`` is
    included when present (it must hold ``generate.py``).

    Raises:
        FileNotFoundError: ``path`` is not a folder.
        ValueError: every problem found, each naming its file.

    Example:
        >>> folder = validate_model_folder("out/kogpt2-nsmc")  # doctest: +SKIP
        >>> folder.kind, folder.files[:2]  # doctest: +SKIP
        ('model', ('README.md', 'config.json'))
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model_dir {path} is not a folder")
    problems: list[str] = []
    kind: Literal["model", "adapter"] = "adapter" if (path / "adapter_config.json").is_file() else "model"
    if kind == "adapter":
        files = [name for name in ADAPTER_FILES if (path / name).is_file()]
        if "adapter_model.safetensors" not in files:
            problems.append(
                f"{path / 'adapter_model.safetensors'} is missing: no adapter weights in the folder"
            )
        required = ["generation_config.json"]
    else:
        files = _weight_files(path, problems)
        required = ["config.json", "generation_config.json"]
    for name in required:
        if (path / name).is_file():
            files.append(name)
        else:
            problems.append(f"{path / name} is missing")
    if not (path / "tokenizer_config.json").is_file() or not any(
        (path / name).is_file() for name in TOKENIZER_VOCAB_FILES
    ):
        problems.append(
            f"tokenizer files are missing in {path}: need tokenizer_config.json and one of "
            f"{', '.join(TOKENIZER_VOCAB_FILES)} (tokenizer.save_pretrained(path))"
        )
    files += [name for name in TOKENIZER_FILES if (path / name).is_file()]
    files += _custom_generate_files(path, problems)
    if check_card:
        if problem := _card_problem(path):
            problems.append(problem)
        else:
            files.append(CARD_FILE)
    if problems:
        raise ValueError(f"model folder {path} is not ready to push:\n- " + "\n- ".join(problems))
    return ModelFolder(path=path, kind=kind, files=tuple(sorted(set(files))))


# --------------------------------------------------------------------------- errors


def _network_cause(error: BaseException) -> BaseException | None:
    """The HTTP or network error behind ``error``, if any (huggingface_hub wraps LFS failures)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (HfHubHTTPError, ConnectionError, TimeoutError)):
            return seen
        if type(seen).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2"):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


_SAFE_AGAIN = "Retrying is safe: unchanged files are not uploaded twice."


def _diagnosis(cause: BaseException, repo_id: str) -> tuple[int | None, str, str, bool]:
    """``(status, what happened, whether/when to retry, retry_safe)`` for a failed Hub call."""
    status = getattr(getattr(cause, "response", None), "status_code", None)
    if isinstance(cause, OfflineModeIsEnabled):
        return (
            None,
            "HF_HUB_OFFLINE is set, so no network call is made.",
            "Unset it; retrying is then safe.",
            True,
        )
    if status == 401:
        what = "The Hub refused the token (401): set HF_TOKEN to a valid token or run `hf auth login`."
        return status, what, "Retrying is safe once the token is fixed.", True
    if status == 403:
        what = f"The token may not write to {repo_id} (403): use a token with write access there."
        return status, what, "Retrying is safe once the token has write access.", True
    if status == 404:
        what = f"{repo_id} or the revision was not found (404): check --repo-id and --revision."
        return status, what, "Retrying as is will fail the same way.", False
    if status == 412:
        what = f"{repo_id} changed while this push was being prepared (412: another commit landed first)."
        return status, what, _SAFE_AGAIN, True
    if status is not None and (status >= 500 or status == 429):
        kind = "rate limit" if status == 429 else "server error"
        return status, f"The Hub answered {status} ({kind}).", _SAFE_AGAIN, True
    if status is not None:
        return (
            status,
            f"The Hub refused the request ({status}).",
            "Retrying as is will fail the same way.",
            False,
        )
    return None, f"The Hub could not be reached ({type(cause).__name__}).", _SAFE_AGAIN, True


def _push_error(cause: BaseException, repo_id: str, stage: str, token: str | None) -> HubPushError:
    status, what, retry, retry_safe = _diagnosis(cause, repo_id)
    if stage == "commit":
        state = (
            f"The Hub applies a commit whole or not at all: {repo_id} holds either its previous state "
            "or this complete commit, never a part of it."
        )
    else:
        state = f"Nothing was uploaded: {repo_id} is as it was."
    detail = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    detail = redact_tokens(detail.replace(token, "***") if token else detail)
    message = f"push to {repo_id} failed during {stage}. {what} {state} {retry} (detail: {detail})"
    return HubPushError(message, status=status, retry_safe=retry_safe)


@contextmanager
def _stage(name: str, repo_id: str, token: str | None) -> Iterator[None]:
    """Turn network and Hub failures inside the block into a :class:`HubPushError`; others pass."""
    try:
        yield
    except Exception as error:
        cause = _network_cause(error)
        if cause is None:
            raise
        raise _push_error(cause, repo_id, name, token) from None  # no chained text that could hold a token


# --------------------------------------------------------------------------- pushing


def _resolve_token(token: str | None) -> str:
    token = token or get_token()
    if not token:
        raise ValueError("no Hub token: set HF_TOKEN or run `hf auth login` (or pass token= from Python)")
    return token


def _check_repo_id(repo_id: str) -> None:
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id or ""):
        raise ValueError(f"repo_id must look like 'namespace/name', got {repo_id!r}")


def _refuse_files_with_token(folder: Path, files: tuple[str, ...], token: str) -> None:
    for name in files:
        path = folder / name
        is_text = path.suffix in TEXT_SUFFIXES and path.stat().st_size < 50_000_000
        if is_text and token in path.read_text(encoding="utf-8", errors="replace"):
            raise ValueError(f"{path} contains your Hub token: remove it before pushing (nothing uploaded)")


def _commit_folder(
    folder: Path,
    files: tuple[str, ...],
    repo_id: str,
    *,
    repo_type: Literal["model", "dataset"],
    private: bool,
    revision: str | None,
    create_pr: bool,
    commit_message: str,
    token: str | None,
    managed_patterns: tuple[str, ...],
) -> CommitInfo:
    """``create_repo(exist_ok=True)`` and one commit: ``files`` added, stale managed files deleted."""
    token = _resolve_token(token)
    _refuse_files_with_token(folder, files, token)
    api = HfApi(token=token)
    with _stage("repository creation", repo_id, token):
        # private=None keeps the namespace's default visibility unless the user asked for private
        api.create_repo(repo_id, repo_type=repo_type, private=private or None, exist_ok=True)
        if revision and not create_pr:
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        # The commit names the head it was planned against, so that a commit landing in between
        # (which could add a file this one should delete) makes the Hub refuse it (412), not merge it.
        head = api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha
        remote = api.list_repo_files(repo_id, repo_type=repo_type, revision=head)
    stale = [
        name
        for name in remote
        if name not in files and any(fnmatch.fnmatchcase(name, pattern) for pattern in managed_patterns)
    ]
    operations: list[Any] = [CommitOperationDelete(path_in_repo=name) for name in stale]
    operations += [CommitOperationAdd(path_in_repo=name, path_or_fileobj=folder / name) for name in files]
    logger.info("pushing %d files to %s (%d stale files deleted): %s", len(files), repo_id, len(stale), files)
    with _stage("commit", repo_id, token):
        return api.create_commit(
            repo_id,
            operations=operations,
            commit_message=commit_message,
            repo_type=repo_type,
            revision=revision,
            create_pr=create_pr,
            parent_commit=head,
        )


def _refuse_local_base(model_dir: Path) -> None:
    """An adapter is loaded over its ``base_model_name_or_path``: a local folder (the embedded base
    too, a folder inside nsmc-gen) is one that nobody who downloads the adapter has."""
    config = model_dir / "adapter_config.json"
    base = (read_json(config) or {}).get("base_model_name_or_path") if config.is_file() else None
    if config.is_file() and hub_model_id(base) is None:
        raise ValueError(
            f"{config}: the adapter's base model {base!r} is a local folder, not a Hub id, so nobody "
            "else could load the pushed adapter; push the merged model instead (nsmc-gen push --merge, "
            "push_model(..., merge=True), or train with --merge_lora), or train over a Hub model"
        )


def push_model(
    model_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
    merge: bool = False,
    render_card: bool = True,
) -> CommitInfo:
    """Publish a model folder to the Hub in one commit.

    Args:
        model_dir: a finished model folder (see :func:`validate_model_folder`): full weights or a
            LoRA adapter.
        repo_id: ``namespace/name`` on the Hub; created if missing.
        private: create the repository private (an existing repository keeps its visibility).
        revision: branch to commit to (created from main if missing); default main.
        create_pr: open a pull request with the commit instead of committing to the branch.
        commit_message: default "Upload <name> with nsmc-gen".
        token: a Hub token; default ``HF_TOKEN`` or the stored login.
        merge: for a LoRA adapter folder, push the merged model (base + adapter) instead of the
            adapter; the base model is loaded from the adapter's ``base_model_name_or_path``. An
            adapter whose base is a local folder (not a Hub id) is pushed only merged.
        render_card: render ``README.md`` from ``model_card.md`` with ``repo_id`` first (the
            folder's facts make the card); ``False`` pushes the folder's README.md as it is.

    Returns:
        The ``CommitInfo`` (``commit_url``, ``oid``, ``pr_url``).

    Raises:
        FileNotFoundError, ValueError: an incomplete folder, a bad ``repo_id``, no token, an
            adapter over a local base without ``merge``; raised before any network call.
        HubPushError: the network or the Hub failed; its message says whether a retry is safe.

    Example:
        >>> push_model("out/kogpt2-nsmc-lora", "org/kogpt2-nsmc", merge=True)  # doctest: +SKIP
    """
    _check_repo_id(repo_id)
    model_dir = Path(model_dir)
    if not merge:
        _refuse_local_base(model_dir)
    token = _resolve_token(token)  # before a merge that may take minutes
    with tempfile.TemporaryDirectory(prefix="nsmc-gen-merged-") as scratch:
        if merge:
            validate_model_folder(model_dir, check_card=False)  # the adapter folder, before a long merge
            model_dir = merge_adapter(model_dir, Path(scratch) / model_dir.name)
        validate_model_folder(model_dir, check_card=False)  # every file but the card, before writing it
        if render_card:
            save_model_card(model_dir, repo_id=repo_id)
        folder = validate_model_folder(model_dir)
        message = commit_message or f"Upload {model_dir.name} ({folder.kind}) with nsmc-gen"
        return _commit_folder(
            folder.path,
            folder.files,
            repo_id,
            repo_type="model",
            private=private,
            revision=revision,
            create_pr=create_pr,
            commit_message=message,
            token=token,
            managed_patterns=MANAGED_PATTERNS,
        )


# --------------------------------------------------------------------------- dataset


def _size_category(rows: int) -> str:
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if rows < limit:
            return name
    return "1M<n<10M"


def dataset_card(nsmc: Any, repo_id: str, source: str) -> DatasetCard:
    """The dataset card: metadata the Hub and ``load_dataset`` read (configs, features, splits) + text."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs

    splits = {name: ds.num_rows for name, ds in nsmc.items()}
    data = DatasetCardData(
        language=["ko"],
        license=DATASET_LICENSE,
        pretty_name="NSMC: Naver Sentiment Movie Corpus",
        task_categories=["text-classification", "text-generation"],
        task_ids=["sentiment-classification"],
        size_categories=[_size_category(sum(splits.values()))],
        annotations_creators=["found"],
        language_creators=["found"],
        multilinguality=["monolingual"],
        source_datasets=["original"],
    )
    data_files = [{"split": name, "path": f"data/{name}-*"} for name in nsmc]
    MetadataConfigs({"default": {"data_files": data_files}}).to_dataset_card_data(data)
    split_dict = SplitDict()
    for name, rows in splits.items():
        split_dict.add(SplitInfo(name=name, num_bytes=nsmc[name].data.nbytes, num_examples=rows))
    info = DatasetInfo(features=next(iter(nsmc.values())).features, splits=split_dict)
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    return DatasetCard.from_template(
        data, template_path=str(DATASET_CARD_TEMPLATE), repo_id=repo_id, splits=splits, source=source
    )


def prepare_dataset_folder(
    nsmc: Any, output_dir: str | Path, repo_id: str, source: str = ""
) -> tuple[str, ...]:
    """Write a ``DatasetDict`` as a Hub dataset repository: ``data/<split>-00000-of-00001.parquet`` + card.

    The layout is the one ``DatasetDict.push_to_hub`` writes, so ``load_dataset(repo_id)`` reads
    it with no script and restores the features (the label stays a ``ClassLabel``).

    Returns:
        The written paths, relative to ``output_dir`` (what a push commits).
    """
    output_dir = Path(output_dir)
    (output_dir / "data").mkdir(parents=True, exist_ok=True)
    files = []
    for name, ds in nsmc.items():
        relative = f"data/{name}-00000-of-00001.parquet"
        ds.to_parquet(str(output_dir / relative))
        files.append(relative)
    dataset_card(nsmc, repo_id, source).save(output_dir / CARD_FILE)
    return (CARD_FILE, *files)


def push_dataset(
    repo_id: str,
    data_dir: str | Path | None = None,
    *,
    validation_size: int | float = 5000,
    seed: int = 7,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
) -> CommitInfo:
    """Publish NSMC (train/validation/test, via :func:`nsmc_gen.data.load_nsmc`) as Parquet, one commit.

    Args:
        repo_id: ``namespace/name`` of the dataset repository; created if missing.
        data_dir: folder with the NSMC files; ``None`` downloads the official files.
        validation_size, seed: the validation carve (see ``load_nsmc``).
        private, revision, create_pr, commit_message, token: as in :func:`push_model`.

    Example:
        >>> push_dataset("org/nsmc", data_dir="../shared/nsmc-rebuild")  # doctest: +SKIP
        >>> # then, anywhere: datasets.load_dataset("org/nsmc")
    """
    from nsmc_gen.data import NSMC_URL, load_nsmc

    _check_repo_id(repo_id)
    _resolve_token(token)  # fail before the (long) preparation
    nsmc = load_nsmc(data_dir=data_dir, validation_size=validation_size, seed=seed)
    # a local path would tell the world about the user's disk: name the files' origin instead
    source = NSMC_URL if data_dir is None else f"local copies of the official files ({NSMC_URL})"
    # Not DatasetDict.push_to_hub (datasets 5.2; measured on tests/hub_server.py): it writes this
    # layout and drops stale data/* in its one commit, but takes no card. It writes a card of bare
    # metadata, or keeps an existing card's text (a split table that no longer holds), so our card is
    # a second commit, and in between the repository shows data without a card, or a card over no
    # data. Its 401/403/network failures are raw HfHubHTTPError/httpx errors with the server's text.
    with tempfile.TemporaryDirectory(prefix="nsmc-gen-dataset-") as scratch:
        files = prepare_dataset_folder(nsmc, scratch, repo_id, source=source)
        return _commit_folder(
            Path(scratch),
            files,
            repo_id,
            repo_type="dataset",
            private=private,
            revision=revision,
            create_pr=create_pr,
            commit_message=commit_message or "Upload NSMC as Parquet with nsmc-gen",
            token=token,
            managed_patterns=("data/*",),
        )
