"""The loader contract (fer_bench/data/loaders/base.py): a loader written in a test file
declares only its own parts and loads, cached, through load_dataset; the built-in loaders
key their cache entries exactly as before they were written against the contract."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from fer_bench.config import DataConfig
from fer_bench.data import load_dataset
from fer_bench.data import testing as fx
from fer_bench.data.base import DatasetBundle, Split
from fer_bench.data.cache import ImageSink, cache_entries
from fer_bench.data.files import csv_rows, sha256_file
from fer_bench.data.imaging import ImageRef
from fer_bench.data.loaders import base, hf
from fer_bench.data.loaders.base import Catalog, Loader, Splits
from fer_bench.registry import DATASETS


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_BENCH_CACHE", str(tmp_path / "cache"))


def load(name: str, root: Path | None, **kw) -> DatasetBundle:
    return load_dataset(DataConfig(name=name, root=None if root is None else str(root), **kw))


# --- a newcomer's loader ------------------------------------------------------------


@dataclass(kw_only=True)
class _Rows(Catalog):
    labels: dict[str, list[int]]


def define_tiny_csv() -> type[Loader]:
    """ROOT/labels.csv (split, file, expression) beside its PNGs: everything the loader
    declares. Defining the class registers it."""

    class TinyCsv(Loader[_Rows], name="tiny-csv"):
        source = "labels.csv"
        label_modes = {"three": ("angry", "happy", "neutral"), "two": ("happy", "neutral")}

        def read(self, root: Path, mode: str | None) -> _Rows:
            classes = self.label_modes[mode]
            refs: dict[str, list[ImageRef]] = {"train": [], "val": [], "test": []}
            labels: dict[str, list[int]] = {"train": [], "val": [], "test": []}
            for line, (split, name, label) in csv_rows(root / "labels.csv"):
                if label in classes:
                    refs[split].append(ImageRef(root / name, f"labels.csv:{line}"))
                    labels[split].append(classes.index(label))
            label_files = {"labels.csv": root / "labels.csv"}
            return _Rows(classes=classes, label_files=label_files, refs=refs, labels=labels)

        def build(self, catalog: _Rows, cfg: DataConfig, sink: ImageSink) -> tuple[Splits, dict]:
            splits = {
                s: Split(sink.decode(refs, cfg.image_size, cfg.channels), catalog.labels[s])
                for s, refs in catalog.refs.items()
            }
            return splits, {"rows": {s: len(refs) for s, refs in catalog.refs.items()}}

    return TinyCsv


ROWS = [  # image i is fx.face(i)
    ("train", "angry"),
    ("train", "happy"),
    ("train", "neutral"),
    ("train", "happy"),
    ("val", "neutral"),
    ("val", "angry"),
    ("test", "happy"),
    ("test", "neutral"),
]


def write_tiny_csv(root: Path) -> Path:
    root.mkdir()
    with (root / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        for i, (split, label) in enumerate(ROWS):
            fx.face(i).save(root / f"{i}.png")
            writer.writerow([split, f"{i}.png", label])
    return root


@pytest.fixture
def tiny_csv(monkeypatch: pytest.MonkeyPatch) -> type[Loader]:
    DATASETS.names()  # built-ins and entry points in first, so the restored copy holds them
    monkeypatch.setattr(DATASETS, "_items", dict(DATASETS._items))  # gone after the test
    return define_tiny_csv()


def test_a_new_loader_declares_its_parts_and_loads_cached(tiny_csv, tmp_path, monkeypatch):
    root = write_tiny_csv(tmp_path / "tiny")
    assert "tiny-csv" in DATASETS.names()
    b = load("tiny-csv", root)
    assert b.name == "tiny-csv" and b.class_names == ("anger", "happiness", "neutral")
    assert b.train.labels.tolist() == [0, 1, 2, 1]
    assert b.val.labels.tolist() == [2, 0] and b.test.labels.tolist() == [1, 2]
    assert b.train.images[:, 0, 0, 0].tolist() == [fx.pixel_value(i) for i in range(4)]
    assert b.info == {
        "source": "labels.csv",
        "label_mode": "three",
        "rows": {"train": 4, "val": 2, "test": 2},
        "label_files_sha256": {"labels.csv": sha256_file(root / "labels.csv")},
    }
    assert len(cache_entries("tiny-csv")) == 1

    def no_build(*args) -> None:
        raise AssertionError("built again: the cache entry was missed")

    monkeypatch.setattr(tiny_csv, "build", no_build)
    again = load("tiny-csv", root)
    assert again.train.labels.tolist() == [0, 1, 2, 1] and again.info == b.info


def test_a_new_loaders_mode_is_checked_and_keys_its_entry(tiny_csv, tmp_path):
    root = write_tiny_csv(tmp_path / "tiny")
    two = load("tiny-csv", root, label_mode="two")
    assert two.class_names == ("happiness", "neutral") and two.train.labels.tolist() == [0, 1, 0]
    load("tiny-csv", root)
    assert len(cache_entries("tiny-csv")) == 2
    with pytest.raises(ValueError, match=r"^unknown tiny-csv label mode 'one'; known: three, two$"):
        load("tiny-csv", root, label_mode="one")
    with pytest.raises(ValueError, match=r"dataset 'tiny-csv' needs a data root"):
        load("tiny-csv", None)
    with pytest.raises(ValueError, match="image size must be at least 8"):
        load("tiny-csv", root, image_size=4)


# --- the built-in loaders' cache keys ---------------------------------------------------


class _KeySpy:
    """Stands in for source_key and cached: records what a loader hands them, builds nothing."""

    def __init__(self) -> None:
        self.key_inputs: tuple = ()
        self.entry: tuple = ()

    def source_key(self, options: dict, label_files: dict, images: list[ImageRef]) -> str:
        self.key_inputs = (options, label_files, [[str(r.path), r.origin] for r in images])
        return "key"

    def cached(self, dataset: str, key: str, build: object) -> None:
        self.entry = (dataset, *self.key_inputs)


def key_digest(entry: tuple, root: Path) -> str:
    text = json.dumps(list(entry), sort_keys=True).replace(str(root), "ROOT")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# What each loader handed source_key and cached (entry name, options, label-file hashes,
# image paths and origins; the fixture root replaced by ROOT) on these fixtures, recorded
# with the loaders as they were before the Loader base. Equal inputs give the key a user's
# cache holds (source_key itself is cache.py's and unchanged here).
KEY_DIGESTS = {
    ("ferplus", "ferplus", None): "9b8805d6261ef69e",
    ("ferplus", "ferplus", "basic7"): "ac760e09bc4ea74e",
    ("fer2013", "fer2013", None): "cfaabcad72959af1",
    ("fer2013", "fer2013", "majority"): "c9ece27710c70d45",
    ("rafdb", "rafdb", None): "f8ffef8515ae90c3",
    ("affectnet", "affectnet", "basic7"): "c67a2c887a9f5954",
    ("folder", "folder", None): "bd46b38f6e827896",
    ("hf:hf", None, None): "6abfaa454062a9cf",
}
WRITERS = {
    "ferplus": lambda root: fx.write_ferplus(root, original=fx.FERPLUS_ORIGINAL),
    "fer2013": fx.write_fer2013,
    "rafdb": fx.write_rafdb,
    "affectnet": fx.write_affectnet,
    "folder": fx.write_folder,
    "hf": fx.write_hf,
}


@pytest.mark.parametrize(("name", "folder", "mode"), list(KEY_DIGESTS))
def test_builtin_cache_keys_unchanged(name, folder, mode, tmp_path, monkeypatch):
    spy = _KeySpy()
    for module in (base, hf):
        monkeypatch.setattr(module, "source_key", spy.source_key)
        monkeypatch.setattr(module, "cached", spy.cached)
    WRITERS[folder or "hf"](tmp_path / (folder or "hf"))
    root = tmp_path / folder if folder else tmp_path
    load(name, root, label_mode=mode, image_size=32, channels=3)
    assert key_digest(spy.entry, tmp_path) == KEY_DIGESTS[(name, folder, mode)]
