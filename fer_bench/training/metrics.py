"""Classification metrics from predicted probabilities; plain numpy, JSON-ready output."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def classification_metrics(
    probs: np.ndarray, labels: np.ndarray, soft_labels: np.ndarray | None = None
) -> dict:
    """Overall and mean class accuracy, per-class recall, macro-F1, top-2, confusion,
    ECE, NLL, the most predicted class and its share; with annotator vote distributions
    also cross-entropy and KL to them.

    Classes absent from ``labels`` are left out of the class means (their recall is
    undefined) and shown as None per class.
    """
    num_classes = probs.shape[1]
    preds = probs.argmax(1)
    cm = confusion_matrix(labels, preds, num_classes)
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm)
    present = support > 0
    recall = np.where(present, tp / np.maximum(support, 1), np.nan)
    precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    f1 = np.where(
        present & (precision + np.nan_to_num(recall) > 0),
        2
        * precision
        * np.nan_to_num(recall)
        / np.maximum(precision + np.nan_to_num(recall), 1e-12),
        0.0,
    )
    # How much of the split the most predicted class takes: a collapsed model's is near 1.
    pred_share = np.bincount(preds, minlength=num_classes) / max(len(preds), 1)
    top2 = np.argsort(-probs, axis=1)[:, :2]
    eps = 1e-12
    out = {
        "acc": float((preds == labels).mean()),
        "mean_class_acc": float(np.nanmean(recall)),
        "macro_f1": float(f1[present].mean()),
        "top2": float((top2 == labels[:, None]).any(1).mean()),
        "per_class_acc": [None if np.isnan(r) else float(r) for r in recall],
        "confusion": cm.tolist(),
        "ece": expected_calibration_error(probs, labels),
        "nll": float(-np.log(probs[np.arange(len(labels)), labels] + eps).mean()),
        "pred_mode": int(pred_share.argmax()),
        "pred_share_max": float(pred_share.max()),
    }
    if soft_labels is not None:
        q = soft_labels / np.maximum(soft_labels.sum(1, keepdims=True), eps)
        ce = -(q * np.log(probs + eps)).sum(1)
        entropy = -(q * np.log(q + eps)).sum(1)
        out["vote_ce"] = float(ce.mean())
        out["vote_kl"] = float((ce - entropy).mean())
    return out
