"""Can control and realness be high together? Real reviews, selected by the model's own judgement.

    python benchmarks/selected_real_reviews.py runs/embedded [--nsmc-dir ../shared/nsmc-rebuild]
        [--margins 0,1,2] [--num-reviews 100] [--test-reviews 2000] [--seed 0]

The decoding study's columns for test reviews of ``--nsmc-dir`` (an NSMC rebuild by default) instead
of generated ones: the reviews after the
study's reference sample (the same seeded test sample, ``--num-reviews`` per sentiment), kept when
the model's log-odds for their label (:meth:`BayesJudge.log_odds`, nats) exceed each margin; the
first ``--num-reviews`` per sentiment are scored by the independent judge (control), the known-word
share and the ``discriminator`` metric against the reference sample (realness, 0.5:
indistinguishable). It tells what selection by the model itself would give a sampler whose reviews
read like NSMC's: if selected real reviews reach control >= 0.95 at realness ~0.5, the two targets
do not contradict each other, and what a generator lacks is reviews that read like NSMC's.
"""

from __future__ import annotations

import argparse

from nsmc_gen.data import load_nsmc
from nsmc_gen.evaluation import load_judge, load_metric
from nsmc_gen.evaluation.judges import BayesJudge, control_report
from nsmc_gen.evaluation.study import human_sample, known_share, known_vocabulary, realness
from nsmc_gen.modeling import load_model_and_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a fine-tuned model folder")
    parser.add_argument("--nsmc-dir", default="../shared/nsmc-rebuild")
    parser.add_argument("--margins", default="0,1,2", help="comma-separated log-odds margins (nats)")
    parser.add_argument("--num-reviews", type=int, default=100, help="per sentiment, as in the study")
    parser.add_argument("--test-reviews", type=int, default=2000, help="the study's test sample size")
    parser.add_argument("--seed", type=int, default=0, help="the study's test sample seed")
    args = parser.parse_args()

    model, tokenizer = load_model_and_tokenizer(args.model)
    nsmc = load_nsmc(args.nsmc_dir)
    judge = load_judge(args.nsmc_dir)
    metrics = {"discriminator": load_metric("discriminator")}
    known = known_vocabulary(nsmc["train"]["document"][:])
    test = nsmc["test"].shuffle(seed=args.seed).select(range(args.test_reviews))
    texts, labels = test["document"][:], test["label"][:]
    reference, _ = human_sample(texts, labels, args.num_reviews)  # the study's realness reference
    pool, pool_labels = human_sample(texts, labels, len(texts), skip=args.num_reviews)
    # log-odds of each review's own label: > 0 when the model reads it as the sentiment it has
    odds = BayesJudge(model, tokenizer).log_odds(pool)
    agreement = [o if y else -o for o, y in zip(odds.tolist(), pool_labels, strict=True)]

    print("| margin (nats) | kept | control | known words | real vs generated |")
    print("|---|---:|---:|---:|---:|")
    for margin in [float("-inf")] + [float(m) for m in args.margins.split(",")]:
        kept = [i for i, a in enumerate(agreement) if a > margin]
        chosen, chosen_labels = human_sample(
            [pool[i] for i in kept], [pool_labels[i] for i in kept], args.num_reviews
        )
        control = control_report(chosen, chosen_labels, judge)["sentiment_control_accuracy"]
        real = realness(chosen, reference, metrics)
        shown = "none" if margin == float("-inf") else f"{margin:g}"
        print(
            f"| {shown} | {len(kept) / len(pool):.2f} | {control:.3f} | {known_share(chosen, known):.3f} | "
            f"{'n/a' if real is None else f'{real:.3f}'} |"
        )


if __name__ == "__main__":
    main()
