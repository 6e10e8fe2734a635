"""Atomic file writes: every file nsmc-gen writes appears whole or not at all.

A writer fills a temporary file beside the target, which then replaces the target in one
``os.replace``; a failure (or Ctrl-C) leaves the old file, or none, and no temporary behind.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = write_text_atomic(Path(tempfile.mkdtemp()) / "note.txt", "한 줄\\n")
    >>> path.read_text(encoding="utf-8")
    '한 줄\\n'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)`` beside ``path``, then move the result onto ``path``.

    The file keeps the mode of the file it replaces; a new file gets the umask's usual mode
    (``mkstemp``'s 0600 would hide it from the other users of a shared folder).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(temporary))
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically."""
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def current_umask() -> int:
    """The process umask (new files get ``0o666 & ~umask``)."""
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask
