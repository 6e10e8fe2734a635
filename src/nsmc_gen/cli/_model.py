"""The MODEL argument every subcommand takes: a folder, a Hub id, or ``embedded``, told apart early.

transformers treats any string that is not a folder as a Hub id, so a typo in a folder path
(``runs/embedd``) surfaces as "couldn't connect to huggingface.co" or as some later, unrelated
error. The rule here decides what the user meant before anything is loaded:

- ``embedded`` is the shipped default;
- an existing folder is a folder;
- a string that can only be a path is a path, and a missing one is "no such model folder": it
  starts with ``./``, ``../``, ``/`` or ``~``, has more than one ``/`` or a backslash, or its
  first component is a folder here (``runs/embedd`` where ``runs/`` exists);
- anything else must be a valid Hub id (``name`` or ``namespace/name``) of a repository with a
  ``config.json``: offline, in the Hub cache; online, on the Hub (its config is fetched now, so a
  missing repository or an unreachable Hub is said before anything else is read).

Only the standard library and huggingface_hub are imported: this runs before the slow loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

EMBEDDED = "embedded"  # nsmc_gen.modeling.EMBEDDED; repeated here so that --help needs no torch


def check_model_argument(name: str, *, what: str = "MODEL", folder_only: bool = False) -> None:
    """Raise ``ValueError`` (one line) if ``name`` cannot be a model this machine can load.

    Example:
        >>> check_model_argument("embedded")
        >>> check_model_argument("./no-such-run")
        Traceback (most recent call last):
        ValueError: MODEL './no-such-run': no such model folder
    """
    if not name.strip():
        raise ValueError(f"{what} must be a model folder, a Hub id or {EMBEDDED!r}, got {name!r}")
    if name == EMBEDDED and not folder_only:
        return
    if Path(name).expanduser().is_dir():
        return
    if folder_only or _is_path(name):
        raise ValueError(f"{what} {name!r}: no such model folder")
    _check_hub_id(name, what)


def _is_path(name: str) -> bool:
    if name.startswith(("./", "../", "/", "~", ".\\")) or name in (".", "..") or "\\" in name:
        return True
    parts = name.split("/")
    return len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).is_dir()) or not parts[-1]


def _check_hub_id(name: str, what: str) -> None:
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ValueError(f"{what} {name!r}: no such model folder, and not a valid Hub id") from None
    if constants.HF_HUB_OFFLINE:
        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            raise ValueError(
                f"{what} {name!r}: not a folder here and not in the Hub cache; downloading it needs "
                "the network (HF_HUB_OFFLINE is set)"
            )
        return
    try:
        hf_hub_download(name, "config.json")
    except RepositoryNotFoundError:  # 404, or 401 for a gated or private repository without access
        raise ValueError(
            f"{what} {name!r}: no such model folder, and no such model on the Hub (or it is private: "
            "set HF_TOKEN or run `hf auth login`)"
        ) from None
    except LocalEntryNotFoundError:  # the Hub did not answer, and the cache does not have it
        raise ValueError(
            f"{what} {name!r}: not a folder here, and the Hub ({constants.ENDPOINT}) cannot be reached"
        ) from None
    except EntryNotFoundError:
        raise ValueError(f"{what} {name!r}: the Hub repository has no config.json: not a model") from None


def load_model(name: str) -> tuple[Any, Any]:
    """``load_model_and_tokenizer(name)``, with transformers' multi-line OSError as one line."""
    from nsmc_gen.modeling import load_model_and_tokenizer

    try:
        return load_model_and_tokenizer(name)
    except OSError as error:  # "not a folder, not reachable on the Hub", a missing file...
        raise ValueError(f"cannot load MODEL {name!r}: {str(error).splitlines()[0]}") from error
