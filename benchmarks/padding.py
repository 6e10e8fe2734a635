"""Share of padding per data path on NSMC train (no timing: token slots are exact counts).

    python benchmarks/padding.py --nsmc_dir ../shared/nsmc-rebuild

Compares the course's pad-to-32 (which also truncates long reviews), dynamic padding over random
batches, length-grouped batches (``train_sampling_strategy="group_by_length"``) and packing
(``PackedReviewCollator``), each over the shipped tokenizer's "긍정 <review></s>" examples.
"""

import argparse
import random

from nsmc_gen.data import load_nsmc
from nsmc_gen.formatting import PackedReviewCollator, tokenize_reviews
from nsmc_gen.modeling import NSMC_SAMPLE, load_embedded_tokenizer


def batches(order: list[int], size: int) -> list[list[int]]:
    return [order[k : k + size] for k in range(0, len(order), size)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nsmc_dir", default=str(NSMC_SAMPLE))
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args()

    tokenizer = load_embedded_tokenizer()
    train = load_nsmc(args.nsmc_dir)["train"]
    lengths = [len(ids) for ids in tokenize_reviews(train[:], tokenizer)["input_ids"]]
    real = sum(lengths)
    order = list(range(len(lengths)))
    random.Random(7).shuffle(order)
    bs = args.batch_size

    def pad_share(slots: int, tokens: int = real) -> str:
        return f"{(slots - tokens) / slots:6.1%}"

    print(f"{len(lengths):,} reviews, {real:,} tokens, batch {bs}")
    kept_at_32 = sum(min(n, 32) for n in lengths)
    truncated = sum(n > 32 for n in lengths) / len(lengths)
    print(
        f"pad to 32 (course)      pad {pad_share(32 * len(lengths), kept_at_32)}  ({truncated:.1%} truncated)"
    )
    dynamic = sum(bs * max(lengths[i] for i in b) for b in batches(order, bs))
    print(f"dynamic, random batches pad {pad_share(dynamic)}")
    grouped = 0
    for mega in batches(order, bs * 50):  # transformers' LengthGroupedSampler: 50 batches per sort
        mega.sort(key=lambda i: -lengths[i])
        grouped += sum(bs * max(lengths[i] for i in b) for b in batches(mega, bs))
    print(f"group_by_length         pad {pad_share(grouped)}")
    collate = PackedReviewCollator(tokenizer.pad_token_id, max_length=128)
    ids = [{"input_ids": [0] * n} for n in lengths]
    packed = sum(collate([ids[i] for i in b])["input_ids"].numel() for b in batches(order, 2 * bs))
    print(f"packing (rows of 128)   pad {pad_share(packed)}")


if __name__ == "__main__":
    main()
