"""Image folders: ``ROOT/train/<class>/*`` and ``ROOT/test/<class>/*``, optionally
``ROOT/val/`` (or ``valid``/``validation``); without one a stratified 10% of
train is held out. Class folders are named by expression (``angry``, ``happy``,
``Neutral`` ... any name :func:`fer_bench.expressions.canonical` knows); classes
are ordered as in the common vocabulary. Files that are not images are skipped
and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_bench.config import DataConfig
from fer_bench.data.base import Split
from fer_bench.data.cache import ImageSink
from fer_bench.data.files import IMAGE_SUFFIXES, require_dir
from fer_bench.data.imaging import ImageRef
from fer_bench.data.loaders.base import Catalog, Loader, Splits
from fer_bench.data.splits import carve_val
from fer_bench.expressions import EXPRESSIONS, canonical

VAL_NAMES = ("val", "valid", "validation")


def scan_split(folder: Path) -> tuple[dict[str, list[Path]], int]:
    """{expression: sorted image files} of one split folder, and the count of skipped files."""
    classes: dict[str, list[Path]] = {}
    origin: dict[str, Path] = {}
    skipped = 0
    for sub in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if not sub.is_dir():
            skipped += 1
            continue
        try:
            name = canonical(sub.name)
        except ValueError as err:
            raise ValueError(f"{sub}: class folder is not an expression name: {err}") from None
        if name in classes:
            raise ValueError(f"{sub}: same class ({name}) as {origin[name]}")
        files = sorted(p for p in sub.rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        skipped += len(files) - len(images)
        if not images:
            raise ValueError(f"{sub}: class folder has no images")
        classes[name], origin[name] = images, sub
    if not classes:
        raise ValueError(f"{folder}: no class folders (empty split)")
    return classes, skipped


def _val_folder(root: Path) -> Path | None:
    found = [root / n for n in VAL_NAMES if (root / n).is_dir()]
    if len(found) > 1:
        raise ValueError(f"{root}: more than one validation folder ({', '.join(map(str, found))})")
    return found[0] if found else None


@dataclass(kw_only=True)
class _Folders(Catalog):
    folders: dict[str, Path]  # split -> its folder
    labels: dict[str, list[int]]  # split -> class index of each of its refs
    skipped: dict[str, int]  # split -> files that are not images


class Folder(Loader[_Folders], name="folder"):
    source = "class folders"

    def read(self, root: Path, mode: str | None) -> _Folders:
        folders = {"train": require_dir(root / "train"), "test": require_dir(root / "test")}
        val_folder = _val_folder(root)
        if val_folder is not None:
            folders["val"] = val_folder
        scanned = {s: scan_split(f) for s, f in folders.items()}
        classes = tuple(c for c in EXPRESSIONS if c in scanned["train"][0])
        for split, (found, _) in scanned.items():
            extra = sorted(set(found) - set(classes))
            if extra:
                raise ValueError(
                    f"{folders[split]}: classes {', '.join(extra)} have no train folder"
                )
        items = {
            s: [(path, classes.index(c)) for c in classes for path in found.get(c, [])]
            for s, (found, _) in scanned.items()
        }
        # The listing of files and their classes stands for a label file.
        listing = "".join(
            f"{s}/{p.relative_to(folders[s])}\t{c}\n"
            for s, pairs in items.items()
            for p, c in pairs
        )
        return _Folders(
            classes=classes,
            label_files={"listing": listing.encode()},
            refs={s: [ImageRef(p, str(p.parent)) for p, _ in pairs] for s, pairs in items.items()},
            folders=folders,
            labels={s: [c for _, c in pairs] for s, pairs in items.items()},
            skipped={s: n for s, (_, n) in scanned.items()},
        )

    def build(self, catalog: _Folders, cfg: DataConfig, sink: ImageSink) -> tuple[Splits, dict]:
        splits = {}
        for split, refs in catalog.refs.items():
            splits[split] = Split(
                images=sink.decode(refs, cfg.image_size, cfg.channels),
                labels=np.array(catalog.labels[split], dtype=np.int64),
                names=[str(r.path.relative_to(catalog.folders[split])) for r in refs],
            )
        info = {
            "splits": {s: f.name for s, f in catalog.folders.items()},
            "skipped_files": catalog.skipped,
        }
        if "val" not in splits:
            splits["train"], splits["val"], info["val_split"] = carve_val(splits["train"], "train/")
        return splits, info
