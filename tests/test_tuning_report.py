"""The tuning view in every output, and the tuning report: what equal tuning moved."""

from __future__ import annotations

import statistics

import fake_engine
from typer.testing import CliRunner

from fer_bench.atomic import write_json_atomic
from fer_bench.cli import app
from fer_bench.records.layout import TUNING_FILE
from fer_bench.records.reading import scan_runs
from fer_bench.reports.aggregate import run_value
from fer_bench.reports.tuning_report import ranks
from fer_bench.sweeps.sweep import build_spec, expand
from fer_bench.sweeps.tune import TuneSpec, final_jobs, pick, tuning_record

FAKE = "fake_engine"
METHODS = ("ce", "nla")


_train = fake_engine.train_all


def _boards(tmp_path):
    """An untuned board (seeds 0, 1) and a tuned one: 3 trials per method on seed 100,
    the picks rerun on seeds 0, 1, and NLA's official recipe on seeds 0, 1."""
    untuned, tuned = tmp_path / "untuned", tmp_path / "tuned"
    grid = {"methods": list(METHODS), "seeds": [0, 1]}
    _train(expand(build_spec({}, grid, {"epochs": 3})), untuned)
    search = build_spec({}, {"methods": list(METHODS), "seeds": [100]}, {"epochs": 3})
    spec = TuneSpec(bases=expand(search), trials=3, final_seeds=[0, 1])
    _train([cfg for cfg, _, _ in spec.trial_jobs], tuned)
    groups = pick(spec, tuned)
    _train(final_jobs(spec, groups), tuned)
    write_json_atomic(tuned / TUNING_FILE, tuning_record(spec, groups))
    official = {"methods": ["nla"], "seeds": [0, 1]}
    _train(expand(build_spec({}, official, {"epochs": 3, "recipe": "official"})), tuned)
    return untuned, tuned, groups


def _invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _val_selected(directory, method, *, tuned_runs=None, official=False):
    """Seed -> the test accuracy at the val-selected epoch, read from the records."""
    out = {}
    for run in scan_runs(directory).runs:
        if run.method != method or (run.config.get("recipe") == "official") != official:
            continue
        if tuned_runs is not None and run.name not in tuned_runs:
            continue
        out[run.seed] = run_value(run, "acc", "val")
    return out


def _row(report: str, method: str) -> list[str]:
    line = next(x for x in report.splitlines() if x.startswith(f"| {method} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_tuning_report_states_each_move_and_rank(tmp_path):
    untuned, tuned, groups = _boards(tmp_path)
    report = _invoke("table", tuned, untuned, "--tuning-report", "--metric", "acc")
    means = {}
    for method in METHODS:
        finals = next(g["final_runs"] for g in groups.values() if g["method"] == method)
        shared = _val_selected(untuned, method)
        picked = _val_selected(tuned, method, tuned_runs=set(finals))
        assert sorted(shared) == sorted(picked) == [0, 1]
        move = statistics.fmean(picked[s] - shared[s] for s in (0, 1)) * 100
        row = _row(report, method)
        assert row[1].startswith(f"{statistics.fmean(shared.values()) * 100:.2f} ± ")
        assert row[2].startswith(f"{statistics.fmean(picked.values()) * 100:.2f} ± ")
        assert row[3].startswith(f"{move:+.2f} (p=")
        means[method] = (statistics.fmean(shared.values()), statistics.fmean(picked.values()))
    before = ranks({m: v[0] for m, v in means.items()})
    after = ranks({m: v[1] for m, v in means.items()})
    for method in METHODS:
        assert _row(report, method)[6] == f"{before[method]} → {after[method]}"
    # NLA's official recipe against its tuned row; CE declares none.
    official = _val_selected(tuned, "nla", official=True)
    assert _row(report, "nla")[4].startswith(f"{statistics.fmean(official.values()) * 100:.2f}")
    assert _row(report, "ce")[4] == "–" and _row(report, "ce")[5] == "–"


def test_trials_are_no_rows_of_any_output(tmp_path, monkeypatch):
    import fer_bench.reports.plots as plots  # the plot command imports plot_all from it when run

    plotted = []  # the runs and row labels each plot call drew from
    real_plot_all = plots.plot_all

    def plot_all(runset, out, metric, select, labels, highlight=None):
        plotted.append(({r.name for r in runset.runs}, labels))
        return real_plot_all(runset, out, metric, select, labels, highlight)

    monkeypatch.setattr(plots, "plot_all", plot_all)
    untuned, tuned, groups = _boards(tmp_path)
    table = _invoke("table", tuned, untuned, "--metric", "acc")
    rows = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")}
    assert {"ce", "ce (tuned)", "nla", "nla (tuned)", "nla (official recipe)"} <= rows
    assert not any("optim.lr=" in row for row in rows)  # a trial would be labelled by lr
    compare = _invoke("compare", tuned, untuned, "nla (tuned)", "--metric", "acc")
    assert "optim.lr=" not in compare and "ce (tuned)" in compare
    selection = _invoke("table", tuned, "--selection-report", "--metric", "acc")
    assert "| ce (tuned) |" in selection and "optim.lr=" not in selection
    plots = tmp_path / "plots"
    _invoke("plot", tuned, untuned, "--out", plots)
    assert (plots / "tuning_spread.png").stat().st_size > 0
    ((names, labels),) = plotted
    trials = {t["run"] for g in groups.values() for t in g["trials"]}
    finals = {run for g in groups.values() for run in g["final_runs"]}
    assert not names & trials and finals <= names
    assert {labels[run] for run in finals} == {"ce (tuned)", "nla (tuned)"}


def test_a_report_without_tuned_rows_is_one_line(tmp_path):
    untuned = tmp_path / "untuned"
    _train(expand(build_spec({}, {"methods": ["ce"], "seeds": [0]}, {"epochs": 3})), untuned)
    result = CliRunner().invoke(app, ["table", str(untuned), "--tuning-report"])
    assert result.exit_code != 0 and "needs a tuning.json" in result.output
    both = ["table", str(untuned), "--tuning-report", "--selection-report"]
    result = CliRunner().invoke(app, both)
    assert result.exit_code != 0 and "give one" in result.output


def test_ranks_before_and_after_tuning_are_among_the_same_methods(tmp_path):
    _, tuned, _ = _boards(tmp_path)
    ce_only = tmp_path / "ce-only"  # NLA has no shared-recipe row here
    _train(expand(build_spec({}, {"methods": ["ce"], "seeds": [0, 1]}, {"epochs": 3})), ce_only)
    report = _invoke("table", tuned, ce_only, "--tuning-report", "--metric", "acc")
    assert _row(report, "nla")[6] == "–" and _row(report, "ce")[6] == "1 → 1"


def test_a_stale_untuned_row_is_marked_in_the_report(tmp_path):
    untuned, tuned, _ = _boards(tmp_path)
    run = next(r for r in scan_runs(untuned).runs if r.method == "ce" and r.seed == 0)
    fake_engine.make_stale(run.path)
    report = _invoke("table", tuned, untuned, "--tuning-report", "--metric", "acc")
    assert _row(report, "ce")[1].endswith("(n=2, 1 stale)")
    assert _row(report, "nla")[1].endswith("(n=2)") and "stale" not in _row(report, "ce")[2]


def test_ranks_share_the_better_rank_on_ties():
    assert ranks({"a": 0.7, "b": 0.7, "c": 0.6, "d": 0.8}) == {"d": 1, "a": 2, "b": 2, "c": 4}
