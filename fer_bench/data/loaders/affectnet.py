"""AffectNet in its CSV form: ``training.csv`` and ``validation.csv``.

The CSVs sit in the root or in ``Manually_Annotated_file_lists/``; image paths
(column ``subDirectory_filePath``) are relative to ``Manually_Annotated_Images/``
when that folder exists, else to the root. Images are used as given (already
cropped faces). Expression ids follow AffectNet (0 neutral ... 7 contempt,
8 none, 9 uncertain, 10 no face); 8-10 are always dropped. Label modes:
``basic8`` (default, the eight expressions) and ``basic7`` (contempt dropped
too). AffectNet's test set is not public, so, as in the literature, test =
validation.csv and val = a stratified 10% held out of training.csv.
A CSV without a header row is read in the official column order.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fer_bench.config import DataConfig
from fer_bench.data.cache import ImageSink
from fer_bench.data.files import IMAGE_SUFFIXES, check_unique, csv_rows, parse_int
from fer_bench.data.imaging import ImageRef
from fer_bench.data.loaders.base import Catalog, Loader, Splits
from fer_bench.data.splits import decode_train_test
from fer_bench.expressions import AFFECTNET_ORDER

CSV_NAMES = {"train": "training.csv", "test": "validation.csv"}
LIST_DIR = "Manually_Annotated_file_lists"
IMAGE_DIR = "Manually_Annotated_Images"
OFFICIAL_COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
PATH_COLUMNS = ("subDirectory_filePath", "image", "path", "pth")
LABEL_COLUMNS = ("expression", "label")
NON_EXPRESSION = {8: "none", 9: "uncertain", 10: "no_face"}
LABEL_MODES = {"basic8": AFFECTNET_ORDER, "basic7": AFFECTNET_ORDER[:7]}
Entry = tuple[str, int, str]  # (relative image path, expression id 0-10, "path:line")


def find_csv(root: Path, name: str) -> Path:
    for candidate in (root / name, root / LIST_DIR / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"file not found: {root / name} (nor {root / LIST_DIR / name})")


def _columns(fields: list[str], path: Path) -> tuple[int, int, bool]:
    """(path column, label column, whether the first row is a header)."""
    header = [f.strip() for f in fields]
    path_col = next((header.index(c) for c in PATH_COLUMNS if c in header), None)
    label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
    if path_col is not None and label_col is not None:
        return path_col, label_col, True
    if len(header) == len(OFFICIAL_COLUMNS) and header[0].lower().endswith(IMAGE_SUFFIXES):
        return 0, OFFICIAL_COLUMNS.index("expression"), False
    raise ValueError(
        f"{path}:1: expected an image-path column ({' or '.join(PATH_COLUMNS)}) "
        f"and a label column ({' or '.join(LABEL_COLUMNS)}); found "
        f"{', '.join(header)}"
    )


def read_csv(path: Path) -> list[Entry]:
    """The entry of each row."""
    rows = list(csv_rows(path))
    if not rows:
        raise ValueError(f"{path}: no rows (empty split)")
    path_col, label_col, has_header = _columns(rows[0][1], path)
    entries = []
    for line, fields in rows[1:] if has_header else rows:
        where = f"{path}:{line}"
        if len(fields) <= max(path_col, label_col):
            raise ValueError(f"{where}: expected at least {max(path_col, label_col) + 1} fields")
        label = parse_int(fields[label_col], where, "expression")
        if not 0 <= label <= max(NON_EXPRESSION):
            raise ValueError(f"{where}: expression {label} outside 0..{max(NON_EXPRESSION)}")
        entries.append((fields[path_col].strip(), label, where))
    check_unique([e[0] for e in entries], [e[2] for e in entries], "image path")
    return entries


@dataclass(kw_only=True)
class _Lists(Catalog):
    kept: dict[str, list[Entry]]  # rows with an expression of the mode, per split
    dropped: dict[str, dict[str, int]]  # rows left out per split, per rule


class AffectNet(Loader[_Lists], name="affectnet"):
    source = "AffectNet CSV"
    label_modes = LABEL_MODES

    def read(self, root: Path, mode: str | None) -> _Lists:
        classes = LABEL_MODES[mode]
        image_root = root / IMAGE_DIR if (root / IMAGE_DIR).is_dir() else root
        csvs = {s: find_csv(root, name) for s, name in CSV_NAMES.items()}
        kept: dict[str, list[Entry]] = {}
        dropped: dict[str, dict[str, int]] = {}
        for split, path in csvs.items():
            entries = read_csv(path)
            keep = [e for e in entries if e[1] < len(classes)]
            counts = Counter(e[1] for e in entries)
            dropped[split] = {rule: counts[i] for i, rule in NON_EXPRESSION.items()}
            if len(classes) < 8:
                dropped[split]["contempt"] = counts[7]
            if not keep:
                raise ValueError(f"{path}: no rows with an expression in {mode} (empty split)")
            kept[split] = keep
        # String joins, not Path objects: the same names (see source_key) at a fraction
        # of the cost, seconds of a cached load at AffectNet's 291k images.
        prefix = f"{image_root}{os.sep}"
        return _Lists(
            classes=classes,
            label_files={str(p.relative_to(root)): p for p in csvs.values()},
            refs={s: [ImageRef(prefix + p, w) for p, _, w in e] for s, e in kept.items()},
            kept=kept,
            dropped=dropped,
        )

    def build(self, catalog: _Lists, cfg: DataConfig, sink: ImageSink) -> tuple[Splits, dict]:
        train, val, test, note = decode_train_test(
            catalog.refs, catalog.kept, cfg, CSV_NAMES["train"], sink
        )
        info = {"splits": dict(CSV_NAMES), "dropped": catalog.dropped, "val_split": note}
        return {"train": train, "val": val, "test": test}, info
