"""A data folder's own validation file, and the shipped sample's: reviews the embedded base never saw."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from nsmc_gen.data import DEFAULT_VALIDATION_SIZE, VALIDATION_FILE, load_nsmc, read_nsmc_file
from nsmc_gen.modeling import NSMC_SAMPLE

REBUILD = Path(__file__).resolve().parents[1].parent / "shared" / "nsmc-rebuild"
HEADER = "id\tdocument\tlabel\n"


def write(folder: Path, name: str, rows: list[tuple[str, str, int]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = HEADER + "".join(f"{i}\t{d}\t{y}\n" for i, d, y in rows)
    (folder / f"{name}.gz").write_bytes(gzip.compress(text.encode("utf-8")))


@pytest.fixture
def folder(tmp_path):
    train = [(str(i), f"리뷰 {i}", i % 2) for i in range(40)]
    write(tmp_path / "nsmc", "ratings_train.txt", train)
    write(tmp_path / "nsmc", "ratings_test.txt", [("t1", "시험", 1)])
    write(tmp_path / "nsmc", VALIDATION_FILE, [("v1", "검증 하나", 0), ("v2", "", 1), ("v3", "검증 셋", 1)])
    return tmp_path / "nsmc"


def test_a_folders_validation_file_is_the_validation_split(folder, tmp_path):
    nsmc = load_nsmc(folder, cache_dir=tmp_path / "cache")
    assert nsmc["validation"]["id"][:] == ["v1", "v3"]  # the empty document dropped, as everywhere
    assert nsmc["train"].num_rows == 40  # nothing carved from train
    assert nsmc["test"]["id"][:] == ["t1"]


def test_an_explicit_validation_size_carves_from_train_and_leaves_the_file(folder, tmp_path):
    nsmc = load_nsmc(folder, validation_size=10, seed=3, cache_dir=tmp_path / "cache")
    assert (nsmc["train"].num_rows, nsmc["validation"].num_rows) == (30, 10)
    assert not {"v1", "v3"} & set(nsmc["train"]["id"][:] + nsmc["validation"]["id"][:])


def test_without_a_validation_file_the_default_carve_is_5000_rows(tmp_path):
    rows = [(str(i), f"리뷰 {i}", i % 2) for i in range(5010)]
    write(tmp_path / "nsmc", "ratings_train.txt", rows)
    write(tmp_path / "nsmc", "ratings_test.txt", rows[:1])
    nsmc = load_nsmc(tmp_path / "nsmc", cache_dir=tmp_path / "cache")
    assert nsmc["validation"].num_rows == DEFAULT_VALIDATION_SIZE == 5000


def test_the_shipped_samples_validation_is_disjoint_from_its_train():
    validation = list(read_nsmc_file(NSMC_SAMPLE / f"{VALIDATION_FILE}.gz"))
    train_ids = {row["id"] for row in read_nsmc_file(NSMC_SAMPLE / "ratings_train.txt.gz")}
    assert len(validation) == 1000
    assert not {row["id"] for row in validation} & train_ids
    assert 450 <= sum(row["label"] for row in validation) <= 550


@pytest.mark.slow
@pytest.mark.skipif(not REBUILD.is_dir(), reason="../shared/nsmc-rebuild is not beside the checkout")
def test_the_shipped_samples_validation_reviews_were_held_out_from_the_base():
    """The base pretrained on NSMC-rebuild train minus load_nsmc's seeded carve (recipes/pretrain_base.py)."""
    held_out = set(load_nsmc(REBUILD, seed=7)["validation"]["id"])
    validation = {row["id"] for row in read_nsmc_file(NSMC_SAMPLE / f"{VALIDATION_FILE}.gz")}
    assert validation <= held_out
