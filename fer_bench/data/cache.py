"""Disk cache of decoded datasets, so a second load skips image decoding.

A bundle is stored as one uncompressed ``.npz`` under ``$FER_BENCH_CACHE``
(default ``~/.cache/fer_bench``). Its name holds a key over the load options,
the label files' contents and every image file's size and modification time:
editing, adding or removing any of them gives a new key, so a stale entry is
never read. An entry is written (to a temporary name, then renamed) only after
the whole dataset decoded and passed the bundle's own checks, so a failed load
caches nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fer_bench.data.base import DatasetBundle, Split
from fer_bench.data.imaging import ImageRef

CACHE_FORMAT = 1  # bump when the stored layout or any loader's decoding changes
_SPLITS = ("train", "val", "test")
_OPTIONAL = ("soft_labels", "original_labels")


def cache_dir() -> Path:
    return Path(os.environ.get("FER_BENCH_CACHE") or Path.home() / ".cache" / "fer_bench")


def cache_entries(dataset: str | None = None) -> list[Path]:
    """The cache's entries, all or one dataset's (stale ones too: keys are never reused)."""
    pattern = f"{dataset}-*.npz" if dataset else "*.npz"
    return sorted(cache_dir().glob(pattern)) if cache_dir().is_dir() else []


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
        digest.update(f"{ref.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def cached(dataset: str, key: str, build: Callable[[], DatasetBundle]) -> DatasetBundle:
    """The bundle stored under ``key``, or ``build()`` stored there once it succeeded."""
    path = cache_dir() / f"{dataset}-{key}.npz"
    if path.is_file():
        try:
            return read_bundle(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            warnings.warn(f"ignoring unreadable cache entry {path}: {err}", stacklevel=2)
    bundle = build()
    try:
        write_bundle(bundle, path)
    except OSError as err:  # a read-only or full cache must not fail the load
        warnings.warn(f"could not write dataset cache {path}: {err}", stacklevel=2)
    return bundle


def write_bundle(bundle: DatasetBundle, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name in _SPLITS:
        split: Split = getattr(bundle, name)
        arrays[f"{name}.images"] = split.images.numpy()
        arrays[f"{name}.labels"] = split.labels
        for field in _OPTIONAL:
            value = getattr(split, field)
            if value is not None:
                arrays[f"{name}.{field}"] = value
        if split.names is not None:
            arrays[f"{name}.names"] = np.array(split.names, dtype=str)
    meta = {"name": bundle.name, "class_names": list(bundle.class_names), "info": bundle.info}
    arrays["meta"] = np.array(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_bundle(path: Path) -> DatasetBundle:
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        splits = {}
        for name in _SPLITS:
            names = npz.get(f"{name}.names")
            splits[name] = Split(
                images=torch.from_numpy(npz[f"{name}.images"]),
                labels=npz[f"{name}.labels"],
                names=None if names is None else names.tolist(),
                **{f: npz.get(f"{name}.{f}") for f in _OPTIONAL},
            )
    return DatasetBundle(
        name=meta["name"], class_names=tuple(meta["class_names"]), info=meta["info"], **splits
    )
