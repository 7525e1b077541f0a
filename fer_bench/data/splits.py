"""A validation split carved from train for datasets published without one.

Stratified: each class gives round(10%) of its images (at least one where it
has two or more), chosen with a fixed seed, so every run and every method
sees the same validation images.
"""

from __future__ import annotations

import numpy as np

from fer_bench.config import DataConfig
from fer_bench.data.base import Split
from fer_bench.data.cache import ImageSink
from fer_bench.data.imaging import ImageRef

VAL_FRACTION = 0.1
VAL_SEED = 0


def stratified_holdout(
    labels: np.ndarray, fraction: float = VAL_FRACTION, seed: int = VAL_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) row indices, each sorted."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        n = int(round(fraction * len(rows)))
        if len(rows) >= 2:
            n = max(n, 1)
        held.append(rng.permutation(rows)[:n])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return kept, held_out


def carve_val(train: Split, source: str) -> tuple[Split, Split, dict]:
    """Split ``train`` into (train, val) and describe it for ``bundle.info``."""
    kept, held = stratified_holdout(train.labels)
    if len(held) == 0:
        raise ValueError(f"{source}: too few training images to carve a validation split")
    note = {
        "source": f"stratified {VAL_FRACTION:.0%} of {source}, seed {VAL_SEED}",
        "n_val": int(len(held)),
        "n_train": int(len(kept)),
    }
    return train.subset(kept), train.subset(held), note


def decode_train_test(
    refs: dict[str, list[ImageRef]],
    entries: dict[str, list[tuple]],
    cfg: DataConfig,
    source: str,
    sink: ImageSink,
) -> tuple[Split, Split, Split, dict]:
    """Decode a train/test dataset (entries: (name, label, ...) per image) and carve its
    validation split from train: (train, val, test, note on the carved split)."""
    images = sink.decode(refs["train"] + refs["test"], cfg.image_size, cfg.channels)
    n_train, n_all = len(refs["train"]), len(images)
    full_train, test = (
        Split(
            images=part,
            labels=np.array([e[1] for e in entries[s]], dtype=np.int64),
            names=[e[0] for e in entries[s]],
        )
        for s, part in (
            ("train", images.subset(np.arange(n_train))),
            ("test", images.subset(np.arange(n_train, n_all))),
        )
    )
    train, val, note = carve_val(full_train, source)
    return train, val, test, note
