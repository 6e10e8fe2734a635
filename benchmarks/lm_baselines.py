"""Is the model a better language model of NSMC reviews than counting bigrams?

    python benchmarks/lm_baselines.py --finetuned runs/embedded [--random-init runs/scratch-5min]
        [--nsmc-dir ../shared/nsmc-rebuild] [--test-reviews 0] [--json lm_baselines.json]

Per-token loss (nats) on NSMC-rebuild test reviews, same tokenizer (the shipped one), review tokens
only, for:
- an interpolated count bigram model (Jelinek-Mercer: bigram and add-one unigram, the weight tuned
  on the validation carve), counted on NSMC train reviews;
- the random-init model trained for 5 minutes on the sentiment format (``--random-init PATH``;
  without it the script trains one: ``recipes/finetune.py --from_scratch``, stopped after
  ``--random-init-minutes``);
- the shipped embedded base (plain LM, no prefix);
- the fine-tuned default (``--finetuned PATH``).

Columns, each over one token set for every model so the rows compare:
- ``shared``: review tokens 2..n and EOS, each predicted from the review so far (the first review
  token has no context for a model trained without a prefix). Prefix models see the TRUE
  sentiment prefix too: a small head start the bigram lacks.
- ``shared, sentiment unknown``: prefix models only: the same tokens under the equal mixture of
  both prefixes, ``log sum_s p(s) p(review | s)`` (minus the first token's share): no head start.
- ``all``: every review token and EOS (the bigram from a start state, prefix models after the
  true prefix); the base cannot score the first token.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from nsmc_gen.data import load_nsmc
from nsmc_gen.evaluation.judges import BayesJudge
from nsmc_gen.evaluation.scoring import review_log_probs
from nsmc_gen.evaluation.study import data_name
from nsmc_gen.formatting import tokenize_reviews
from nsmc_gen.modeling import EMBEDDED_BASE, load_embedded_tokenizer, load_model_and_tokenizer

LAMBDA_GRID = tuple(round(x, 2) for x in np.arange(0.05, 1.0, 0.05))
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "finetune.py"


class InterpolatedBigram:
    """``p(w | v) = lam * c(v, w) / c(v) + (1 - lam) * p_add_one(w)``; a start state precedes each review."""

    def __init__(self, sequences: list[list[int]], vocab_size: int) -> None:
        self.vocab_size = vocab_size
        previous, following = self._pairs(sequences)
        self.codes, self.counts = np.unique(previous * vocab_size + following, return_counts=True)
        self.context_counts = np.bincount(previous, minlength=vocab_size + 1)
        unigram = np.bincount(following, minlength=vocab_size) + 1.0
        self.unigram = unigram / unigram.sum()
        self.lam = 0.5

    def _pairs(self, sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        start = self.vocab_size  # an id of its own, never predicted
        previous = np.concatenate([[start] + seq[:-1] for seq in sequences]).astype(np.int64)
        following = np.concatenate(sequences).astype(np.int64)
        return previous, following

    def log_probs(self, sequences: list[list[int]]) -> list[np.ndarray]:
        """Per-token natural-log probabilities of each sequence (first token from the start state)."""
        previous, following = self._pairs(sequences)
        codes = previous * self.vocab_size + following
        index = np.minimum(np.searchsorted(self.codes, codes), len(self.codes) - 1)
        pair_counts = np.where(self.codes[index] == codes, self.counts[index], 0)
        context = self.context_counts[previous]
        bigram = np.divide(pair_counts, context, out=np.zeros(len(codes)), where=context > 0)
        lam = np.where(context > 0, self.lam, 0.0)  # an unseen context falls back to the unigram
        scores = np.log(lam * bigram + (1 - lam) * self.unigram[following])
        return np.split(scores, np.cumsum([len(s) for s in sequences])[:-1])

    def tune(self, sequences: list[list[int]], grid=LAMBDA_GRID) -> float:
        """Pick the weight with the lowest loss on held-out sequences (the validation carve)."""
        losses = {}
        for lam in grid:
            self.lam = float(lam)
            losses[self.lam] = -np.concatenate(self.log_probs(sequences)).mean()
        self.lam = min(losses, key=losses.get)
        return self.lam


def mean_loss(per_review: list, skip_first: bool) -> tuple[float, int]:
    tokens = np.concatenate([np.asarray(s)[1 if skip_first else 0 :] for s in per_review])
    return float(-tokens.mean()), len(tokens)


def prefix_model_row(model, tokenizer, texts, labels, batch_size) -> dict:
    """Loss columns of a model trained on the sentiment format (true prefix, and both mixed)."""
    negative, positive = BayesJudge(model, tokenizer, batch_size=batch_size).score(texts)
    true = [p if y else n for n, p, y in zip(negative, positive, labels, strict=True)]
    total, count = 0.0, 0
    for n, p in zip(negative, positive, strict=True):
        # log p(t_2.. | t_1) under the mixture = log sum_s p(t_1..|s) - log sum_s p(t_1|s); priors cancel
        whole = torch.logsumexp(torch.stack([n.sum(), p.sum()]).double(), 0)
        first = torch.logsumexp(torch.stack([n[0], p[0]]).double(), 0)
        total += float(whole - first)
        count += len(n) - 1
    return {
        "shared": mean_loss(true, skip_first=True),
        "shared_unknown_sentiment": (-total / count, count),
        "all": mean_loss(true, skip_first=False),
    }


def plain_model_row(model, tokenizer, texts, batch_size) -> dict:
    """Loss columns of a plain LM (no prefix): only the shared token set exists."""
    scores = review_log_probs(model, tokenizer, texts, None, batch_size=batch_size)
    return {"shared": mean_loss(scores, skip_first=False)}


def train_random_init(minutes: float, nsmc_dir: str, output_dir: str) -> str:
    """The from-scratch path of the recipe, stopped after ``minutes`` of training."""
    from transformers import TrainerCallback

    class TimeLimit(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.deadline = time.monotonic() + minutes * 60

        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = time.monotonic() > self.deadline

    spec = importlib.util.spec_from_file_location("finetune", RECIPE)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    argv = ["--from_scratch", "--data_dir", nsmc_dir, "--output_dir", output_dir, "--sample_reviews", "0"]
    argv += ["--resume_from_checkpoint", "false"]  # a fresh 5 minutes each time
    return str(recipe.main(argv, callbacks=[TimeLimit()]))  # the finished model folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nsmc-dir", default="../shared/nsmc-rebuild")
    parser.add_argument("--finetuned", help="the fine-tuned default's folder (e.g. runs/embedded)")
    parser.add_argument("--random-init", help="a from-scratch model folder (default: train one now)")
    parser.add_argument("--random-init-minutes", type=float, default=5.0)
    parser.add_argument("--random-init-output", default="runs/lm-baselines-random-init")
    parser.add_argument(
        "--test-reviews", type=int, default=0, help="a seeded sample of test reviews (0: all)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.manual_seed(0)

    tokenizer = load_embedded_tokenizer()
    nsmc = load_nsmc(args.nsmc_dir)
    test = nsmc["test"].shuffle(seed=0) if args.test_reviews else nsmc["test"]
    if args.test_reviews:
        test = test.select(range(min(args.test_reviews, test.num_rows)))
    texts, labels = test["document"][:], test["label"][:]  # [:]: one slice, not row-by-row reads
    results: dict[str, dict] = {}

    def ids(split):
        return tokenize_reviews({"document": split["document"][:]}, tokenizer, None)["input_ids"]

    started = time.perf_counter()
    bigram = InterpolatedBigram(ids(nsmc["train"]), len(tokenizer))
    lam = bigram.tune(ids(nsmc["validation"]))
    scores = bigram.log_probs(ids(test))
    results[f"interpolated bigram (lambda {lam:.2f})"] = {
        "shared": mean_loss(scores, skip_first=True),
        "all": mean_loss(scores, skip_first=False),
    }
    print(f"bigram: {time.perf_counter() - started:.1f} s", flush=True)

    random_init = args.random_init or train_random_init(
        args.random_init_minutes, args.nsmc_dir, args.random_init_output
    )
    candidates = [
        (f"random init, {args.random_init_minutes:g} min ({random_init})", random_init, True),
        (f"shipped base ({EMBEDDED_BASE})", "embedded", False),
        (f"fine-tuned default ({args.finetuned})", args.finetuned, True),
    ]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for name, path, has_prefix in candidates:
        if path is None or (path == "embedded" and not (EMBEDDED_BASE / "model.safetensors").exists()):
            print(f"skipped: {name} (no model)")
            continue
        started = time.perf_counter()
        model, model_tokenizer = load_model_and_tokenizer(path)
        if model_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise ValueError(f"{name}: a different tokenizer; per-token losses would not compare")
        model.to(device).eval()
        if has_prefix:
            results[name] = prefix_model_row(model, tokenizer, texts, labels, args.batch_size)
        else:
            results[name] = plain_model_row(model, tokenizer, texts, args.batch_size)
        print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)

    columns = ("shared", "shared_unknown_sentiment", "all")
    data = f"{len(texts):,} {data_name(args.nsmc_dir)} test reviews"
    print(f"\nPer-token loss (nats) on {data}, review tokens only\n")
    print("| model | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, row in results.items():
        cells = [f"{row[c][0]:.3f} ({row[c][1]:,} tok)" if c in row else "-" for c in columns]
        print(f"| {name} | " + " | ".join(cells) + " |")
    bigram_shared = next(iter(results.values()))["shared"][0]
    for name, row in list(results.items())[1:]:
        print(
            f"{name}: shared loss - bigram = {row['shared'][0] - bigram_shared:+.3f} nats/token "
            f"(perplexity ratio {math.exp(row['shared'][0] - bigram_shared):.2f})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"test_reviews": len(texts), "rows": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
