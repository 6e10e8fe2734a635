from __future__ import annotations

import doctest
import os

import pytest

import nsmc_gen.files
from nsmc_gen.files import atomic_write, write_text_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_text_atomic(tmp_path / "card.md", "old")

    def half_then_fail(temporary):
        temporary.write_text("new, half", encoding="utf-8")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["card.md"]


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path):
    old_umask = os.umask(0o022)
    try:
        fresh = write_text_atomic(tmp_path / "a" / "fresh.json", "{}")  # parent folders made too
        assert fresh.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
        kept = write_text_atomic(tmp_path / "kept.sh", "#!/bin/sh\n")
        kept.chmod(0o750)
        write_text_atomic(kept, "#!/bin/sh\necho\n")
        assert kept.stat().st_mode & 0o777 == 0o750
    finally:
        os.umask(old_umask)


def test_docstring_example():
    result = doctest.testmod(nsmc_gen.files)
    assert result.attempted > 0 and result.failed == 0
