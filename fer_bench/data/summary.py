"""Dataset statistics for ``fer-bench data info``: sizes, class balance, label quality."""

from __future__ import annotations

from typing import Any

import numpy as np

from fer_bench.data.base import UNDETERMINED, DatasetBundle

SPLITS = ("train", "val", "test")
AMBIGUOUS_BELOW = 0.7  # an image is ambiguous when its top class holds under 70% of its votes


def vote_ambiguity(soft: np.ndarray) -> float:
    """Share of images whose most-voted class has under 70% of their votes (over the
    bundle's classes)."""
    # soft labels are float32: 7/10 must not count as under 0.7
    return float((soft.max(axis=1) < AMBIGUOUS_BELOW - 1e-6).mean())


def disagreement(labels: np.ndarray, original: np.ndarray) -> tuple[float | None, int]:
    """(share of images whose original label differs, or None when no original label is
    known; number of images with a known original label)."""
    known = original != UNDETERMINED
    n = int(known.sum())
    return (float((labels[known] != original[known]).mean()) if n else None), n


def summarize(bundle: DatasetBundle) -> dict[str, Any]:
    k = bundle.num_classes
    splits = {s: getattr(bundle, s) for s in SPLITS}
    counts = {s: np.bincount(sp.labels, minlength=k) for s, sp in splits.items()}
    train_counts = counts["train"]
    out: dict[str, Any] = {
        "dataset": bundle.name,
        "class_names": list(bundle.class_names),
        "image_shape": list(bundle.image_shape),
        "sizes": {s: len(sp) for s, sp in splits.items()},
        "class_counts": {
            s: dict(zip(bundle.class_names, c.tolist(), strict=True)) for s, c in counts.items()
        },
        # largest over smallest training class; None when a class has no training image
        "imbalance_ratio": (
            float(train_counts.max() / train_counts.min()) if train_counts.min() > 0 else None
        ),
    }
    for key in ("label_mode", "dropped", "val_split", "label_files_sha256"):
        if key in bundle.info:
            out[key] = bundle.info[key]
    if bundle.has_votes():
        out["vote_ambiguity"] = {s: vote_ambiguity(sp.soft_labels) for s, sp in splits.items()}
    if bundle.has_original_labels():
        out["original_disagreement"] = {}
        out["original_known"] = {}
        for s, sp in splits.items():
            rate, n = disagreement(sp.labels, sp.original_labels)
            out["original_disagreement"][s], out["original_known"][s] = rate, n
    return out
