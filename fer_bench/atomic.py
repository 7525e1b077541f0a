"""Files written whole or not at all: atomic writes, JSON lines, a full disk named.

Shared by every part that writes to disk (run records, the decoded-image cache,
boards), so it sits at the bottom of the package and imports nothing of it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class DiskFull(OSError):
    """A write that found the disk full; str() is the one line naming the directory."""

    def __str__(self) -> str:
        return str(self.strerror)


@contextlib.contextmanager
def disk_full_named(directory: Path) -> Iterator[None]:
    """Turn "no space left" (or an exhausted quota) inside into :class:`DiskFull` naming
    ``directory``: what was written whole stays, so the same command resumes later."""
    try:
        yield
    except DiskFull:
        raise
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DiskFull(
            err.errno,
            f"disk full: no space left in {directory}; free some and rerun the same "
            "command to resume",
        ) from None


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write through a synced temporary file and rename: a reader never sees half a file,
    and a full disk leaves the previous file and no .tmp."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with disk_full_named(path.parent), open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # a full disk or read-only file system leaves no .tmp


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1))


def jsonl_text(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, jsonl_text(rows))


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file ([] when absent); a bad line names the file and line."""
    if not path.exists():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not valid JSON ({err.msg})") from None
    return rows


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
