"""In-memory dataset form shared by every loader.

A split holds its images as one uint8 numpy array (N, C, H, W) so that the
training loop indexes and augments whole batches without per-sample Python, or,
for a set too large for memory, as :class:`MappedImages` (rows of a memory-mapped
array) with the same shape and indexing, or as what reads as such an array (the
synthetic faces, drawn when first read). Arrays, not tensors: what only reads
labels (``fer-bench labels``, ``data info``) then never imports torch; the engine
wraps them in tensors without a copy (:mod:`fer_bench.data.store`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fer_bench.data.mapped import MappedImages
from fer_bench.expressions import canonical

# Marks a missing original label (e.g. FER2013 duplicates whose label is unknown).
UNDETERMINED = -1


@dataclass
class Split:
    images: np.ndarray | MappedImages  # uint8 (N, C, H, W); or drawn when read (DrawnFaces)
    labels: np.ndarray  # int64 (N,), the dataset's reference ("clean") labels
    soft_labels: np.ndarray | None = None  # float32 (N, K) annotator distribution
    original_labels: np.ndarray | None = None  # int64 (N,), UNDETERMINED where unknown
    names: list[str] | None = None  # per-image identifiers (file names) for errors

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError("split images must be a uint8 array (N, C, H, W)")
        n = self.images.shape[0]
        if n == 0:
            raise ValueError("empty split")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.labels.shape != (n,):
            raise ValueError(f"labels shape {self.labels.shape} does not match {n} images")
        for name in ("soft_labels", "original_labels"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} rows for {n} images")

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, index: np.ndarray) -> Split:
        index = np.asarray(index, dtype=np.int64)
        images = self.images
        return Split(
            images=images.subset(index) if isinstance(images, MappedImages) else images[index],
            labels=self.labels[index],
            soft_labels=None if self.soft_labels is None else self.soft_labels[index],
            original_labels=None if self.original_labels is None else self.original_labels[index],
            names=None if self.names is None else [self.names[i] for i in index],
        )


@dataclass
class DatasetBundle:
    name: str
    class_names: tuple[str, ...]  # names from fer_bench.expressions, in label order
    train: Split
    val: Split
    test: Split
    info: dict = field(default_factory=dict)  # loader notes, e.g. rows dropped per rule

    def __post_init__(self) -> None:
        self.class_names = tuple(canonical(c) for c in self.class_names)
        k = len(self.class_names)
        for split_name in ("train", "val", "test"):
            split: Split = getattr(self, split_name)
            if split.labels.min() < 0 or split.labels.max() >= k:
                raise ValueError(f"{self.name} {split_name}: label outside 0..{k - 1}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    def has_votes(self) -> bool:
        return self.train.soft_labels is not None

    def has_original_labels(self) -> bool:
        return self.train.original_labels is not None
