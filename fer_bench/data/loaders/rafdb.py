"""RAF-DB basic: ``EmoLabel/list_patition_label.txt`` and ``Image/aligned/``.

Each label line is ``train_00001.jpg 5`` (labels 1-7 in RAF order); the image
is ``Image/aligned/train_00001_aligned.jpg``. RAF-DB has no validation split:
a stratified 10% of train is held out (:mod:`fer_bench.data.splits`).
``Split.names`` keeps the label file's names, so published noisy label files
in the same format (EAC's noise01/02/03.txt) can be matched row by row;
:func:`read_label_list` parses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fer_bench.config import DataConfig
from fer_bench.data.cache import ImageSink
from fer_bench.data.files import check_unique, parse_int, read_utf8, require_dir, require_file
from fer_bench.data.imaging import ImageRef
from fer_bench.data.loaders.base import Catalog, Loader, Splits
from fer_bench.data.splits import decode_train_test
from fer_bench.expressions import RAFDB_ORDER

LABEL_FILE = "EmoLabel/list_patition_label.txt"  # sic: the published spelling
IMAGE_DIR = "Image/aligned"
Entry = tuple[str, int, str]  # (image name, class index in RAFDB_ORDER, "path:line")


def read_label_list(path: Path) -> list[Entry]:
    """The entry of each line."""
    entries = []
    for line_no, line in enumerate(read_utf8(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{line_no}"
        if len(fields) != 2:
            raise ValueError(f"{where}: expected 'image_name label', got {line.strip()!r}")
        label = parse_int(fields[1], where, "label")
        if not 1 <= label <= len(RAFDB_ORDER):
            raise ValueError(f"{where}: label {label} outside 1..{len(RAFDB_ORDER)}")
        entries.append((fields[0], label - 1, where))
    check_unique([e[0] for e in entries], [e[2] for e in entries], "image name")
    return entries


def image_path(root: Path, name: str) -> Path:
    stem = name.rsplit(".", 1)[0]
    return root / IMAGE_DIR / f"{stem}_aligned.jpg"


@dataclass(kw_only=True)
class _Lists(Catalog):
    entries: dict[str, list[Entry]]  # per split


class RafDB(Loader[_Lists], name="rafdb"):
    source = "RAF-DB basic, aligned images"

    def label_mode(self, cfg: DataConfig) -> None:
        if cfg.label_mode not in (None, "basic7"):
            raise ValueError(
                f"rafdb has one label mode, basic7 (got {cfg.label_mode!r}); noisy "
                "training labels come from a noise protocol (file:PATH)"
            )

    def read(self, root: Path, mode: str | None) -> _Lists:
        label_path = require_file(root / LABEL_FILE)
        require_dir(root / IMAGE_DIR)
        by_split: dict[str, list[Entry]] = {"train": [], "test": []}
        for name, label, where in read_label_list(label_path):
            prefix = name.split("_", 1)[0]
            if prefix not in by_split:
                raise ValueError(
                    f"{where}: image name {name!r} starts with neither train_ nor test_"
                )
            by_split[prefix].append((name, label, where))
        for split, items in by_split.items():
            if not items:
                raise ValueError(f"{label_path}: no {split}_ images (empty split)")
        refs = {
            s: [ImageRef(image_path(root, n), w) for n, _, w in items]
            for s, items in by_split.items()
        }
        return _Lists(
            classes=RAFDB_ORDER, label_files={LABEL_FILE: label_path}, refs=refs, entries=by_split
        )

    def build(self, catalog: _Lists, cfg: DataConfig, sink: ImageSink) -> tuple[Splits, dict]:
        train, val, test, note = decode_train_test(
            catalog.refs, catalog.entries, cfg, f"{LABEL_FILE} train_ images", sink
        )
        info = {"rows": {"train": len(catalog.refs["train"]), "test": len(test)}, "val_split": note}
        return {"train": train, "val": val, "test": test}, info
