"""Plain clients against nsmc-gen on one finished folder: review length and sentiment control.

    python benchmarks/plain_clients.py runs/embedded --nsmc-dir ../shared/nsmc-rebuild

Three rows, one table:

- ``pipeline(...)``: ``pipeline("text-generation", model=FOLDER)`` as any script calls it (no
  ``trust_remote_code``: transformers' own decoding with the folder's generation_config.json),
  the sentiment word alone as the prompt, batched;
- ``nsmc-gen generate``: :func:`nsmc_gen.generation.generate_reviews` with its defaults (guidance,
  length prior, EOS kept out of the top-p cut), what the CLI and ``custom_generate/`` run;
- the training reviews (the shipped sample's train file unless ``--train-dir``) and the judge's own
  accuracy on the test reviews of ``--nsmc-dir``.

Control is the share of reviews the independent TF-IDF judge (:mod:`nsmc_gen.evaluation.judges`,
trained on ``--nsmc-dir``'s train file) puts on the asked side. Needs the ``eval`` extra.
Run it on a folder written before and after a change to compare; nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

from nsmc_gen.calibration import review_lengths
from nsmc_gen.data import load_nsmc
from nsmc_gen.evaluation.judges import load_judge, sentiment_control_accuracy
from nsmc_gen.formatting import SENTIMENTS, review_format_of
from nsmc_gen.generation import generate_reviews
from nsmc_gen.modeling import NSMC_SAMPLE


def pipeline_reviews(folder: str, num_reviews: int, seed: int, batch_size: int) -> dict[str, list[str]]:
    """Each sentiment's reviews from a plain pipeline: the new text after the sentiment word."""
    pipe = pipeline("text-generation", model=folder)
    words = review_format_of(pipe.model)
    reviews = {}
    for sentiment in SENTIMENTS:
        torch.manual_seed(seed)
        out = pipe([words.word(sentiment)] * num_reviews, batch_size=batch_size, return_full_text=False)
        reviews[sentiment] = [rows[0]["generated_text"].strip() for rows in out]
    return reviews


def nsmc_gen_reviews(folder: str, num_reviews: int, seed: int) -> dict[str, list[str]]:
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return {
        s: generate_reviews(model, tokenizer, s, num_return_sequences=num_reviews, seed=seed)
        for s in SENTIMENTS
    }


def row(name: str, lengths: dict, control: float | None, seconds: float | None = None) -> str:
    control_cell = "" if control is None else f"{control:.3f}"
    time_cell = "" if seconds is None else f"{seconds:.1f}"
    return (
        f"| {name} | {lengths['reviews']} | {lengths['mean_characters']:.1f} | "
        f"{lengths['share_under_5']:.1%} | {control_cell} | {time_cell} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a finished model folder")
    parser.add_argument("--num-reviews", type=int, default=200, help="reviews per sentiment and path")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=50, help="the pipeline's batch_size")
    parser.add_argument(
        "--nsmc-dir", default=None, help="NSMC files for the judge (default: the shipped sample)"
    )
    parser.add_argument("--train-dir", default=str(NSMC_SAMPLE), help="the training reviews' folder")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    judge = load_judge(args.nsmc_dir)
    test = load_nsmc(args.nsmc_dir or NSMC_SAMPLE)["test"]
    judge_accuracy = sentiment_control_accuracy(test["document"][:], test["label"][:], judge)
    reference = review_lengths(load_nsmc(args.train_dir)["train"]["document"][:])

    lines = [
        f"{args.folder}: {args.num_reviews} reviews per sentiment, seed {args.seed}, "
        f"judge trained on {args.nsmc_dir or 'the shipped sample'}",
        "",
        "| path | reviews | mean characters | under 5 characters | control | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, sample in (
        (
            "`pipeline(...)`, folder defaults",
            lambda: pipeline_reviews(args.folder, args.num_reviews, args.seed, args.batch_size),
        ),
        (
            "`nsmc-gen generate` (generate_reviews)",
            lambda: nsmc_gen_reviews(args.folder, args.num_reviews, args.seed),
        ),
    ):
        started = time.perf_counter()
        reviews = sample()
        seconds = time.perf_counter() - started
        texts = [t for s in SENTIMENTS for t in reviews[s]]
        asked = [s for s in SENTIMENTS for _ in reviews[s]]
        lines.append(
            row(name, review_lengths(texts), sentiment_control_accuracy(texts, asked, judge), seconds)
        )
    lines.append(row("training reviews (control: the judge's own test accuracy)", reference, judge_accuracy))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
