"""Figures: which PNGs a results directory gives, that they are images, bad input."""

from __future__ import annotations

from pathlib import Path

import fake_engine
import pytest
from matplotlib.container import BarContainer
from PIL import Image
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.config import RunConfig
from fer_bench.records.reading import scan_runs
from fer_bench.reports.aggregate import row_labels
from fer_bench.reports.merge import scan_boards
from fer_bench.reports.plots import (
    _highlighted,
    accuracy_vs_noise,
    per_class,
    plot_all,
    train_losses,
    training_curves,
)


def _records(root: Path) -> None:
    for seed in (0, 1):
        for method in ("ce", "nla"):
            for rate in (0.0, 0.3):
                cfg = RunConfig(method=method, seed=seed, epochs=3)
                cfg.protocol.noise_rate = rate
                fake_engine.write_records(cfg, root)


def test_plot_all_writes_each_figure_once(tmp_path):
    _records(tmp_path / "res")
    written = plot_all(scan_runs(tmp_path / "res"), tmp_path / "figs")
    assert sorted(p.name for p in written) == [
        "acc_vs_noise.png",
        "curves_clean.png",
        "curves_sym-30pct.png",
        "loss_clean.png",
        "loss_sym-30pct.png",
        "per_class_clean.png",
        "per_class_sym-30pct.png",
        "scores_nla_sym-30pct.png",  # only the scoring method, only under noise
    ]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 200
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(p.name for p in written)


def test_accuracy_vs_noise_ticks_only_the_rates_run(tmp_path):
    for method in ("ce", "nla", "rul"):  # three rows: each is shifted sideways
        for seed in (0, 1):
            cfg = RunConfig(method=method, seed=seed, epochs=3)
            cfg.protocol.noise_rate = 0.2
            cfg.protocol.imbalance, cfg.protocol.imbalance_type = 50, "exp"
            fake_engine.write_records(cfg, tmp_path / "res")
    runs = scan_runs(tmp_path / "res").runs
    fig = accuracy_vs_noise(runs, row_labels(runs), "acc", "val")
    (ax,) = fig.axes
    assert list(ax.get_xticks()) == [20.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["20"]


def test_a_board_of_more_than_ten_rows_draws_each_row_its_own_way(tmp_path):
    """Matplotlib's ten default colours repeat from the eleventh row: a curve or bar of
    row 11 must still be told from row 1's."""
    methods = ["ce", "scn", "rul", "eac", "nla", "la", "gce", "sce", "ls", "bsoftmax", "ldam"]
    for method in methods:
        for seed in (0, 1):
            fake_engine.write_records(RunConfig(method=method, seed=seed, epochs=3), tmp_path)
    runs = scan_runs(tmp_path).runs
    labels = row_labels(runs)
    protocol = next(iter({r.protocol for r in runs}))
    curves = training_curves(runs, labels, protocol)
    lines = curves.axes[0].get_lines()
    assert len(lines) == len(methods)
    assert len({(line.get_color(), line.get_linestyle()) for line in lines}) == len(methods)
    bars = per_class(runs, labels, protocol, "val").axes[0].containers
    bars = [c for c in bars if isinstance(c, BarContainer)]  # not the error bars
    looks = {(c.patches[0].get_facecolor(), c.patches[0].get_hatch()) for c in bars}
    assert len(looks) == len(methods)


def test_cli_plot_reports_bad_metrics_lines_and_still_plots(tmp_path):
    _records(tmp_path / "res")
    cfg = RunConfig(method="ce", seed=0, epochs=3)
    metrics = fake_engine.run_dir(cfg, tmp_path / "res") / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + "{truncated\n")
    result = CliRunner().invoke(
        app,
        [
            "plot",
            str(tmp_path / "res"),
            "--out",
            str(tmp_path / "figs"),
            "--metric",
            "mean_class_acc",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "metrics.jsonl: line 4" in result.stderr
    assert (tmp_path / "figs" / "mean_class_acc_vs_noise.png").exists()


def test_plot_needs_finished_runs_and_known_options(tmp_path):
    (tmp_path / "res").mkdir()
    with pytest.raises(ValueError, match="no finished runs"):
        plot_all(scan_runs(tmp_path / "res"), tmp_path / "figs")
    _records(tmp_path / "res")
    result = CliRunner().invoke(
        app, ["plot", str(tmp_path / "res"), "--out", str(tmp_path / "figs"), "--select", "best"]
    )
    assert result.exit_code == 2 and "unknown selection rule 'best'" in result.output
    result = CliRunner().invoke(
        app, ["plot", str(tmp_path / "res"), "--out", str(tmp_path / "figs"), "--metric", "top9"]
    )
    assert result.exit_code == 2 and "unknown metric 'top9'" in result.output
    assert not (tmp_path / "figs").exists()


def _board(root: Path, methods: list[str]) -> None:
    for method in methods:
        for seed in (0, 1):
            for rate in (0.0, 0.3):
                cfg = RunConfig(method=method, seed=seed, epochs=3)
                cfg.protocol.noise_rate = rate
                fake_engine.write_records(cfg, root)


def test_legends_sit_outside_the_panels_and_losses_apart(tmp_path):
    _board(tmp_path, ["ce", "nla", "ldam", "elr"])
    runs = scan_runs(tmp_path).runs
    labels = row_labels(runs)
    protocol = next(iter({r.protocol for r in runs}))
    for fig in (
        accuracy_vs_noise(runs, labels, "acc", "val"),
        per_class(runs, labels, protocol, "val"),
        training_curves(runs, labels, protocol),
    ):
        assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    # No panel holds two methods' losses: each has its own, on its own scale.
    losses = train_losses(runs, labels, protocol)
    shown = [ax for ax in losses.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["ce", "elr", "ldam", "nla"]
    assert all(len(ax.get_lines()) == 1 for ax in shown)
    assert all("loss" not in ax.get_title() for ax in training_curves(runs, labels, protocol).axes)


def test_highlight_draws_the_named_rows_over_the_others(tmp_path):
    _board(tmp_path, ["ce", "nla", "scn"])
    runs = scan_runs(tmp_path).runs
    labels = row_labels(runs)
    protocol = next(iter({r.protocol for r in runs}))
    lines = training_curves(runs, labels, protocol, {"nla"}).axes[0].get_lines()
    width = {line.get_label().split(" ")[0]: line.get_linewidth() for line in lines}
    assert width["nla"] > width["ce"] == width["scn"]
    result = CliRunner().invoke(
        app, ["plot", str(tmp_path), "--out", str(tmp_path / "f"), "--highlight", "NLA"]
    )
    assert result.exit_code == 0, result.output
    wrong = CliRunner().invoke(
        app, ["plot", str(tmp_path), "--out", str(tmp_path / "f"), "--highlight", "boot"]
    )
    assert wrong.exit_code == 2 and "--highlight: no row 'boot'" in wrong.output


def test_a_merged_board_highlights_the_other_directories_rows(tmp_path):
    _board(tmp_path / "board", ["ce", "nla"])
    _board(tmp_path / "mine", ["scn"])
    runset = scan_boards([tmp_path / "board", tmp_path / "mine"])
    labels = row_labels(runset.runs)
    assert _highlighted(runset, runset.runs, labels, None) == {"scn"}
    assert _highlighted(runset, runset.runs, labels, ["ce"]) == {"ce"}
