"""``nsmc-gen evaluate MODEL``: the decoding study on a fine-tuned model (table, JSON, plot).

Example:
    nsmc-gen evaluate runs/embedded --num-reviews 100 --nsmc-dir ../shared/nsmc-rebuild
"""

from __future__ import annotations

import argparse

from nsmc_gen.cli._extras import require_extra
from nsmc_gen.cli._model import EMBEDDED, check_model_argument, load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="the decoding study: control, diversity and fluency of each decoding strategy",
        description="Generate reviews of both sentiments with each decoding strategy and measure them; "
        "writes decoding_study.md, .json and .png. The report is headed by the model's perplexity on "
        "the test reviews of --nsmc-dir and the judges' own accuracy there (the shipped sample and "
        "the rebuild are labelled NSMC-rebuild).",
        epilog="example:\n    " + __doc__.split("Example:\n")[1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help=f"a fine-tuned model folder or Hub id ({EMBEDDED!r}: the embedded default)",
    )
    parser.add_argument(
        "--num-reviews", type=int, default=100, help="reviews per sentiment and strategy (default 100)"
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="where the report goes (default: MODEL/decoding-study, or ./decoding-study)",
    )
    parser.add_argument(
        "--nsmc-dir",
        default=None,
        help="NSMC files for the judge, the test split and the vocabulary "
        "(default: the shipped 30k-row sample; the full data gives a better judge)",
    )
    parser.add_argument("--seed", type=int, default=0, help="generation and sampling seed (default 0)")
    parser.add_argument(
        "--rows",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=None,
        help="comma-separated subset of the strategies, e.g. greedy,beam-5,top-p-0.92,guidance-2 "
        "(default: all; an unknown name lists the valid ones)",
    )
    parser.add_argument(
        "--test-reviews",
        type=int,
        default=2000,
        help="test reviews for perplexity and judge accuracy (default: %(default)s; 0: all)",
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="cap every row's reviews at this many tokens"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nsmc_gen.evaluation.report import write_report
    from nsmc_gen.evaluation.study import run_study
    from nsmc_gen.model_folder import RUN_FACTS, record_evaluation

    check_model_argument(args.model)
    require_extra("eval")
    if args.output_dir is not None:
        output_dir = Path(args.output_dir)
    elif Path(args.model).is_dir():
        output_dir = Path(args.model) / "decoding-study"
    else:
        output_dir = Path("decoding-study")
    model, tokenizer = load_model(args.model)
    report = run_study(
        model,
        tokenizer,
        num_reviews=args.num_reviews,
        rows=args.rows,
        seed=args.seed,
        nsmc_dir=args.nsmc_dir,
        test_reviews=args.test_reviews,
        max_new_tokens=args.max_new_tokens,
        model_name=args.model,
        progress=not args.no_progress,
    )
    paths = write_report(report, output_dir)
    print((paths["markdown"]).read_text(encoding="utf-8"))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    if (Path(args.model) / RUN_FACTS).is_file():  # a folder nsmc-gen trained: its card shows the study
        print(f"card: {record_evaluation(args.model, **card_facts(report))}")
    return 0


def card_facts(report: dict) -> dict:
    """What the model card takes from a study: test perplexity, the default's control, the table."""
    from nsmc_gen.evaluation.report import data_label, find_row, render_table

    test = f"{report['judges']['independent']['test_reviews']:,} {data_label(report)}"
    facts = {
        "test_data": test,  # the card names the data of every figure (never "NSMC test")
        "test_perplexity": round(report["perplexity"]["perplexity"], 2),
        "decoding_study": f"{report['num_reviews']} reviews per sentiment and strategy, seed "
        f"{report['seed']}; control by an independent TF-IDF judge (accuracy "
        f"{report['judges']['independent']['accuracy']:.3f} on {test}) and by this model as a Bayes "
        f"classifier ({report['judges']['bayes']['accuracy']:.3f}).\n\n{render_table(report)}",
    }
    if default := find_row(report, "default"):
        facts["sentiment_control"] = round(default["control"], 3)
    return facts
