"""The dataset-loader contract; every other file of this folder is a loader.

A loader is a function ``DataConfig -> DatasetBundle`` registered in
:data:`fer_bench.registry.DATASETS` (``synthetic`` and ``hf`` are such functions).
A loader that reads a published layout under a data root subclasses :class:`Loader`,
which names it once (``class RafDB(Loader, name="rafdb")`` registers it), and declares
only what is its own:

* :attr:`Loader.source`: what it reads, for ``bundle.info["source"]``;
* :attr:`Loader.label_modes`: its label modes and their classes, the default first
  (none: ``--label-mode`` is not read);
* :meth:`Loader.read`: its label files, as a :class:`Catalog` of the files to hash, the
  images they name and whatever :meth:`Loader.build` needs; it runs on every load, cache
  hits included, so it reads labels, never images;
* :meth:`Loader.build`: the splits and the loader's notes, images decoded through the sink.

The rest is written here once: the root and image-format checks, the label-mode check,
the label-file hashes, the cache key over them and every image's size and mtime, the
cached build and the bundle (``info`` gains ``source``, the label mode and the hashes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from fer_bench.config import DataConfig
from fer_bench.data.base import DatasetBundle, Split
from fer_bench.data.cache import ImageSink, cached, source_key
from fer_bench.data.files import require_root, sha256_file
from fer_bench.data.imaging import ImageRef, check_format
from fer_bench.registry import DATASETS


@dataclass(kw_only=True)
class Catalog:
    """What a loader found under its root, before any image is decoded."""

    classes: tuple[str, ...]  # class names in label order
    # name -> label file, or the bytes that stand for one (a folder listing); the hashes
    # enter the cache key and info["label_files_sha256"]
    label_files: dict[str, Path | bytes]
    # each split's image files in decode order: their sizes and mtimes enter the key (a
    # loader whose images are not files, fer2013's CSV pixels, passes {})
    refs: dict[str, list[ImageRef]]


C = TypeVar("C", bound=Catalog)
Splits = dict[str, Split]  # "train", "val" and "test"


class Loader(Generic[C]):
    name: ClassVar[str]
    source: ClassVar[str]
    label_modes: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init_subclass__(cls, *, name: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name
        DATASETS.register(name)(cls())

    def label_mode(self, cfg: DataConfig) -> str | None:
        """The label mode asked for, checked; None for a loader without modes."""
        if not self.label_modes:
            return None
        mode = cfg.label_mode or next(iter(self.label_modes))
        if mode not in self.label_modes:
            known = ", ".join(self.label_modes)
            raise ValueError(f"unknown {self.name} label mode {mode!r}; known: {known}")
        return mode

    def read(self, root: Path, mode: str | None) -> C:
        """The label files under ``root``, checked, as a catalog; decodes no image."""
        raise NotImplementedError

    def build(self, catalog: C, cfg: DataConfig, sink: ImageSink) -> tuple[Splits, dict]:
        """(the splits, the loader's notes for ``bundle.info``)."""
        raise NotImplementedError

    def __call__(self, cfg: DataConfig) -> DatasetBundle:
        root = require_root(cfg, self.name).resolve()
        check_format(cfg.image_size, cfg.channels)
        mode = self.label_mode(cfg)
        catalog = self.read(root, mode)
        hashes = {name: _sha256(item) for name, item in catalog.label_files.items()}
        options = {
            "loader": self.name,
            "root": str(root),
            "image_size": cfg.image_size,
            "channels": cfg.channels,
        }
        notes: dict[str, Any] = {"source": self.source}
        if mode is not None:  # a loader without modes keeps it out: the key cannot vary on it
            options["label_mode"] = notes["label_mode"] = mode
        images = [ref for refs in catalog.refs.values() for ref in refs]
        key = source_key(options, hashes, images)

        def build(sink: ImageSink) -> DatasetBundle:
            splits, info = self.build(catalog, cfg, sink)
            return DatasetBundle(
                name=self.name,
                class_names=catalog.classes,
                info={**notes, **info, "label_files_sha256": hashes},
                **splits,
            )

        return cached(self.name, key, build)


def _sha256(item: Path | bytes) -> str:
    return sha256_file(item) if isinstance(item, Path) else hashlib.sha256(item).hexdigest()
