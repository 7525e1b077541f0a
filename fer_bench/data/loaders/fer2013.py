"""FER2013 from Kaggle's ``fer2013.csv`` (columns emotion, pixels, Usage).

Usage Training / PublicTest / PrivateTest become train / val / test, as in
the FER+ folders. Label modes:

* ``original`` (default): FER2013's own seven labels, in FER2013 order.
* ``majority`` / ``basic7``: labels from the FER+ votes in ``fer2013new.csv``
  (same rows, same order) under the FER+ rule, votes as soft labels, and the
  row's FER2013 label as ``original_labels``; rows FER+ left unnamed are
  dropped (rule ``not_in_ferplus``).

Image names are ``ferNNNNNNN.png`` with NNNNNNN the row index, the names the
FER+ folders use, so label files written for either loader line up.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_bench.config import DataConfig
from fer_bench.data.base import Split
from fer_bench.data.cache import ImageSink
from fer_bench.data.files import csv_rows, parse_count, parse_int, require_file
from fer_bench.data.imaging import array_to_chw
from fer_bench.data.loaders.base import Catalog, Loader, Splits
from fer_bench.data.votes import LABEL_MODES, VOTE_COLUMNS, majority_labels
from fer_bench.expressions import FER2013_ORDER

CSV_FILE = "fer2013.csv"
VOTES_FILE = "fer2013new.csv"
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
COLUMNS = ("emotion", "pixels", "Usage")
VOTES_HEADER = ("Usage", "Image name", *VOTE_COLUMNS)
SIDE = 48


@dataclass
class _Rows:
    labels: np.ndarray  # int64 (N,), FER2013 order
    usage: list[str]  # split of each row
    pixels: list[str]  # space-separated grey levels, decoded only when building
    origins: list[str]


def _header_index(header: list[str], expected: tuple[str, ...], path: Path) -> list[int]:
    found = [h.strip() for h in header]
    missing = [c for c in expected if c not in found]
    if missing:
        raise ValueError(
            f"{path}:1: expected columns {', '.join(expected)}; "
            f"missing {', '.join(missing)} (found {', '.join(found)})"
        )
    return [found.index(c) for c in expected]


def read_fer2013(path: Path) -> _Rows:
    rows = csv_rows(path)
    col = _header_index(next(rows, (1, []))[1], COLUMNS, path)
    labels, usage, pixels, origins = [], [], [], []
    for line, fields in rows:
        where = f"{path}:{line}"
        if len(fields) <= max(col):
            raise ValueError(f"{where}: expected {len(COLUMNS)} fields, got {len(fields)}")
        label = parse_int(fields[col[0]], where, "emotion")
        if not 0 <= label < len(FER2013_ORDER):
            raise ValueError(f"{where}: emotion {label} outside 0..{len(FER2013_ORDER) - 1}")
        split = fields[col[2]].strip()
        if split not in USAGE:
            raise ValueError(f"{where}: Usage {split!r} is not one of {', '.join(USAGE)}")
        labels.append(label)
        usage.append(USAGE[split])
        pixels.append(fields[col[1]])
        origins.append(where)
    return _Rows(np.array(labels, dtype=np.int64), usage, pixels, origins)


def read_votes(path: Path, rows: _Rows) -> tuple[np.ndarray, np.ndarray]:
    """(votes (N, 10), named (N,) bool) aligned with the fer2013.csv rows."""
    lines = csv_rows(path)
    _header_index(next(lines, (1, []))[1], VOTES_HEADER, path)
    votes, named = [], []
    for i, (line, fields) in enumerate(lines):
        where = f"{path}:{line}"
        if i >= len(rows.usage):
            raise ValueError(f"{where}: more rows than {CSV_FILE} ({len(rows.usage)})")
        if len(fields) != len(VOTES_HEADER):
            raise ValueError(f"{where}: expected {len(VOTES_HEADER)} fields, got {len(fields)}")
        if USAGE.get(fields[0].strip()) != rows.usage[i]:
            raise ValueError(f"{where}: Usage {fields[0]!r} differs from {rows.origins[i]}")
        row = [parse_count(x, where, "vote count") for x in fields[2:]]
        votes.append(row)
        named.append(bool(fields[1].strip()))
    if len(votes) != len(rows.usage):
        raise ValueError(f"{path}: {len(votes)} rows, {CSV_FILE} has {len(rows.usage)}")
    return np.array(votes, dtype=np.int64).reshape(-1, len(VOTE_COLUMNS)), np.array(named)


def decode_pixels(text: str, where: str, size: int, channels: int) -> np.ndarray:
    # fromstring parses 4x faster than split(); it only warns on junk, so make that an error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            raise ValueError(f"{where}: pixels must be space-separated integers") from None
    if values.size != SIDE * SIDE:
        raise ValueError(f"{where}: {values.size} pixels, expected {SIDE * SIDE} (48x48)")
    if values.min() < 0 or values.max() > 255:
        raise ValueError(f"{where}: pixel values outside 0..255")
    return array_to_chw(values.astype(np.uint8).reshape(SIDE, SIDE), size, channels)


@dataclass(kw_only=True)
class _Csv(Catalog):
    mode: str
    csv: Path
    votes: Path | None  # fer2013new.csv, read for a FER+ mode only


class Fer2013(Loader[_Csv], name="fer2013"):
    source = CSV_FILE
    label_modes = {"original": FER2013_ORDER, **LABEL_MODES}

    def read(self, root: Path, mode: str | None) -> _Csv:
        # The CSV holds the pixels: it is parsed when building, so a cache hit skips it.
        csv_path = require_file(root / CSV_FILE)
        votes = None if mode == "original" else require_file(root / VOTES_FILE)
        label_files: dict[str, Path | bytes] = {CSV_FILE: csv_path}
        if votes is not None:
            label_files[VOTES_FILE] = votes
        return _Csv(
            classes=self.label_modes[mode],
            label_files=label_files,
            refs={},  # decoded in memory; cached() stores it
            mode=mode,
            csv=csv_path,
            votes=votes,
        )

    def build(self, catalog: _Csv, cfg: DataConfig, _sink: ImageSink) -> tuple[Splits, dict]:
        rows = read_fer2013(catalog.csv)
        usage = np.array(rows.usage)
        info: dict = {
            "splits": {split: name for name, split in USAGE.items()},
            "rows": {split: int((usage == split).sum()) for split in USAGE.values()},
        }
        if catalog.votes is not None:
            votes, named = read_votes(catalog.votes, rows)
            info["dropped"] = {}
        splits = {}
        for name, split in USAGE.items():
            rows_in = np.flatnonzero(usage == split)
            soft = original = None
            if catalog.votes is None:
                kept, labels = rows_in, rows.labels[rows_in]
            else:
                named_rows = rows_in[named[rows_in]]
                ruled = majority_labels(votes[named_rows], catalog.mode)
                kept, labels, soft = named_rows[ruled.keep], ruled.labels, ruled.soft
                original = np.array(
                    [catalog.classes.index(FER2013_ORDER[x]) for x in rows.labels[kept]],
                    dtype=np.int64,
                )
                info["dropped"][split] = {
                    "not_in_ferplus": len(rows_in) - len(named_rows),
                    **ruled.dropped,
                }
            if len(kept) == 0:
                raise ValueError(f"{catalog.csv}: no usable rows with Usage {name} (empty split)")
            images = np.stack(
                [
                    decode_pixels(rows.pixels[i], rows.origins[i], cfg.image_size, cfg.channels)
                    for i in kept
                ]
            )
            splits[split] = Split(
                images=images,
                labels=labels,
                soft_labels=soft,
                original_labels=original,
                names=[f"fer{i:07d}.png" for i in kept],
            )
        return splits, info
