"""Noise diagnostics: AUROC of a per-sample score, and the realised label summary."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

import fer_bench.training.engine as engine
from fer_bench.records.reading import scan_runs
from fer_bench.training.diagnostics import label_summary, noise_diagnostics, score_by_observed_class
from fer_bench.training.labels import LabelSet


def test_auroc_matches_mann_whitney_and_extremes():
    rng = np.random.default_rng(0)
    flipped = rng.random(500) < 0.3
    scores = rng.normal(size=500) + np.where(flipped, -1.0, 0.0)
    out = noise_diagnostics(scores, flipped, "weight")
    u = mannwhitneyu(scores[~flipped], scores[flipped]).statistic
    assert out["auroc"] == pytest.approx(u / (flipped.sum() * (~flipped).sum()))
    assert 0.7 < out["auroc"] < 0.85
    assert out["score_name"] == "weight"
    assert out["score_clean"] == pytest.approx(scores[~flipped].mean())
    assert out["score_flipped"] == pytest.approx(scores[flipped].mean())
    perfect = noise_diagnostics(np.where(flipped, 0.1, 0.9), flipped, "w")
    assert perfect["auroc"] == 1.0
    assert noise_diagnostics(np.where(flipped, 0.9, 0.1), flipped, "w")["auroc"] == 0.0
    assert noise_diagnostics(np.ones(500), flipped, "w")["auroc"] == 0.5  # ties count half


def test_histograms_share_edges_and_skip_unseen_samples():
    scores = np.array([0.0, 0.5, 1.0, np.nan, 0.25, np.nan, 0.75])
    flipped = np.array([False, False, False, True, True, True, False])
    out = noise_diagnostics(scores, flipped, "importance")
    assert len(out["bins"]) == 21 and len(out["hist_clean"]) == len(out["hist_flipped"]) == 20
    assert out["bins"][0] == 0.0 and out["bins"][-1] == 1.0
    assert sum(out["hist_clean"]) == 4 and sum(out["hist_flipped"]) == 1  # NaN rows left out
    assert out["score_flipped"] == 0.25
    assert out["auroc"] == pytest.approx(3 / 4)


def test_clean_score_by_class_shows_a_class_whose_clean_samples_score_as_noisy():
    clean_labels = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    flipped = np.array([False, False, False, False, False, False, True, True])
    # Class 1's clean samples score as low as the flipped ones: the overall AUROC stays
    # above chance, the per-class means show where the score fails.
    scores = np.array([0.9, 0.8, np.nan, 0.1, 0.2, 0.3, 0.1, 0.2])
    out = noise_diagnostics(scores, flipped, "p", clean_labels, num_classes=3)
    assert out["score_clean_by_class"] == pytest.approx([0.85, 0.2, None])  # unseen left out
    assert out["auroc"] > 0.5
    assert "score_clean_by_class" not in noise_diagnostics(scores, flipped, "p")
    with pytest.raises(ValueError, match="need num_classes"):
        noise_diagnostics(scores, flipped, "p", clean_labels)


def test_score_by_observed_class_averages_every_scored_sample_of_its_observed_label():
    observed = np.array([0, 0, 1, 1, 1, 0])  # samples 1 and 4 flipped: they count too
    scores = np.array([0.9, 0.1, 0.4, np.nan, 0.8, 0.5])  # sample 3 unseen this epoch
    out = score_by_observed_class(scores, observed, "weight", num_classes=3)
    # class 0: (0.9 + 0.1 + 0.5) / 3; class 1: (0.4 + 0.8) / 2; class 2: no sample
    assert out == {"score_name": "weight", "mean_by_class": pytest.approx([0.5, 0.6, None])}
    assert score_by_observed_class(None, observed, "weight", 3) is None
    with pytest.raises(ValueError, match="does not match labels"):
        score_by_observed_class(scores[:4], observed, "weight", 3)


def test_every_epoch_records_the_score_by_observed_class(micro_bundle, micro_config, tmp_path):
    cfg = replace(micro_config, method="elr", epochs=1)  # clean labels: no noise record
    engine.train(cfg, tmp_path, progress=False, bundle=micro_bundle)
    (run,) = scan_runs(tmp_path).runs
    (row,) = run.epochs
    assert row["noise"] is None
    record = row["score_by_observed_class"]
    assert record["score_name"] == "target_p_label"
    assert len(record["mean_by_class"]) == micro_bundle.num_classes
    assert all(0 < m < 1 for m in record["mean_by_class"] if m is not None)


@pytest.mark.parametrize(
    ("scores", "flipped"),
    [
        (None, [True, False]),
        ([0.1, 0.2], [False, False]),  # nothing flipped
        ([0.1, 0.2], [True, True]),  # nothing clean
        ([np.nan, 0.2], [True, False]),  # the only flipped sample unseen
    ],
)
def test_no_diagnostics_without_both_groups(scores, flipped):
    scores = None if scores is None else np.array(scores)
    assert noise_diagnostics(scores, np.array(flipped), "w") is None


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="does not match"):
        noise_diagnostics(np.zeros(3), np.zeros(4, dtype=bool), "w")


def test_label_summary_counts_and_transition():
    labels = LabelSet(
        index=np.array([0, 2, 3, 4, 5]),
        observed=np.array([0, 1, 1, 1, 0]),
        clean=np.array([0, 0, 1, 1, 1]),
    )
    source = np.array([0, 2, 0, 1, 1, 1])
    out = label_summary(labels, source, ("neutral", "happiness", "surprise"))
    assert out["noise_rate"] == pytest.approx(0.4)
    assert out["n_source"] == 6 and out["n_used"] == 5
    assert out["counts_source"] == [2, 3, 1]
    assert out["counts_clean"] == [2, 3, 0] and out["counts_observed"] == [2, 3, 0]
    assert out["transition_counts"] == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    assert out["transition"][0] == [0.5, 0.5, 0.0]
    assert out["transition"][2] == [0.0, 0.0, 0.0]  # no image of that class left
    assert [r["flipped"] for r in out["per_class"]] == [1, 1, 0]
    assert out["sha256"] == labels.sha256()
