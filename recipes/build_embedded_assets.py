"""Build the embedded default's assets: the NSMC sample and the Korean tokenizer.

    python recipes/build_embedded_assets.py --nsmc_dir ../shared/nsmc-rebuild

Writes ``src/nsmc_gen/assets/nsmc-sample/ratings_{train,test}.txt.gz`` (a seeded random sample of
rows, in the official NSMC file format) and ``src/nsmc_gen/assets/tokenizer.json`` (trained on all
NSMC train reviews; the test split is never seen). Deterministic for a given input and seed.
"""

import argparse
import gzip
import random
from pathlib import Path

from nsmc_gen.modeling import ASSETS, NSMC_SAMPLE, train_nsmc_tokenizer


def read_rows(path: Path) -> tuple[str, list[str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        header, *rows = f.read().split("\n")[:-1]
    return header, rows


def write_sample(header: str, rows: list[str], size: int, path: Path, seed: int) -> None:
    keep = sorted(random.Random(seed).sample(range(len(rows)), size))  # keep the file's order
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same rows give the same bytes
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(("\n".join([header] + [rows[i] for i in keep]) + "\n").encode("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nsmc_dir", type=Path, default=Path("../shared/nsmc-rebuild"))
    parser.add_argument("--train_size", type=int, default=30_000)
    parser.add_argument("--test_size", type=int, default=5_000)
    parser.add_argument("--vocab_size", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    header, train = read_rows(args.nsmc_dir / "ratings_train.txt.gz")
    _, test = read_rows(args.nsmc_dir / "ratings_test.txt.gz")
    write_sample(header, train, args.train_size, NSMC_SAMPLE / "ratings_train.txt.gz", args.seed)
    write_sample(header, test, args.test_size, NSMC_SAMPLE / "ratings_test.txt.gz", args.seed)

    reviews = [row.split("\t")[1] for row in train]
    tokenizer = train_nsmc_tokenizer(reviews, vocab_size=args.vocab_size)
    tokenizer.backend_tokenizer.save(str(ASSETS / "tokenizer.json"))
    print(f"wrote {NSMC_SAMPLE} and {ASSETS / 'tokenizer.json'} (vocab {len(tokenizer)})")


if __name__ == "__main__":
    main()
