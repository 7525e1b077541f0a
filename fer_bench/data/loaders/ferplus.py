"""FER+ in its standard layout: FER2013Train|Valid|Test/ with label.csv and PNGs.

train = FER2013Train, val = FER2013Valid (FER2013 PublicTest), test =
FER2013Test (PrivateTest). Labels come from the FER+ votes (see
:mod:`fer_bench.data.votes`); the normalised votes are the soft labels. When
``fer2013_labels.csv`` sits next to the folders, each image's original
FER2013 label becomes ``original_labels`` (UNDETERMINED where the file leaves
it empty: duplicated images whose original label cannot be told apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_bench.config import DataConfig
from fer_bench.data.base import UNDETERMINED, Split
from fer_bench.data.cache import ImageSink
from fer_bench.data.files import check_unique, csv_rows, parse_count, require_file
from fer_bench.data.imaging import ImageRef
from fer_bench.data.loaders.base import Catalog, Loader, Splits
from fer_bench.data.votes import LABEL_MODES, VOTE_COLUMNS, classes_for, majority_labels
from fer_bench.expressions import FER2013_ORDER, canonical

SPLIT_FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
LABEL_FILE = "label.csv"
ORIGINAL_FILE = "fer2013_labels.csv"
ORIGINAL_HEADER = ["image", "split", "fer2013_label"]


@dataclass
class _LabelRows:
    path: Path  # the label.csv read
    names: list[str]
    origins: list[str]  # "path:line" of each row
    votes: np.ndarray  # int64 (N, 10)


def read_label_csv(path: Path) -> _LabelRows:
    """Rows ``name,"(x, y, w, h)",v1..v10`` of one FER+ label.csv."""
    names, origins, votes = [], [], []
    for line, fields in csv_rows(path):
        where = f"{path}:{line}"
        if len(fields) != 2 + len(VOTE_COLUMNS):
            raise ValueError(
                f"{where}: expected 12 fields (image name, face box, 10 vote "
                f"counts), got {len(fields)}"
            )
        row = [parse_count(x, where, "vote count") for x in fields[2:]]
        names.append(fields[0].strip())
        origins.append(where)
        votes.append(row)
    if not names:
        raise ValueError(f"{path}: no rows (empty split)")
    return _LabelRows(path, names, origins, np.array(votes, dtype=np.int64))


def read_original_labels(path: Path, classes: tuple[str, ...]) -> dict[str, int]:
    """image name -> FER2013 label as an index into ``classes`` (UNDETERMINED if empty)."""
    rows = csv_rows(path)
    header = next(rows, (0, []))[1]
    if [h.strip() for h in header] != ORIGINAL_HEADER:
        raise ValueError(
            f"{path}:1: expected header {','.join(ORIGINAL_HEADER)}, got {','.join(header)}"
        )
    labels: dict[str, int] = {}
    for line, fields in rows:
        where = f"{path}:{line}"
        if len(fields) != 3:
            raise ValueError(f"{where}: expected 3 fields, got {len(fields)}")
        name, text = fields[0].strip(), fields[2].strip()
        if name in labels:
            raise ValueError(f"{where}: duplicate image name {name!r}")
        if not text:
            labels[name] = UNDETERMINED
            continue
        try:
            label = canonical(text)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        if label not in FER2013_ORDER or label not in classes:
            raise ValueError(f"{where}: {text!r} is not a FER2013 class")
        labels[name] = classes.index(label)
    return labels


def _original_for(names: list[str], table: dict[str, int], path: Path) -> np.ndarray:
    missing = [n for n in names if n not in table]
    if missing:
        raise ValueError(f"{path}: no row for image {missing[0]!r} ({len(missing)} images missing)")
    return np.array([table[n] for n in names], dtype=np.int64)


@dataclass(kw_only=True)
class _Votes(Catalog):
    mode: str
    rows: dict[str, _LabelRows]
    original: Path | None  # fer2013_labels.csv, where present


class FerPlus(Loader[_Votes], name="ferplus"):
    source = "FER+ votes on FER2013 images"
    label_modes = LABEL_MODES

    def label_mode(self, cfg: DataConfig) -> str | None:
        classes_for(cfg.label_mode)  # an unknown mode's error names FER+, as the rule's does
        return super().label_mode(cfg)

    def read(self, root: Path, mode: str | None) -> _Votes:
        rows: dict[str, _LabelRows] = {}
        label_files: dict[str, Path | bytes] = {}
        for split, folder in SPLIT_FOLDERS.items():
            label_path = require_file(root / folder / LABEL_FILE)
            rows[split] = read_label_csv(label_path)
            label_files[f"{folder}/{LABEL_FILE}"] = label_path
        check_unique(
            [n for r in rows.values() for n in r.names],
            [o for r in rows.values() for o in r.origins],
            "image name",
        )
        original = root / ORIGINAL_FILE if (root / ORIGINAL_FILE).is_file() else None
        if original is not None:
            label_files[ORIGINAL_FILE] = original
        refs = {
            s: [
                ImageRef(root / SPLIT_FOLDERS[s] / n, o)
                for n, o in zip(r.names, r.origins, strict=True)
            ]
            for s, r in rows.items()
        }
        return _Votes(
            classes=classes_for(mode),
            label_files=label_files,
            refs=refs,
            mode=mode,
            rows=rows,
            original=original,
        )

    def build(self, catalog: _Votes, cfg: DataConfig, sink: ImageSink) -> tuple[Splits, dict]:
        mode, rows, refs = catalog.mode, catalog.rows, catalog.refs
        ruled = {s: majority_labels(r.votes, mode) for s, r in rows.items()}
        for split, v in ruled.items():
            if not v.keep.any():
                raise ValueError(
                    f"{rows[split].path}: no image has a "
                    f"FER+ label under the {mode!r} rule (empty split)"
                )
        path = catalog.original
        table = None if path is None else read_original_labels(path, catalog.classes)
        kept_refs = {
            s: [ref for ref, k in zip(refs[s], ruled[s].keep, strict=True) if k] for s in rows
        }
        images = sink.decode(
            [ref for s in kept_refs.values() for ref in s], cfg.image_size, cfg.channels
        )
        splits, start = {}, 0
        for split, v in ruled.items():
            names = [ref.path.name for ref in kept_refs[split]]
            original = None if table is None else _original_for(names, table, path)
            splits[split] = Split(
                images=images.subset(np.arange(start, start + len(names))),
                labels=v.labels,
                soft_labels=v.soft,
                original_labels=original,
                names=names,
            )
            start += len(names)
        info = {
            "splits": dict(SPLIT_FOLDERS),
            "rows": {s: len(r.names) for s, r in rows.items()},
            "dropped": {s: v.dropped for s, v in ruled.items()},
            "original_labels": None,
        }
        if table is not None:
            undetermined = {
                s: int((sp.original_labels == UNDETERMINED).sum()) for s, sp in splits.items()
            }
            info["original_labels"] = {"file": ORIGINAL_FILE, "undetermined": undetermined}
        return splits, info
