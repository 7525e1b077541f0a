"""What a noise protocol did, and how well a method's per-sample score finds it.

Both need the clean labels or the flip mask, so only the engine and the
``labels`` command call them; methods never see their inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fer_bench.training.labels import LabelSet

HIST_BINS = 20


def noise_diagnostics(
    scores: np.ndarray | None,
    flipped: np.ndarray,
    score_name: str,
    clean_labels: np.ndarray | None = None,
    num_classes: int | None = None,
) -> dict[str, Any] | None:
    """AUROC of ``scores`` (higher = believed clean) for telling clean from flipped samples,
    and, given the clean labels, the mean score of each class's unflipped samples.

    NaN scores (samples not seen this epoch) are left out. Returns None when
    there are no scores, or no clean or no flipped sample among the scored.
    """
    from scipy.stats import rankdata  # slow to import: not for ``fer-bench labels``

    if scores is None:
        return None
    scores = np.asarray(scores, dtype=np.float64)
    flipped = np.asarray(flipped, dtype=bool)
    if scores.shape != flipped.shape:
        raise ValueError(f"scores shape {scores.shape} does not match flip mask {flipped.shape}")
    seen = np.isfinite(scores)
    kept = seen & ~flipped  # the scored clean samples
    clean, noisy = scores[kept], scores[seen & flipped]
    if len(clean) == 0 or len(noisy) == 0:
        return None
    # Mann-Whitney U of clean over flipped, ties counted half: P(score_clean > score_flipped).
    ranks = rankdata(np.concatenate([clean, noisy]))
    u = ranks[: len(clean)].sum() - len(clean) * (len(clean) + 1) / 2
    edges = np.histogram_bin_edges(scores[seen], bins=HIST_BINS)
    out = {
        "score_name": score_name,
        "auroc": float(u / (len(clean) * len(noisy))),
        "score_clean": float(clean.mean()),
        "score_flipped": float(noisy.mean()),
        "bins": edges.tolist(),
        "hist_clean": np.histogram(clean, bins=edges)[0].tolist(),
        "hist_flipped": np.histogram(noisy, bins=edges)[0].tolist(),
    }
    if clean_labels is not None:
        if num_classes is None:  # inferring it from the labels would drop an absent class
            raise ValueError("noise_diagnostics: clean_labels need num_classes")
        out["score_clean_by_class"] = _class_means(scores, kept, clean_labels, num_classes)
    return out


def score_by_observed_class(
    scores: np.ndarray | None, observed: np.ndarray, score_name: str, num_classes: int
) -> dict[str, Any] | None:
    """Mean score of all scored training samples of each OBSERVED class (the label the
    method trains on, flipped or not), None for a class with none; None without scores.
    Needs no clean label, so a clean run records it too: over epochs it shows whether a
    method's weight moves towards or away from the minority classes as training goes on."""
    if scores is None:
        return None
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != np.shape(observed):
        raise ValueError(f"scores shape {scores.shape} does not match labels {np.shape(observed)}")
    means = _class_means(scores, np.isfinite(scores), observed, num_classes)
    return {"score_name": score_name, "mean_by_class": means}


def _class_means(
    scores: np.ndarray, kept: np.ndarray, labels: np.ndarray, num_classes: int
) -> list[float | None]:
    """Mean score of the kept samples of each class, None for a class with none. A score
    that ranks well overall can still mark a rare class's clean samples as noisy, as a
    small-loss rule does under a long tail; the overall AUROC hides it, this shows it."""
    labels = np.asarray(labels)
    means: list[float | None] = []
    for c in range(num_classes):
        mine = kept & (labels == c)
        means.append(float(scores[mine].mean()) if mine.any() else None)
    return means


def label_summary(
    labels: LabelSet, source_labels: np.ndarray, class_names: tuple[str, ...]
) -> dict[str, Any]:
    """Realised effect of a protocol on one split: rates, transition matrix, class counts.

    ``transition[c][j]`` is the share of used images of clean class c observed
    as j (a row of zeros where class c has no image left).
    """
    k = len(class_names)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (labels.clean, labels.observed), 1)
    per_class_n = counts.sum(axis=1)
    flipped = per_class_n - np.diag(counts)
    safe_n = np.maximum(per_class_n, 1)
    return {
        "class_names": list(class_names),
        "n_source": int(len(source_labels)),
        "n_used": int(len(labels.index)),
        "noise_rate": labels.noise_rate if len(labels.index) else 0.0,
        "per_class": [
            {
                "class": class_names[c],
                "n": int(per_class_n[c]),
                "flipped": int(flipped[c]),
                "rate": float(flipped[c] / safe_n[c]),
            }
            for c in range(k)
        ],
        "transition_counts": counts.tolist(),
        "transition": (counts / safe_n[:, None]).tolist(),
        "counts_source": np.bincount(source_labels, minlength=k).tolist(),
        "counts_clean": per_class_n.tolist(),
        "counts_observed": counts.sum(axis=0).tolist(),
        "sha256": labels.sha256(),
    }
