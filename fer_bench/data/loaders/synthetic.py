"""Built-in dataset: procedurally rendered 48x48 grayscale faces, no download.

Each face has a random identity (face shape, feature placement, skin and
background brightness), pose (shift, scale, rotation), lighting gradient and
sensor noise. Its expression is a blend of a primary and a secondary
expression with a known mixing weight w in [0.5, 1], at a random intensity,
so every image has an exact soft label (w on the primary, 1 - w on the
secondary). Secondary expressions follow human-like confusions (fear with
surprise, anger with disgust, sadness with neutral, ...). Class frequencies
are long-tailed like FER data. Rendering (:mod:`fer_bench.data.faces`) is
vectorised over images (torch), so the default 22,500 images take a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fer_bench.config import DataConfig
from fer_bench.data.base import DatasetBundle, Split
from fer_bench.expressions import FER2013_ORDER
from fer_bench.registry import DATASETS

CLASSES = FER2013_ORDER  # anger, disgust, fear, happiness, sadness, surprise, neutral
# Class frequencies (FER-like long tail: frequent happiness/neutral, rare disgust/fear).
FREQUENCIES = np.array([0.11, 0.035, 0.06, 0.28, 0.13, 0.11, 0.275])
# Likely secondary expressions per primary (human-like confusions).
CONFUSIONS = np.array(
    [
        [0, 5, 1, 0, 2, 1, 3],  # anger -> disgust, neutral, sadness
        [5, 0, 1, 0, 2, 0, 1],  # disgust -> anger, sadness
        [1, 0, 0, 0, 2, 5, 1],  # fear -> surprise, sadness
        [0, 0, 0, 0, 0, 3, 4],  # happiness -> neutral, surprise
        [2, 1, 2, 0, 0, 0, 5],  # sadness -> neutral, anger, fear
        [0, 0, 5, 3, 0, 0, 2],  # surprise -> fear, happiness
        [1, 0, 0, 2, 5, 1, 0],  # neutral -> sadness, happiness
    ],
    dtype=float,
)
SPLIT_SIZES = {"train": 15000, "val": 2500, "test": 5000}


@dataclass(eq=False)
class DrawnFaces:
    """A split's faces, drawn the first time their pixels are read (with torch: labels
    alone, as ``fer-bench labels`` and ``data info`` read them, import none). Reads as
    the uint8 (N, 1, size, size) array drawn: indexing, ``np.asarray``."""

    primary: np.ndarray  # the class each face's expression blends from ...
    secondary: np.ndarray  # ... towards this one,
    weight: np.ndarray  # with this weight on the primary,
    intensity: np.ndarray  # at this intensity from neutral
    seed: int
    size: int
    _pixels: np.ndarray | None = field(default=None, init=False, repr=False)

    dtype: ClassVar[np.dtype] = np.dtype(np.uint8)
    ndim: ClassVar[int] = 4

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.primary), 1, self.size, self.size)

    def __len__(self) -> int:
        return len(self.primary)

    def pixels(self) -> np.ndarray:
        if self._pixels is None:
            from fer_bench.data.faces import render_blends

            self._pixels = render_blends(
                self.primary, self.secondary, self.weight, self.intensity, self.seed, self.size
            )
        return self._pixels

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.pixels()[index]

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        return np.array(self.pixels(), dtype=dtype, copy=copy)


def generate_split(n: int, seed: int, size: int = 48) -> Split:
    """Images (drawn when first read), primary labels and exact soft labels for ``n``
    faces."""
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    primary = rng.choice(k, size=n, p=FREQUENCIES / FREQUENCIES.sum())
    cdf = np.cumsum(CONFUSIONS / CONFUSIONS.sum(1, keepdims=True), axis=1)[primary]
    secondary = (rng.random((n, 1)) > cdf).sum(1)
    weight = rng.uniform(0.5, 1.0, size=n)
    intensity = rng.uniform(0.45, 1.0, size=n)
    soft = np.zeros((n, k), dtype=np.float32)
    soft[np.arange(n), primary] = weight
    soft[np.arange(n), secondary] += 1 - weight
    images = DrawnFaces(primary, secondary, weight, intensity, seed, size)
    # Ties (w = 0.5) resolve to the primary expression, the one the face was drawn from.
    return Split(images=images, labels=primary, soft_labels=soft)


@DATASETS.register("synthetic")
def load(cfg: DataConfig) -> DatasetBundle:
    if cfg.channels != 1:
        raise ValueError("the synthetic dataset is grayscale: use channels=1")
    base_seed = 20260101
    splits = {
        name: generate_split(n, base_seed + i, cfg.image_size)
        for i, (name, n) in enumerate(SPLIT_SIZES.items())
    }
    return DatasetBundle(
        name="synthetic",
        class_names=CLASSES,
        info={"generator_seed": base_seed, "split_sizes": SPLIT_SIZES},
        **splits,
    )
