"""Metrics on hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest

from fer_bench.training.metrics import classification_metrics


def _onehot(preds, k):
    p = np.full((len(preds), k), 0.1 / (k - 1))
    p[np.arange(len(preds)), preds] = 0.9
    return p


def test_accuracy_class_mean_f1_confusion():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    preds = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    m = classification_metrics(_onehot(preds, 3), labels)
    assert m["acc"] == pytest.approx(6 / 8)
    assert m["per_class_acc"] == pytest.approx([0.75, 0.5, 1.0])
    assert m["mean_class_acc"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    f1 = [2 * 0.75 * 0.75 / 1.5, 0.5, 1.0]  # precision 3/4, 1/2, 1
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["confusion"] == [[3, 1, 0], [1, 1, 0], [0, 0, 2]]
    assert m["nll"] == pytest.approx(-np.mean(np.log(np.where(preds == labels, 0.9, 0.05))))


def test_top2_and_absent_class():
    probs = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    m = classification_metrics(probs, np.array([1, 2]))
    assert m["acc"] == 0 and m["top2"] == 0.5
    assert m["per_class_acc"][0] is None  # class 0 absent: undefined, not zero


def test_ece_zero_when_calibrated_and_vote_kl_zero_at_votes():
    probs = np.array([[0.75, 0.25]] * 4)
    labels = np.array([0, 0, 0, 1])
    m = classification_metrics(probs, labels, soft_labels=probs.copy())
    assert m["ece"] == pytest.approx(0.0)
    assert m["vote_kl"] == pytest.approx(0.0, abs=1e-9)
    assert m["vote_ce"] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
