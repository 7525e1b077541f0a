"""Checks and readers shared by the loaders: every error names the file (and line)."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

from fer_bench.config import DataConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def require_root(cfg: DataConfig, dataset: str) -> Path:
    if not cfg.root:
        raise ValueError(f"dataset {dataset!r} needs a data root (--data-root PATH)")
    return require_dir(Path(cfg.root).expanduser())


def require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{_missing(path, 'folder')}: {path}")
    return path


def require_file(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{_missing(path, 'file')}: {path}")
    return path


def _missing(path: Path, what: str) -> str:
    # A link that leads nowhere (dangling, or a loop) is there, yet names no file.
    return f"{what} not found" if not path.is_symlink() else "a broken or looping symlink"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_utf8(path: Path) -> str:
    """A label file's text; one that is not UTF-8 names the file and line of the first
    bad byte (decoded whole: a streamed decode knows only its buffer, not the line)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x}); save it as UTF-8"
        ) from None


def csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, fields) of each non-blank row."""
    reader = csv.reader(io.StringIO(read_utf8(path), newline=""))
    for fields in reader:
        if "".join(fields).strip():  # one C call per row: AffectNet has 291k of them
            yield reader.line_num, fields


MAX_COUNT = 2**31 - 1  # a vote count above this is a damaged file, and would overflow


def parse_count(text: str, where: str, what: str) -> int:
    """A non-negative count, small enough for the int arrays it goes into."""
    value = parse_int(text, where, what)
    if value < 0:
        raise ValueError(f"{where}: negative {what}")
    if value > MAX_COUNT:
        raise ValueError(f"{where}: {what} {value} too large (at most {MAX_COUNT})")
    return value


def parse_int(text: str, where: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not an integer") from None


def check_unique(names: list[str], origins: list[str], what: str) -> None:
    """Raise on the first name seen twice, citing both places."""
    seen: dict[str, str] = {}
    for name, origin in zip(names, origins, strict=True):
        if name in seen:
            raise ValueError(f"{origin}: duplicate {what} {name!r} (first at {seen[name]})")
        seen[name] = origin
