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
from fer_bench.data.base import UNDETERMINED, DatasetBundle, Split
from fer_bench.data.cache import ImageSink, cached, source_key
from fer_bench.data.files import (
    check_unique,
    csv_rows,
    parse_int,
    require_file,
    require_root,
    sha256_file,
)
from fer_bench.data.imaging import ImageRef, check_format
from fer_bench.data.votes import VOTE_COLUMNS, VoteLabels, classes_for, majority_labels
from fer_bench.expressions import FER2013_ORDER, canonical
from fer_bench.registry import DATASETS

SPLIT_FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
LABEL_FILE = "label.csv"
ORIGINAL_FILE = "fer2013_labels.csv"
ORIGINAL_HEADER = ["image", "split", "fer2013_label"]


@dataclass
class _LabelRows:
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
        row = [parse_int(x, where, "vote count") for x in fields[2:]]
        if min(row) < 0:
            raise ValueError(f"{where}: negative vote count")
        names.append(fields[0].strip())
        origins.append(where)
        votes.append(row)
    if not names:
        raise ValueError(f"{path}: no rows (empty split)")
    return _LabelRows(names, origins, np.array(votes, dtype=np.int64))


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


@DATASETS.register("ferplus")
def load(cfg: DataConfig) -> DatasetBundle:
    root = require_root(cfg, "ferplus").resolve()
    check_format(cfg.image_size, cfg.channels)
    mode = cfg.label_mode or "majority"
    classes = classes_for(mode)
    rows: dict[str, _LabelRows] = {}
    hashes: dict[str, str] = {}
    for split, folder in SPLIT_FOLDERS.items():
        label_path = require_file(root / folder / LABEL_FILE)
        rows[split] = read_label_csv(label_path)
        hashes[f"{folder}/{LABEL_FILE}"] = sha256_file(label_path)
    check_unique(
        [n for r in rows.values() for n in r.names],
        [o for r in rows.values() for o in r.origins],
        "image name",
    )
    original_path = root / ORIGINAL_FILE
    has_original = original_path.is_file()
    if has_original:
        hashes[ORIGINAL_FILE] = sha256_file(original_path)

    refs = {
        s: [
            ImageRef(root / SPLIT_FOLDERS[s] / n, o)
            for n, o in zip(r.names, r.origins, strict=True)
        ]
        for s, r in rows.items()
    }
    options = {
        "loader": "ferplus",
        "root": str(root),
        "label_mode": mode,
        "image_size": cfg.image_size,
        "channels": cfg.channels,
    }
    key = source_key(options, hashes, [ref for s in refs.values() for ref in s])

    def build(sink: ImageSink) -> DatasetBundle:
        ruled: dict[str, VoteLabels] = {s: majority_labels(r.votes, mode) for s, r in rows.items()}
        for split, v in ruled.items():
            if not v.keep.any():
                raise ValueError(
                    f"{root / SPLIT_FOLDERS[split] / LABEL_FILE}: no image has a "
                    f"FER+ label under the {mode!r} rule (empty split)"
                )
        table = read_original_labels(original_path, classes) if has_original else None
        kept_refs = {
            s: [ref for ref, k in zip(refs[s], ruled[s].keep, strict=True) if k] for s in rows
        }
        images = sink.decode(
            [ref for s in kept_refs.values() for ref in s], cfg.image_size, cfg.channels
        )
        splits, start = {}, 0
        for split, v in ruled.items():
            names = [ref.path.name for ref in kept_refs[split]]
            original = None if table is None else _original_for(names, table, original_path)
            splits[split] = Split(
                images=images.subset(np.arange(start, start + len(names))),
                labels=v.labels,
                soft_labels=v.soft,
                original_labels=original,
                names=names,
            )
            start += len(names)
        info = {
            "source": "FER+ votes on FER2013 images",
            "label_mode": mode,
            "splits": dict(SPLIT_FOLDERS),
            "rows": {s: len(r.names) for s, r in rows.items()},
            "dropped": {s: v.dropped for s, v in ruled.items()},
            "label_files_sha256": hashes,
            "original_labels": None,
        }
        if table is not None:
            undetermined = {
                s: int((sp.original_labels == UNDETERMINED).sum()) for s, sp in splits.items()
            }
            info["original_labels"] = {"file": ORIGINAL_FILE, "undetermined": undetermined}
        return DatasetBundle(name="ferplus", class_names=classes, info=info, **splits)

    return cached("ferplus", key, build)
