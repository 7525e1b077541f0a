"""Disk cache of decoded datasets, so a second load skips image decoding.

An entry is a folder ``<dataset>-<key>/`` under ``$FER_BENCH_CACHE`` (default
``~/.cache/fer_bench``) holding the images as uint8 ``images-<k>.npy`` arrays,
opened memory-mapped (a read costs seconds however large the set), plus
``labels.npz`` (each split's labels, names and rows of its ``.npy``) and
``meta.json`` (names, loader notes, each array's shape, the labels file's
sha256). The key covers the load options, the label files' contents and every
image file's size and modification time: editing, adding or removing any of
them gives a new key, so a stale entry is never read.

An entry is built under ``.<dataset>-<key>.partial/``: the first decode writes
straight into the maps, chunk by chunk (:mod:`fer_bench.data.decoding`), and
is resumed there if interrupted; ``meta.json`` is written last and the folder
then renamed, so only a complete entry carries the final name. A load error
(a bad image, a bad label file) removes the partial folder: nothing is cached.
Reading checks meta.json against its sha256 (``meta.json.sha256``), each array's
file size against its header's shape and the labels file against its recorded
sha256; an array whose size or modification time differs from those recorded
at build (it was written since) is hashed whole and compared with its recorded
sha256. An entry failing any check, or written before these checksums, is
rebuilt. A same-size change is thus caught by the write's new mtime, at no cost
to an untouched entry's load (a stat per array); decay that leaves the mtime as
it was (bit rot on the medium) is not. Builds
hold a lock on the cache folder, so concurrent loads (a sweep's workers)
decode a dataset once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.atomic import DiskFull, disk_full_named
from fer_bench.data.base import DatasetBundle, Split
from fer_bench.data.decoding import decode_to_npy, markers_dir
from fer_bench.data.files import sha256_file
from fer_bench.data.imaging import ImageRef
from fer_bench.data.mapped import MappedImages
from fer_bench.data.placement import choose_path, requested_path

CACHE_FORMAT = 2  # bump when the stored layout or any loader's decoding changes
_SPLITS = ("train", "val", "test")
_OPTIONAL = ("soft_labels", "original_labels")
META, LABELS = "meta.json", "labels.npz"
META_DIGEST = META + ".sha256"  # meta.json's own sha256, beside it


def cache_dir() -> Path:
    return Path(os.environ.get("FER_BENCH_CACHE") or Path.home() / ".cache" / "fer_bench")


def cache_entries(dataset: str | None = None) -> list[Path]:
    """The cache's entries, all or one dataset's (stale ones too: keys are never reused),
    including ``.npz`` files of the previous format, which are no longer read, and
    partial entries an interrupted decode left to resume."""
    if not cache_dir().is_dir():
        return []
    prefix = f"{dataset}-" if dataset else ""
    return sorted(
        p
        for p in cache_dir().iterdir()
        if p.name.startswith(prefix)
        and not p.name.startswith(".")
        and ((p / META).is_file() or p.suffix == ".npz")
    ) + sorted(cache_dir().glob(f".{prefix}*.partial"))


def entry_size(entry: Path) -> int:
    if entry.is_dir():
        return sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
    return entry.stat().st_size


def source_key(options: dict[str, Any], label_files: dict[str, str], images: list[ImageRef]) -> str:
    """Key over options, label-file hashes and each image's size and mtime.

    Stats every image, so a label file that names a missing image fails here,
    before any decoding, with the label file and line.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_FORMAT, options, label_files], sort_keys=True).encode())
    for ref in images:
        try:
            st = os.stat(ref.path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{ref.origin}: image not found: {ref.path}") from None
        except OSError as err:  # a symlink loop, a name too long, no permission
            raise ValueError(
                f"{ref.origin}: cannot read image {ref.path}: {err.strerror}"
            ) from None
        digest.update(f"{ref.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


class ImageSink:
    """Where a loader's ``build`` puts its images: each call fills one ``.npy`` of the entry."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._count = 0

    def _next(self) -> Path:
        path = self.folder / f"images-{self._count}.npy"
        self._count += 1
        return path

    def decode(self, refs: list[ImageRef], size: int, channels: int) -> MappedImages:
        """The image files, decoded (resuming an interrupted decode), in the order given."""
        array = decode_to_npy(refs, self._next(), size, channels)
        return MappedImages(array, np.arange(len(refs)))

    def put(self, images: np.ndarray) -> MappedImages:
        """Images a loader decoded itself (pixels from a CSV, a Hugging Face dataset)."""
        path = self._next()
        np.save(path, images)
        return MappedImages(np.load(path, mmap_mode="r"), np.arange(len(images)))


Build = Callable[[ImageSink], DatasetBundle]


def cached(dataset: str, key: str, build: Build) -> DatasetBundle:
    """The bundle stored under ``key``, or ``build(sink)`` stored there once it succeeded."""
    requested_path()  # a bad $FER_BENCH_DATA_PATH fails here, not as an unreadable entry
    entry = cache_dir() / f"{dataset}-{key}"
    bundle = _read_or_discard(entry) if entry.is_dir() else None
    if bundle is not None:
        return bundle
    with _locked(entry.parent):
        # Another process (a sweep's other worker) may have built it while we waited.
        bundle = _read_or_discard(entry) if entry.is_dir() else None
        if bundle is not None:
            return bundle
        partial = entry.with_name(f".{entry.name}.partial")
        try:
            partial.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # a read-only cache must not fail the load
            warnings.warn(f"could not write dataset cache {entry}: {err}", stacklevel=2)
            return _build_uncached(build)
        try:
            sink = ImageSink(partial)
            with disk_full_named(cache_dir()):
                write_entry(build(sink), sink)
        except DiskFull:
            raise  # kept, as after an interrupt: the rerun resumes the decode
        except Exception:
            shutil.rmtree(partial, ignore_errors=True)
            raise  # an interrupt (KeyboardInterrupt, a kill) keeps the chunks decoded
        partial.rename(entry)
        return read_entry(entry)


def _read_or_discard(entry: Path) -> DatasetBundle | None:
    try:
        return read_entry(entry)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
        warnings.warn(f"ignoring unreadable cache entry {entry}: {err}", stacklevel=3)
        shutil.rmtree(entry, ignore_errors=True)
        return None


def _build_uncached(build: Build) -> DatasetBundle:
    # Linux keeps a mapped file readable after its folder is deleted.
    with tempfile.TemporaryDirectory(prefix="fer_bench-") as tmp:
        sink = ImageSink(Path(tmp))
        write_entry(build(sink), sink)
        return read_entry(Path(tmp))


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the cache folder while one entry is built (none where the folder
    cannot be made: the build then falls back to an uncached load)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_entry(bundle: DatasetBundle, sink: ImageSink) -> None:
    """Labels and metadata of ``bundle`` beside its images in the sink's folder; meta.json
    last. Splits held in memory are stored through the sink first."""
    folder = sink.folder
    arrays: dict[str, np.ndarray] = {}
    for name in _SPLITS:
        split: Split = getattr(bundle, name)
        images = split.images
        if not isinstance(images, MappedImages):
            images = sink.put(images)
        arrays[f"{name}.file"] = np.array(Path(images.array.filename).name)
        arrays[f"{name}.rows"] = images.rows
        arrays[f"{name}.labels"] = split.labels
        for field in _OPTIONAL:
            value = getattr(split, field)
            if value is not None:
                arrays[f"{name}.{field}"] = value
        if split.names is not None:
            arrays[f"{name}.names"] = np.array(split.names, dtype=str)
    np.savez(folder / LABELS, **arrays)
    for path in folder.glob("images-*.npy"):
        shutil.rmtree(markers_dir(path), ignore_errors=True)
    npys = sorted(folder.glob("*.npy"))
    meta = {
        "format": CACHE_FORMAT,
        "name": bundle.name,
        "class_names": list(bundle.class_names),
        "info": bundle.info,
        "arrays": {p.name: list(np.load(p, mmap_mode="r").shape) for p in npys},
        "labels_sha256": sha256_file(folder / LABELS),
        "arrays_sha256": {p.name: sha256_file(p) for p in npys},
        "arrays_stat": {p.name: _stamp(p) for p in npys},
    }
    text = json.dumps(meta)
    (folder / META_DIGEST).write_text(hashlib.sha256(text.encode()).hexdigest())
    tmp = folder / f".{META}.tmp"
    tmp.write_text(text)
    tmp.replace(folder / META)


def _stamp(path: Path) -> list[int]:
    """Size and modification time: a write since the entry was built changes them."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _read_meta(folder: Path) -> dict[str, Any]:
    """meta.json, checked against its recorded sha256 before anything in it is used."""
    text = (folder / META).read_bytes()
    digest = folder / META_DIGEST
    if not digest.is_file():
        raise ValueError("written before cache checksums (no meta.json.sha256)")
    if hashlib.sha256(text).hexdigest() != digest.read_text().strip():
        raise ValueError(f"{META} does not match its recorded sha256")
    meta = json.loads(text)
    if not isinstance(meta, dict):
        raise ValueError(f"{META} is not a JSON object")
    return meta


def _check_content(path: Path, meta: dict[str, Any]) -> None:
    """An array written since the entry was built (its size or mtime moved) must still
    hash to what was recorded; an untouched one costs a stat."""
    if _stamp(path) == meta["arrays_stat"][path.name]:
        return
    if sha256_file(path) != meta["arrays_sha256"][path.name]:
        raise ValueError(f"{path.name}: content changed since it was cached (sha256 differs)")


def _open_array(path: Path, shape: list[int]) -> np.ndarray:
    """The map at ``path``, checked against the shape meta.json recorded for it."""
    array = np.load(path, mmap_mode="r")
    if list(array.shape) != shape or array.dtype != np.uint8:
        raise ValueError(f"{path.name}: shape {array.shape}, expected {tuple(shape)}")
    if path.stat().st_size != array.offset + array.nbytes:
        raise ValueError(f"{path.name}: {path.stat().st_size} bytes, header says more")
    return array


def read_entry(folder: Path) -> DatasetBundle:
    meta = _read_meta(folder)
    if meta.get("format") != CACHE_FORMAT:
        raise ValueError(f"cache format {meta.get('format')}, expected {CACHE_FORMAT}")
    if sha256_file(folder / LABELS) != meta["labels_sha256"]:
        raise ValueError(f"{LABELS} does not match its recorded sha256")
    arrays = {name: _open_array(folder / name, shape) for name, shape in meta["arrays"].items()}
    for name in arrays:
        _check_content(folder / name, meta)
    splits = {}
    with np.load(folder / LABELS, allow_pickle=False) as npz:
        mapped = {s: MappedImages(arrays[str(npz[f"{s}.file"])], npz[f"{s}.rows"]) for s in _SPLITS}
        in_memory = choose_path(sum(m.nbytes for m in mapped.values())) == "memory"
        for name in _SPLITS:
            names = npz.get(f"{name}.names")
            splits[name] = Split(
                images=mapped[name][:] if in_memory else mapped[name],
                labels=npz[f"{name}.labels"],
                names=None if names is None else names.tolist(),
                **{f: npz.get(f"{name}.{f}") for f in _OPTIONAL},
            )
    return DatasetBundle(
        name=meta["name"], class_names=tuple(meta["class_names"]), info=meta["info"], **splits
    )
