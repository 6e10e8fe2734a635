"""NSMC, the Naver Sentiment Movie Corpus, as a ``datasets`` builder (the "loading script").

Dataset scripts no longer load in datasets 5.x, so the builder is a class shipped in the package
and :func:`load_nsmc` wraps it. Files are read exactly as the official ones are meant to be read:
UTF-8, tab-separated, header ``id	document	label``, no quoting (documents contain ``"``).
``.gz`` copies are read directly.

A folder may also hold ``ratings_validation.txt`` (the shipped sample does: reviews its base
model never saw); it is then the validation split, instead of a carve from train.

Cleaning (the only change to the rows): empty documents are dropped, with a logged count.
Repeated reviews are kept: they are distinct reviews by distinct users (a great many people
wrote just "최고"), and dropping them would bias the model against short reviews.

Example:
    >>> from nsmc_gen.modeling import NSMC_SAMPLE
    >>> nsmc = load_nsmc(data_dir=NSMC_SAMPLE)  # its own validation file
    >>> sorted(nsmc), nsmc["train"].num_rows, nsmc["validation"].num_rows
    (['test', 'train', 'validation'], 30000, 1000)
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from pathlib import Path

import datasets

logger = logging.getLogger(__name__)

NSMC_URL = "https://raw.githubusercontent.com/e9t/nsmc/master/"
FILES = {"train": "ratings_train.txt", "test": "ratings_test.txt"}
VALIDATION_FILE = "ratings_validation.txt"  # optional, in a local folder only (not an official file)
HEADER = ["id", "document", "label"]
LABELS = ["negative", "positive"]
DEFAULT_VALIDATION_SIZE = 5000  # rows carved from train when a folder has no validation file
FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "document": datasets.Value("string"),
        "label": datasets.ClassLabel(names=LABELS),
    }
)


class NSMCFormatError(ValueError):
    """A malformed NSMC file; the message names the file and the line."""


class NSMCConfig(datasets.BuilderConfig):
    """Where the files come from: ``data_dir`` (local copies) or ``base_url`` (official repository)."""

    def __init__(self, base_url: str = NSMC_URL, **kwargs):
        super().__init__(**kwargs)
        self.base_url = base_url


class NSMC(datasets.GeneratorBasedBuilder):
    """Builder for NSMC: 150,000 train and 50,000 test movie reviews labelled negative/positive.

    Example:
        >>> builder = NSMC(data_dir="../shared/nsmc-rebuild", cache_dir="/tmp/hf")  # doctest: +SKIP
        >>> builder.download_and_prepare(); builder.as_dataset()  # doctest: +SKIP
    """

    BUILDER_CONFIG_CLASS = NSMCConfig
    # 1.1.0: a folder's validation file (the version is part of the cache path: older caches of
    # a folder that has one would lack the split)
    BUILDER_CONFIGS = [NSMCConfig(name="default", version=datasets.Version("1.1.0"))]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="Naver Sentiment Movie Corpus: Korean movie reviews, binary sentiment.",
            features=FEATURES,
            homepage="https://github.com/e9t/nsmc",
            license="CC0 1.0",
            citation="@misc{nsmc, author={Lucy Park}, title={Naver Sentiment Movie Corpus}, "
            "howpublished={\\url{https://github.com/e9t/nsmc}}, year={2016}}",
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        files = dict(FILES)
        if self.config.data_dir is not None and self._local(VALIDATION_FILE):
            files["validation"] = VALIDATION_FILE
        paths = dl_manager.download({split: self._source(name) for split, name in files.items()})
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"path": path}) for split, path in paths.items()
        ]

    def _source(self, name: str) -> str:
        if self.config.data_dir is None:
            return self.config.base_url + name
        if found := self._local(name):
            return found
        raise FileNotFoundError(f"neither {name} nor {name}.gz found in {self.config.data_dir}")

    def _local(self, name: str) -> str | None:
        folder = Path(self.config.data_dir)
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.exists():
                return str(candidate.resolve())
        return None

    def _generate_examples(self, path: str) -> Iterator[tuple[int, dict[str, str | int]]]:
        yield from enumerate(read_nsmc_file(path))


def _open_text(path: str | Path):
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"  # downloaded copies lose their .gz suffix
    opener = gzip.open if gzipped else open
    return opener(path, "rt", encoding="utf-8", newline="\n")


def read_nsmc_file(path: str | Path) -> Iterator[dict[str, str | int]]:
    """Yield the rows of one NSMC file, validating every line.

    Raises:
        NSMCFormatError: wrong header, wrong number of columns, or a label that is not 0/1,
            naming the file and the (1-based) line.
    """
    with _open_text(path) as f:
        header = f.readline().rstrip("\r\n").split("\t")
        if header != HEADER:
            raise NSMCFormatError(f"{path}:1: expected the header {HEADER}, got {header}")
        for lineno, line in enumerate(f, start=2):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 3:
                raise NSMCFormatError(f"{path}:{lineno}: expected 3 tab-separated columns, got {len(fields)}")
            id_, document, label = fields
            if label not in ("0", "1"):
                raise NSMCFormatError(f"{path}:{lineno}: label must be 0 or 1, got {label!r}")
            yield {"id": id_, "document": document, "label": int(label)}


def load_nsmc(
    data_dir: str | Path | None = None,
    validation_size: int | float | None = None,
    seed: int = 7,
    cache_dir: str | Path | None = None,
    base_url: str = NSMC_URL,
) -> datasets.DatasetDict:
    """Load NSMC as a ``DatasetDict`` with ``train``, ``validation`` and ``test``.

    Args:
        data_dir: folder with ``ratings_train.txt``/``ratings_test.txt`` (or ``.gz``); ``None``
            downloads the official files from ``base_url``.
        validation_size: rows (int) or share (float) carved from train, stratified by label;
            None: the folder's ``ratings_validation.txt`` if it has one, else 5,000 rows carved.
            Given, it is carved even where the folder has a validation file (left unused).
        seed: seed of the validation carve.
        cache_dir: the ``datasets`` cache (default: ``HF_DATASETS_CACHE``); a second load reads it.
        base_url: where the official files live (the e9t/nsmc GitHub repository).

    Example:
        >>> nsmc = load_nsmc(data_dir="../shared/nsmc-rebuild")  # doctest: +SKIP
        >>> nsmc["train"].features["label"].names
        ['negative', 'positive']
    """
    builder = NSMC(
        data_dir=None if data_dir is None else str(data_dir),
        base_url=base_url,
        cache_dir=None if cache_dir is None else str(cache_dir),
    )
    try:
        builder.download_and_prepare()
    except datasets.exceptions.DatasetGenerationError as error:
        if isinstance(error.__cause__, NSMCFormatError):  # the file:line message, not a wrapper
            raise error.__cause__ from None
        raise
    raw = builder.as_dataset()
    cleaned = {}
    for split, ds in raw.items():
        kept = ds.filter(lambda batch: [bool(d) for d in batch["document"]], batched=True)
        if dropped := ds.num_rows - kept.num_rows:
            logger.info("NSMC %s: dropped %d empty documents of %d rows", split, dropped, ds.num_rows)
        cleaned[split] = kept
    if "validation" in cleaned:
        if validation_size is None:
            return datasets.DatasetDict({split: cleaned[split] for split in ("train", "validation", "test")})
        logger.info(
            "NSMC: %s left unused: validation_size=%s asks for a carve", VALIDATION_FILE, validation_size
        )
    parts = cleaned["train"].train_test_split(
        test_size=DEFAULT_VALIDATION_SIZE if validation_size is None else validation_size,
        seed=seed,
        stratify_by_column="label",
    )
    return datasets.DatasetDict(
        {"train": parts["train"], "validation": parts["test"], "test": cleaned["test"]}
    )
