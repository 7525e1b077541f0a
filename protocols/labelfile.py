"""Noisy labels from a published file: ``file:PATH``.

Two formats, told apart by the first line:

* RAF-DB list (EAC's noise01-03.txt, RAF-DB's list_patition_label.txt): one
  ``train_00001.jpg 5`` per line, labels 1-7 in RAF-DB order
  (:data:`fer_bench.expressions.RAFDB_ORDER`). Rows are matched to images by
  ``Split.names`` with the extension and an ``_aligned`` suffix ignored.
  Published files cover training rows only: validation images the file does
  not name keep their clean labels; if it names some, it must name all.
* CSV with a header holding ``index`` and ``label`` (or ``observed``, so a
  run's saved labels_train.csv loads back): ``index`` is the row of the
  dataset's training split, ``label`` a class id in the dataset's order.
  Validation labels stay clean.

Every line must name an image of the training (or, for RAF lists, validation)
split, once; every training image in use must get a label. The noise level is
the file's own; the rate must be left at 0.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fer_bench.data.base import DatasetBundle, Split
from fer_bench.expressions import RAFDB_ORDER
from fer_bench.protocols.base import NoiseProtocol
from fer_bench.registry import NOISE


def raf_key(name: str) -> str:
    return Path(name).stem.removesuffix("_aligned")


def format_raf_list(names: list[str], labels: np.ndarray, class_names: tuple[str, ...]) -> str:
    """Labels as a RAF-DB list (``train_00001.jpg 5``), the format EAC's files use."""
    lines = []
    for name, label in zip(names, labels, strict=True):
        cls = class_names[label]
        if cls not in RAFDB_ORDER:
            raise ValueError(f"class {cls!r} has no RAF-DB label (RAF-DB has {RAFDB_ORDER})")
        lines.append(f"{raf_key(name)}.jpg {RAFDB_ORDER.index(cls) + 1}\n")
    return "".join(lines)


@NOISE.register("file")
class LabelFile(NoiseProtocol):
    """Labels from a file: RAF-DB list (EAC noise files) or index,label CSV."""

    takes_rate = False
    arg_help = "PATH of a label file (RAF-DB list or index,label CSV)"

    def __init__(self, rate: float, bundle: DatasetBundle, arg: str | None = None) -> None:
        super().__init__(rate, bundle)
        if not arg:
            raise ValueError("file noise needs a path: file:PATH")
        self.path = Path(arg)
        if not self.path.is_file():
            raise FileNotFoundError(f"label file not found: {self.path}")
        lines = self.path.read_text().splitlines()
        first = next((line for line in lines if line.strip()), None)
        if first is None:
            raise ValueError(f"{self.path}: empty label file")
        self.by_name: dict[str, int] | None = None
        self.by_index: dict[int, int] | None = None
        if "," in first:
            self.by_index = self._read_csv()
        else:
            self.by_name = self._read_raf(lines)

    def _error(self, line: int, message: str) -> ValueError:
        return ValueError(f"{self.path} line {line}: {message}")

    def _read_raf(self, lines: list[str]) -> dict[str, int]:
        known = set()
        for split in (self.bundle.train, self.bundle.val):
            if split.names is None:
                raise ValueError(
                    f"{self.path}: dataset {self.bundle.name} has no image names to match a "
                    "RAF-DB list; use an index,label CSV"
                )
            known.update(raf_key(n) for n in split.names)
        ids = {name: i for i, name in enumerate(self.bundle.class_names)}
        out: dict[str, int] = {}
        for lineno, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit() or not 1 <= int(parts[1]) <= 7:
                raise self._error(lineno, f"expected 'NAME LABEL' with LABEL 1-7, got {line!r}")
            key, cls = raf_key(parts[0]), RAFDB_ORDER[int(parts[1]) - 1]
            if key not in known:
                raise self._error(
                    lineno,
                    f"{parts[0]} is not a training or validation image of {self.bundle.name}",
                )
            if cls not in ids:
                raise self._error(lineno, f"class {cls!r} is not a class of {self.bundle.name}")
            if key in out:
                raise self._error(lineno, f"{parts[0]} is listed twice")
            out[key] = ids[cls]
        return out

    def _read_csv(self) -> dict[int, int]:
        n_train, n_classes = len(self.bundle.train), self.bundle.num_classes
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            label_col = next((c for c in ("label", "observed") if c in fields), None)
            if "index" not in fields or label_col is None:
                raise self._error(1, f"CSV header needs 'index' and 'label' columns, got {fields}")
            out: dict[int, int] = {}
            for row in reader:
                lineno = reader.line_num
                try:
                    index, label = int(row["index"]), int(row[label_col])
                except (TypeError, ValueError):
                    raise self._error(lineno, f"expected integers, got {row}") from None
                if not 0 <= index < n_train:
                    raise self._error(
                        lineno, f"index {index} is outside the training split (0..{n_train - 1})"
                    )
                if not 0 <= label < n_classes:
                    raise self._error(lineno, f"label {label} is outside 0..{n_classes - 1}")
                if index in out:
                    raise self._error(lineno, f"index {index} is listed twice")
                out[index] = label
        return out

    def corrupt(
        self, split: Split, split_name: str, rng: np.random.Generator, rows: np.ndarray
    ) -> np.ndarray:
        if self.by_index is not None:
            if split_name != "train":
                return split.labels.copy()
            keys, table = [int(r) for r in rows], self.by_index
        else:
            assert self.by_name is not None and split.names is not None
            keys, table = [raf_key(n) for n in split.names], self.by_name
        found = [k in table for k in keys]
        if split_name != "train" and not any(found):
            return split.labels.copy()
        if not all(found):
            missing = [k for k, f in zip(keys, found, strict=True) if not f]
            raise ValueError(
                f"{self.path} has no label for {len(missing)} {split_name} images, "
                f"e.g. {missing[0]}"
            )
        return np.array([table[k] for k in keys], dtype=np.int64)
