"""The score-by-observed-class figure: one panel per scoring row, one curve per observed
class, the mean over seeds of each epoch's recorded class means."""

from __future__ import annotations

import json
from pathlib import Path

import fake_engine
import numpy as np

from fer_bench.config import RunConfig
from fer_bench.records.reading import scan_runs
from fer_bench.reports.aggregate import row_labels
from fer_bench.reports.plots import plot_all, scores_by_observed_class

K = 8  # fake_engine's records: FERPlus's classes


def _means(seed: int, epoch: int) -> list[float | None]:
    """Class c's mean score at an epoch; class 7 never observed (None)."""
    return [0.1 * c + 0.01 * epoch + 0.001 * seed for c in range(K - 1)] + [None]


def _records(root: Path) -> None:
    for method in ("ce", "nla", "elr"):
        for seed in (0, 1):
            cfg = RunConfig(method=method, seed=seed, epochs=3)
            cfg.protocol.noise_rate = 0.3
            fake_engine.write_records(cfg, root)
            if method == "ce":
                continue  # a record without the diagnostic (before it, or no score)
            metrics = fake_engine.run_dir(cfg, root) / "metrics.jsonl"
            rows = [json.loads(line) for line in metrics.read_text().splitlines()]
            for row in rows:
                means = _means(seed, row["epoch"])
                row["score_by_observed_class"] = {"score_name": "w", "mean_by_class": means}
            rows[0]["score_by_observed_class"] = None  # an epoch without scores
            metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_one_panel_per_scoring_row_and_one_curve_per_observed_class(tmp_path):
    _records(tmp_path)
    runs = scan_runs(tmp_path).runs
    protocol = next(iter({r.protocol for r in runs}))
    fig = scores_by_observed_class(runs, row_labels(runs), protocol)
    assert [ax.get_title() for ax in fig.axes] == ["elr (n=2)", "nla (n=2)"]  # not ce
    lines = fig.axes[0].get_lines()
    assert len(lines) == K  # the unobserved class is an all-NaN curve
    assert (
        lines[0].get_label() == fake_engine.CLASS_NAMES[0] and np.isnan(lines[-1].get_ydata()).all()
    )
    x, y = lines[3].get_data()
    assert list(x) == [1, 2, 3]
    # epoch 1 recorded no scores; epochs 2, 3: mean over seeds 0 and 1 of _means
    assert np.isnan(y[0])
    np.testing.assert_allclose(y[1:], [0.3 + 0.01 * e + 0.0005 for e in (2, 3)])


def test_plot_all_writes_the_figure_only_where_a_record_has_it(tmp_path):
    _records(tmp_path / "res")
    written = {p.name for p in plot_all(scan_runs(tmp_path / "res"), tmp_path / "figs")}
    assert "score_by_class_sym-30pct.png" in written
    clean = tmp_path / "clean"
    fake_engine.write_records(RunConfig(method="nla", seed=0, epochs=3), clean)
    written = {p.name for p in plot_all(scan_runs(clean), tmp_path / "figs2")}
    assert not any(name.startswith("score_by_class") for name in written)
