"""Build the embedded default's assets: the NSMC sample and the Korean tokenizer.

    python recipes/build_embedded_assets.py --nsmc_dir ../shared/nsmc-rebuild

Writes ``src/nsmc_gen/assets/nsmc-sample/ratings_{train,test}.txt.gz`` (a seeded random sample of
rows, in the official NSMC file format), ``ratings_validation.txt.gz`` (the fine-tune's validation
split: reviews the embedded base never saw, see below) and ``src/nsmc_gen/assets/tokenizer.json``
(trained on all NSMC train reviews; the test split is never seen). Deterministic for a given input
and seed.

Why a validation file: the embedded base is pretrained on NSMC train minus ``load_nsmc``'s seeded
5,000-review carve (``recipes/pretrain_base.py``, seed 7), and the sample's train rows are drawn
from all of NSMC train, so a validation carve from them would score reviews the base has already
learnt. The validation file holds reviews of that 5,000-review carve instead (none of them in the
sample's train file): rows the base never trained on, as NSMC test is to NSMC train.
"""

import argparse
import gzip
import random
from pathlib import Path

from nsmc_gen.data import VALIDATION_FILE, load_nsmc
from nsmc_gen.modeling import ASSETS, NSMC_SAMPLE, train_nsmc_tokenizer

BASE_SEED = 7  # recipes/pretrain_base.py's seed: the base's held-out carve


def read_rows(path: Path) -> tuple[str, list[str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        header, *rows = f.read().split("\n")[:-1]
    return header, rows


def sample_rows(rows: list[str], size: int, seed: int) -> list[str]:
    """``size`` rows drawn with ``seed``, in the file's order."""
    return [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), size))]


def write_rows(header: str, rows: list[str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same rows give the same bytes
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(("\n".join([header, *rows]) + "\n").encode("utf-8"))


def base_held_out(nsmc_dir: Path, train: list[str], taken: list[str], size: int, seed: int) -> list[str]:
    """``size`` train rows of the base's held-out carve that are not in ``taken``."""
    held_out = set(load_nsmc(nsmc_dir, seed=BASE_SEED)["validation"]["id"])
    taken_ids = {row.split("\t", 1)[0] for row in taken}
    rows = [row for row in train if row.split("\t", 1)[0] in held_out - taken_ids]
    return sample_rows(rows, size, seed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nsmc_dir", type=Path, default=Path("../shared/nsmc-rebuild"))
    parser.add_argument("--train_size", type=int, default=30_000)
    parser.add_argument("--test_size", type=int, default=5_000)
    parser.add_argument("--validation_size", type=int, default=1_000)
    parser.add_argument("--vocab_size", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    header, train = read_rows(args.nsmc_dir / "ratings_train.txt.gz")
    _, test = read_rows(args.nsmc_dir / "ratings_test.txt.gz")
    train_sample = sample_rows(train, args.train_size, args.seed)
    write_rows(header, train_sample, NSMC_SAMPLE / "ratings_train.txt.gz")
    write_rows(header, sample_rows(test, args.test_size, args.seed), NSMC_SAMPLE / "ratings_test.txt.gz")
    validation = base_held_out(args.nsmc_dir, train, train_sample, args.validation_size, args.seed)
    write_rows(header, validation, NSMC_SAMPLE / f"{VALIDATION_FILE}.gz")

    reviews = [row.split("\t")[1] for row in train]
    tokenizer = train_nsmc_tokenizer(reviews, vocab_size=args.vocab_size)
    tokenizer.backend_tokenizer.save(str(ASSETS / "tokenizer.json"))
    print(f"wrote {NSMC_SAMPLE} and {ASSETS / 'tokenizer.json'} (vocab {len(tokenizer)})")


if __name__ == "__main__":
    main()
