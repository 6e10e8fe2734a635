import csv
import functools
import gzip
import http.server
import shutil
import threading
from pathlib import Path

import datasets
import pytest

from nsmc_gen import data
from nsmc_gen.data import NSMCFormatError, load_nsmc

REBUILD = Path(__file__).resolve().parents[1].parent / "shared" / "nsmc-rebuild"
HEADER = "id\tdocument\tlabel\n"
ROWS = [
    ("1", '"따옴표"로 시작하는 리뷰', "1"),
    ("2", "", "0"),  # empty documents are dropped
    ("3", "최고", "1"),
    ("4", "최고", "1"),  # repeated reviews are kept
    ("5", "별로... 시간 아깝다", "0"),
    ("6", '끝에 따옴표"', "0"),
]


def write_nsmc(folder: Path, rows=ROWS, test_rows=ROWS[:3], gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (("ratings_train.txt", rows), ("ratings_test.txt", test_rows)):
        text = HEADER + "".join("\t".join(row) + "\n" for row in content)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(text.encode("utf-8")))
        else:
            (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


@pytest.mark.parametrize("gz", [False, True])
def test_reads_quotes_drops_empty_keeps_repeats(tmp_path, cache_dir, gz):
    nsmc = load_nsmc(write_nsmc(tmp_path / "nsmc", gz=gz), validation_size=2, cache_dir=cache_dir)
    train = nsmc["train"].to_list() + nsmc["validation"].to_list()
    assert sorted(r["id"] for r in train) == ["1", "3", "4", "5", "6"]
    by_id = {r["id"]: r for r in train}
    assert by_id["1"]["document"] == '"따옴표"로 시작하는 리뷰'
    assert by_id["6"]["document"] == '끝에 따옴표"'
    assert by_id["3"]["document"] == by_id["4"]["document"] == "최고"
    assert nsmc["test"].num_rows == 2
    features = nsmc["train"].features
    assert features["id"] == datasets.Value("string")
    assert features["label"].names == ["negative", "positive"]


def test_validation_is_stratified_and_seeded(tmp_path, cache_dir):
    rows = [(str(i), f"리뷰 {i}", str(i % 2)) for i in range(200)]
    folder = write_nsmc(tmp_path / "nsmc", rows=rows)
    first = load_nsmc(folder, validation_size=40, seed=3, cache_dir=cache_dir)
    again = load_nsmc(folder, validation_size=40, seed=3, cache_dir=cache_dir)
    other = load_nsmc(folder, validation_size=40, seed=4, cache_dir=cache_dir)
    assert first["validation"]["label"].count(1) == 20
    assert first["validation"]["id"] == again["validation"]["id"]
    assert first["validation"]["id"] != other["validation"]["id"]
    assert not set(first["validation"]["id"]) & set(first["train"]["id"])


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        ("id\tdoc\tlabel\n1\t좋아\t1\n", ":1:", "header"),
        (HEADER + "1\t좋아\t1\n2\t탭이\t하나 더\t0\n", ":3:", "3 tab-separated columns, got 4"),
        (HEADER + "1\t좋아\t1\n2\t별로\n", ":3:", "3 tab-separated columns, got 2"),
        (HEADER + "1\t좋아\t1\n2\t좋아\t1\n3\t별로\t5\n", ":4:", "label must be 0 or 1, got '5'"),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path, cache_dir, content, where, what):
    folder = write_nsmc(tmp_path / "nsmc")
    (folder / "ratings_train.txt").write_text(content, encoding="utf-8")
    with pytest.raises(NSMCFormatError) as info:
        load_nsmc(folder, validation_size=2, cache_dir=cache_dir)
    assert f"ratings_train.txt{where}" in str(info.value)
    assert what in str(info.value)


def test_missing_files_are_named(tmp_path, cache_dir):
    with pytest.raises(FileNotFoundError, match=r"ratings_train.txt nor ratings_train.txt.gz"):
        load_nsmc(tmp_path, cache_dir=cache_dir)


@pytest.fixture
def loopback_server(tmp_path):
    """The official files served over real HTTP on 127.0.0.1."""
    root = write_nsmc(tmp_path / "served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_downloads_from_the_base_url(loopback_server, cache_dir, monkeypatch):
    # offline mode guards the Hub; this download goes to loopback only
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    nsmc = load_nsmc(base_url=loopback_server, validation_size=2, cache_dir=cache_dir)
    assert nsmc["train"].num_rows + nsmc["validation"].num_rows == 5
    assert nsmc["test"].num_rows == 2


def test_the_default_source_is_the_official_repository():
    builder = data.NSMC()
    assert builder._source("ratings_train.txt") == (
        "https://raw.githubusercontent.com/e9t/nsmc/master/ratings_train.txt"
    )


def test_second_load_comes_from_the_cache(tmp_path, cache_dir, monkeypatch):
    folder = write_nsmc(tmp_path / "nsmc")
    first = load_nsmc(folder, validation_size=2, cache_dir=cache_dir)

    def must_not_read(path):
        raise AssertionError(f"re-read {path} instead of using the cache")

    monkeypatch.setattr(data, "read_nsmc_file", must_not_read)
    again = load_nsmc(folder, validation_size=2, cache_dir=cache_dir)
    assert again["train"]["document"] == first["train"]["document"]


def _plain_tsv(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.mark.slow
@pytest.mark.skipif(not REBUILD.is_dir(), reason="../shared/nsmc-rebuild is not beside the checkout")
def test_the_rebuild_accounts_for_every_row_byte_for_byte(tmp_path):
    folder = tmp_path / "rebuild"
    shutil.copytree(REBUILD, folder)
    nsmc = load_nsmc(folder, cache_dir=tmp_path / "cache")
    for split, parts in (("train", ("train", "validation")), ("test", ("test",))):
        reference = _plain_tsv(folder / f"ratings_{split}.txt.gz")
        assert len(reference) == {"train": 150_000, "test": 50_000}[split]
        kept = {}
        for part in parts:
            rows = zip(nsmc[part]["document"], nsmc[part]["label"], strict=True)
            kept.update(zip(nsmc[part]["id"], rows, strict=True))
        dropped = [row for row in reference if row["id"] not in kept]
        assert all(row["document"] == "" for row in dropped)
        assert len(kept) + len(dropped) == len(reference)
        for row in reference:
            if row["id"] in kept:
                assert kept[row["id"]] == (row["document"], int(row["label"]))
    assert len(nsmc["validation"]) == 5000
