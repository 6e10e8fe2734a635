"""``nsmc-gen push`` (a model folder) and ``nsmc-gen push-dataset`` (NSMC as Parquet): parsing only.

Examples:
    nsmc-gen push runs/kogpt2-nsmc --repo-id org/kogpt2-nsmc
    nsmc-gen push runs/kogpt2-nsmc-lora --repo-id org/kogpt2-nsmc --merge --create-pr
    nsmc-gen push-dataset --repo-id org/nsmc-rebuild --data-dir ../shared/nsmc-rebuild

(The rebuild in ``../shared/nsmc-rebuild`` is not the official NSMC: name its repository so.)

The token comes from ``HF_TOKEN`` or ``hf auth login``; there is deliberately no token option
(a token on the command line ends up in shell history and process lists).
"""

from __future__ import annotations

import argparse
import sys

from nsmc_gen.cli._model import check_model_argument

TOKEN_HELP = "The Hub token comes from HF_TOKEN or `hf auth login`; there is no --token option."
NO_TOKEN = (
    "no Hub token: set HF_TOKEN or run `hf auth login` first (there is no --token option: a token "
    "on the command line ends up in shell history)"
)


def _add_common(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--repo-id", required=True, help=f"the {what} repository, namespace/name")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--revision", help="branch to commit to (created if missing); default main")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--commit-message", help="the commit's summary line")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``push`` and ``push-dataset`` to the ``nsmc-gen`` parser."""
    push = subparsers.add_parser(
        "push",
        help="publish a model folder to the Hugging Face Hub in one commit",
        description="Publish a finished model folder (weights or LoRA adapter, tokenizer, "
        "generation_config.json, custom_generate/, model card) to the Hub in one commit.",
        epilog=TOKEN_HELP,
    )
    push.add_argument(
        "model_dir", metavar="MODEL_DIR", help="the model folder (the training recipe's output_dir)"
    )
    _add_common(push, "model")
    push.add_argument(
        "--merge",
        action="store_true",
        help="LoRA folder: push the merged model instead of the adapter (required when the adapter's "
        "base is a local folder, which nobody else could load)",
    )
    push.add_argument(
        "--keep-card",
        action="store_true",
        help="push the folder's README.md as it is instead of rendering it from model_card.md",
    )
    push.set_defaults(func=run_push)

    dataset = subparsers.add_parser(
        "push-dataset",
        help="publish NSMC-format data to the Hub as Parquet with a dataset card",
        description="Publish NSMC-format data (train/validation/test) as Parquet with a dataset card, in "
        "one commit, so that datasets.load_dataset(REPO_ID) works with no script. Name the repository "
        "after the data: the rebuild in ../shared/nsmc-rebuild is not the official NSMC "
        "(e.g. --repo-id org/nsmc-rebuild).",
        epilog=TOKEN_HELP,
    )
    _add_common(dataset, "dataset")
    dataset.add_argument(
        "--data-dir", help="folder with ratings_{train,test}.txt[.gz]; default: download the official files"
    )
    dataset.add_argument(
        "--validation-size", type=int, default=5000, help="validation rows carved from train"
    )
    dataset.add_argument("--seed", type=int, default=7, help="seed of the validation carve")
    dataset.set_defaults(func=run_push_dataset)


def _report(command: str, run) -> int:
    from nsmc_gen.hub import HubPushError

    try:
        info = run()
    except ValueError as error:
        # nsmc_gen.hub asks for a token only after its own checks, in words for Python callers
        if str(error).startswith("no Hub token"):
            raise ValueError(NO_TOKEN) from None
        raise
    except HubPushError as error:  # network/Hub failures: exit 1 (usage errors exit 2 in nsmc_gen.cli)
        print(f"nsmc-gen {command}: error: {error}", file=sys.stderr)
        return 1
    print(info.pr_url or info.commit_url)
    return 0


def run_push(args: argparse.Namespace) -> int:
    from nsmc_gen.hub import push_model

    check_model_argument(args.model_dir, what="MODEL_DIR", folder_only=True)
    return _report(
        args.command,
        lambda: push_model(
            args.model_dir,
            args.repo_id,
            private=args.private,
            revision=args.revision,
            create_pr=args.create_pr,
            commit_message=args.commit_message,
            merge=args.merge,
            render_card=not args.keep_card,
        ),
    )


def run_push_dataset(args: argparse.Namespace) -> int:
    from nsmc_gen.hub import push_dataset

    return _report(
        args.command,
        lambda: push_dataset(
            args.repo_id,
            args.data_dir,
            validation_size=args.validation_size,
            seed=args.seed,
            private=args.private,
            revision=args.revision,
            create_pr=args.create_pr,
            commit_message=args.commit_message,
        ),
    )
