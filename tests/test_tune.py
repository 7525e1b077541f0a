"""The tuner: equal budgets, picks on validation only, fresh seeds, resumable search."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import fake_engine
import pytest
from lock_helpers import hold_lock
from typer.testing import CliRunner

import fer_bench.commands.tune as tune_command
from fer_bench.atomic import write_json_atomic
from fer_bench.cli import app
from fer_bench.records.identity import run_name
from fer_bench.records.layout import SWEEP_LOCK, TUNING_FILE
from fer_bench.records.reading import RunSet, scan_runs
from fer_bench.reports.aggregate import row_labels
from fer_bench.reports.plots import tuning_spread
from fer_bench.reports.tuned import apply_tuning, tuned_view, unpicked
from fer_bench.search import RECIPE_SPACE
from fer_bench.sweeps.sweep import build_spec, expand, plan
from fer_bench.sweeps.tune import (
    TuneSpec,
    check_budget,
    final_jobs,
    merged_record,
    pick,
    space_of,
    tuning_record,
)

FAKE = "fake_engine"


def _spec(trials: int = 3, methods=("ce", "gce", "nla")) -> TuneSpec:
    sweep = build_spec({}, {"methods": list(methods), "seeds": [100]}, {"epochs": 3})
    return TuneSpec(bases=expand(sweep), trials=trials, final_seeds=[0, 1])


_train = fake_engine.train_all


def test_every_method_gets_the_same_number_of_trials_and_the_shared_knobs():
    spec = _spec(trials=4)
    jobs = spec.trial_jobs
    assert Counter(cfg.method for cfg, _, _ in jobs) == {"ce": 4, "gce": 4, "nla": 4}
    for cfg, values, _ in jobs:
        assert set(RECIPE_SPACE) <= set(values)  # lr and weight decay for CE too
        assert cfg.optim.lr == values["optim.lr"] and cfg.seed == 100
    assert "lam_c" in space_of("nla") and "q" in space_of("gce")
    assert len({run_name(cfg) for cfg, _, _ in jobs}) == len(jobs)


def test_draws_depend_on_seed_method_and_trial_only():
    first = [v for _, v, _ in _spec(trials=2).trial_jobs]
    fewer_methods = [v for c, v, _ in _spec(trials=2, methods=("nla",)).trial_jobs]
    assert [v for v in first if "lam_c" in v] == fewer_methods
    other = TuneSpec(bases=_spec().bases, trials=2, search_seed=1, final_seeds=[0])
    assert [v for _, v, _ in other.trial_jobs] != first


def test_the_pick_never_reads_test_metrics(tmp_path):
    spec = _spec(trials=3)
    _train([c for c, _, _ in spec.trial_jobs], tmp_path)
    for metrics in tmp_path.glob("*/metrics.jsonl"):  # poison every test entry
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        for row in rows:
            row["test"] = "test metrics must not be read"
        metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
        final = json.loads((metrics.parent / "final.json").read_text())
        for selected in final["selection"].values():
            selected["test"] = "test metrics must not be read"
        (metrics.parent / "final.json").write_text(json.dumps(final))
    groups = pick(spec, tmp_path)
    for group in groups.values():
        best_val = {  # each trial's best validation accuracy, read here from its records
            t["run"]: max(
                json.loads(line)["val"]["acc"]
                for line in (tmp_path / t["run"] / "metrics.jsonl").read_text().splitlines()
            )
            for t in group["trials"]
        }
        assert group["best"]["run"] == max(best_val, key=best_val.get)
        assert group["best"]["score"] == max(best_val.values())


def test_confirming_runs_use_fresh_seeds_and_the_picked_values(tmp_path):
    spec = _spec(trials=2)
    _train([c for c, _, _ in spec.trial_jobs], tmp_path)
    groups = pick(spec, tmp_path)
    finals = final_jobs(spec, groups)
    assert sorted({c.seed for c in finals}) == [0, 1]
    for cfg in finals:
        (group,) = [g for g in groups.values() if g["method"] == cfg.method]
        assert cfg.optim.lr == group["best"]["values"]["optim.lr"]
    record = tuning_record(spec, groups)
    assert record["trials"] == 2 and all(len(g["final_runs"]) == 2 for g in groups.values())
    with pytest.raises(ValueError, match="must be fresh"):
        TuneSpec(bases=spec.bases, final_seeds=[100])
    for seeds in ([], [0, 0]):  # no confirming run; one directory trained twice at once
        with pytest.raises(ValueError, match="must be distinct seeds, at least one"):
            TuneSpec(bases=spec.bases, final_seeds=seeds)


def test_confirming_runs_draw_their_labels_with_their_seed_when_the_sweep_says_so(tmp_path):
    sweep = build_spec(
        {"noise": [0.2], "noise_seed": "seed"}, {"methods": ["ce"], "seeds": [100]}, {}
    )
    spec = TuneSpec(bases=expand(sweep), trials=1, final_seeds=[0, 1], noise_follows_seed=True)
    ((trial, values, _),) = spec.trial_jobs
    assert trial.protocol.noise_seed == 100
    best = {"values": values}
    finals = final_jobs(spec, {f"ce / {plan([trial], tmp_path)[0].protocol}": {"best": best}})
    assert [(c.seed, c.protocol.noise_seed) for c in finals] == [(0, 0), (1, 1)]


def _fail(run_dir) -> None:
    """Make a finished trial a diverged one, as the engine records a non-finite loss."""
    final = json.loads((run_dir / "final.json").read_text())
    final.update(status="failed", reason="non-finite loss at epoch 2")
    (run_dir / "final.json").write_text(json.dumps(final))


def test_a_failed_trial_is_finished_and_never_picked(tmp_path):
    spec = _spec(trials=3, methods=("ce",))
    _train([c for c, _, _ in spec.trial_jobs], tmp_path)
    (group,) = pick(spec, tmp_path).values()
    first_pick = group["best"]["run"]
    _fail(tmp_path / first_pick)
    (group,) = pick(spec, tmp_path).values()
    assert group["best"] is not None and group["best"]["run"] != first_pick
    assert [t["failed"] for t in group["trials"]].count(True) == 1
    assert len(final_jobs(spec, {"ce / clean": group})) == 2  # the search goes on to confirm
    for trial in group["trials"]:
        _fail(tmp_path / trial["run"])
    groups = pick(spec, tmp_path)
    assert groups["ce / clean"]["best"] is None and final_jobs(spec, groups) == []
    assert unpicked(groups["ce / clean"]) == "every trial failed"
    assert "ce / clean: every trial failed." in tuned_view(tuning_record(spec, groups))[2]


def test_a_grid_of_a_methods_hyperparameter_is_no_search(tmp_path):
    grid = build_spec({"hparams": {"gce": {"q": [0.5, 0.7]}}}, {"methods": ["gce"]}, {})
    with pytest.raises(ValueError, match="several jobs of the sweep file share the search"):
        TuneSpec(bases=expand(grid), trials=2, final_seeds=[0])


def test_another_search_into_a_directory_is_refused_before_its_trials_are_forgotten(tmp_path):
    first = _spec(trials=2, methods=("ce",))
    _train([c for c, _, _ in first.trial_jobs], tmp_path)
    (tmp_path / TUNING_FILE).write_text(json.dumps(tuning_record(first, pick(first, tmp_path))))
    assert check_budget(first, tmp_path) is not None  # the same search resumes
    sweep = build_spec({}, {"methods": ["ce"], "seeds": [100]}, {"epochs": 4})
    longer = TuneSpec(bases=expand(sweep), trials=2, final_seeds=[0, 1])
    with pytest.raises(ValueError, match="records another search of ce / clean"):
        check_budget(longer, tmp_path)


def test_two_tuned_boards_are_not_merged_into_one_tuned_row(tmp_path):
    spec = _spec(trials=1, methods=("ce",))
    record = tuning_record(spec, pick(spec, tmp_path))
    both = RunSet(tmp_path, [], [], tuning={tmp_path / "a": record, tmp_path / "b": record})
    with pytest.raises(ValueError, match="are two tuning searches"):
        apply_tuning(both)


def test_an_interrupted_search_resumes_and_picks_nothing_until_complete(tmp_path):
    spec = _spec(trials=2)
    jobs = [c for c, _, _ in spec.trial_jobs]
    _train(jobs[:4], tmp_path)  # interrupted: trial 0 of every method and trial 1 of ce
    groups = pick(spec, tmp_path)
    assert {g["method"] for g in groups.values() if g["best"] is not None} == {"ce"}
    assert {c.method for c in final_jobs(spec, groups)} == {"ce"}

    finished = [tmp_path / run_name(cfg) / "final.json" for cfg in jobs[:4]]
    before = [path.stat().st_mtime_ns for path in finished]  # when each record was written
    assert sum(p.state.value == "done" for p in plan(jobs, tmp_path, FAKE)) == 4
    _train(jobs, tmp_path)
    assert before == [path.stat().st_mtime_ns for path in finished]  # not trained again
    assert all(g["best"] is not None for g in pick(spec, tmp_path).values())


def test_table_shows_tuned_rows_with_budget_and_picks_and_plot_shows_trials(tmp_path):
    spec = _spec(trials=2, methods=("ce", "gce"))
    _train([c for c, _, _ in spec.trial_jobs], tmp_path)
    groups = pick(spec, tmp_path)
    _train(final_jobs(spec, groups), tmp_path)
    write_json_atomic(tmp_path / TUNING_FILE, tuning_record(spec, groups))
    result = CliRunner().invoke(app, ["table", str(tmp_path), "--metric", "acc"])
    assert result.exit_code == 0, result.output
    assert "| ce (tuned) |" in result.stdout and "| gce (tuned) |" in result.stdout
    assert "(n=2)" in result.stdout  # the two fresh seeds, not the trials
    assert "2 random-search trials per method" in result.stdout and "optim.lr=" in result.stdout
    plots = tmp_path / "plots"
    result = CliRunner().invoke(app, ["plot", str(tmp_path), "--out", str(plots)])
    assert result.exit_code == 0, result.output
    assert (plots / "tuning_spread.png").stat().st_size > 0


def test_a_directory_keeps_every_search_of_its_budget_and_refuses_another(tmp_path):
    first, later = _spec(trials=2, methods=("ce",)), _spec(trials=2, methods=("gce",))
    assert check_budget(first, tmp_path) is None
    _train([c for c, _, _ in first.trial_jobs], tmp_path)
    (tmp_path / TUNING_FILE).write_text(json.dumps(tuning_record(first, pick(first, tmp_path))))
    previous = check_budget(later, tmp_path)  # the same budget, another method: kept
    record = merged_record(previous, tuning_record(later, pick(later, tmp_path)))
    assert sorted(g["method"] for g in record["groups"].values()) == ["ce", "gce"]
    assert record["groups"]["ce / clean"]["best"] is not None  # ce's finished search stays
    other = TuneSpec(bases=later.bases, trials=3, final_seeds=[0, 1])
    with pytest.raises(ValueError, match="another budget \\(trials 2 there, 3 here\\)"):
        check_budget(other, tmp_path)


def test_tables_of_an_unfinished_search_show_no_trial(tmp_path):
    spec = _spec(trials=2, methods=("ce",))
    _train([c for c, _, _ in spec.trial_jobs][:1], tmp_path)
    (tmp_path / TUNING_FILE).write_text(json.dumps(tuning_record(spec, pick(spec, tmp_path))))
    result = CliRunner().invoke(app, ["table", str(tmp_path)])
    assert result.exit_code != 0 and "no confirming run yet" in result.output
    assert result.output.count("\n") == 1


def test_an_unreadable_tuning_record_is_an_error_not_trials_shown_as_results(tmp_path):
    spec = _spec(trials=2, methods=("ce",))
    _train([c for c, _, _ in spec.trial_jobs], tmp_path)
    (tmp_path / TUNING_FILE).write_text('{"groups": ')  # cut short
    result = CliRunner().invoke(app, ["table", str(tmp_path)])
    assert result.exit_code != 0 and result.output.count("\n") == 1
    assert f"{tmp_path / TUNING_FILE}: unreadable JSON" in result.output
    (tmp_path / TUNING_FILE).write_text('{"trials": 2}')
    result = CliRunner().invoke(app, ["table", str(tmp_path)])
    assert f"{tmp_path / TUNING_FILE}: not a tuning record (no 'groups')" in result.output


def test_tune_refuses_another_budget_before_training(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('methods = ["ce"]\n')
    out = tmp_path / "out"
    out.mkdir()
    spec = _spec(trials=8, methods=("ce",))
    record = json.dumps(tuning_record(spec, pick(spec, out)))
    (out / TUNING_FILE).write_text(record)
    args = ["tune", "--file", str(sweep), "--out", str(out), "--trials", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "trials 8 there, 4 here" in result.output
    # Nothing trained or rewritten (the budget is read under the sweep's lock).
    assert {p.name for p in out.iterdir()} <= {TUNING_FILE, SWEEP_LOCK}
    assert (out / TUNING_FILE).read_text() == record


def test_a_dry_run_lists_each_methods_progress_and_trains_nothing(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('methods = ["ce", "gce"]\n[base]\nepochs = 3\n')
    out = tmp_path / "out"
    spec = _spec(trials=2, methods=("ce", "gce"))
    _train([c for c, _, _ in spec.trial_jobs if c.method == "ce"], out)

    def files() -> list[str]:  # the lock file aside
        return sorted(p.name for p in out.iterdir() if p.name != ".sweep.lock")

    before = files()
    args = ["tune", "--file", sweep, "--out", out, "--trials", 2, "--final-seeds", "0,1"]
    result = CliRunner().invoke(app, [str(a) for a in args] + ["--dry-run"])
    assert result.exit_code == 0, result.output
    assert "search: 4 runs, 2 done\n  ce 2/2, gce 0/2\n" in result.output
    assert "confirm: 2 runs, 0 done\n  ce 0/2\n" in result.output  # gce has no pick yet
    assert "  and the confirming runs of finished searches: ce 0/2\n" in result.output
    assert files() == before  # no run and no tuning.json written


def test_a_finished_searchs_confirming_runs_train_alongside_the_others_trials(
    tmp_path, monkeypatch
):
    class Recording(fake_engine.SerialExecutor):
        calls: list[list[str]] = []

        def run(self, jobs, trainer):
            self.calls.append([job.name for job in jobs])
            return super().run(jobs, FAKE)

    monkeypatch.setattr(tune_command, "local_executor", lambda *args: Recording())
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('methods = ["ce", "gce"]\n[base]\nepochs = 3\n')
    out = tmp_path / "out"
    spec = _spec(trials=2, methods=("ce", "gce"))
    _train([c for c, _, _ in spec.trial_jobs if c.method == "ce"], out)
    ce_finals = {run_name(c) for c in final_jobs(spec, pick(spec, out))}
    gce_trials = {run_name(c) for c, _, _ in spec.trial_jobs if c.method == "gce"}
    args = ["tune", "--file", sweep, "--out", out, "--trials", 2, "--final-seeds", "0,1"]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    first, then = Recording.calls
    assert set(first) == gce_trials | ce_finals  # ce's confirming runs in the first phase,
    assert set(first[:2]) == ce_finals  # first, as they complete ce's row
    assert len(then) == 2 and not set(then) & ce_finals  # then only gce's


def test_a_failed_confirming_run_is_named_with_what_starts_it_over(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('methods = ["ce"]\n[base]\nepochs = 3\n')
    out = tmp_path / "out"
    spec = _spec(trials=2, methods=("ce",))
    _train([c for c, _, _ in spec.trial_jobs], out)
    finals = final_jobs(spec, pick(spec, out))
    _train(finals, out)
    _fail(out / run_name(finals[0]))
    args = ["tune", "--file", sweep, "--out", out, "--trials", 2, "--final-seeds", "0,1"]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 1
    assert "1 runs not finished (1 failed: --retry-failed starts them over)" in result.output


def test_a_tuned_row_whose_runs_are_still_training_is_no_row(tmp_path):
    _train(expand(build_spec({}, {"methods": ["ce"], "seeds": [0]}, {"epochs": 3})), tmp_path)
    runs = scan_runs(tmp_path).runs
    labels = row_labels(runs, {"ce-not-trained-yet": "ce (tuned)", runs[0].name: "ce (tuned)"})
    assert set(labels) == {runs[0].name} and labels[runs[0].name] == "ce (tuned)"


def test_the_spread_plot_names_each_search_and_what_each_point_is(tmp_path):
    sweep = build_spec({"noise": [0.0, 0.2]}, {"methods": ["ce"], "seeds": [100]}, {"epochs": 3})
    spec = TuneSpec(bases=expand(sweep), trials=2, final_seeds=[0])
    _train([c for c, _, _ in spec.trial_jobs], tmp_path)
    record = tuning_record(spec, pick(spec, tmp_path))
    runs = {run.name: run for run in scan_runs(tmp_path).runs}
    (ax,) = tuning_spread(record, runs, "mean_class_acc").axes
    assert [t.get_text() for t in ax.get_xticklabels()] == sorted(record["groups"])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [
        "best validation acc over epochs (pick score)",
        "test mean_class_acc, val-selected epoch",
    ]


def test_an_interrupted_phase_records_the_picks_of_the_searches_it_finished(tmp_path, monkeypatch):
    class Interrupted(fake_engine.SerialExecutor):
        def run(self, jobs, trainer):
            for k, result in enumerate(super().run(jobs, FAKE)):
                yield result
                if k == 2:  # trial-major: ce 0, gce 0, ce 1: ce's search is complete
                    raise KeyboardInterrupt

    monkeypatch.setattr(tune_command, "local_executor", lambda *args: Interrupted())
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('methods = ["ce", "gce"]\n[base]\nepochs = 3\n')
    out = tmp_path / "out"
    args = ["tune", "--file", sweep, "--out", out, "--trials", 2, "--final-seeds", "0,1"]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code != 0
    recorded = json.loads((out / TUNING_FILE).read_text())["groups"].values()
    best = {group["method"]: group["best"] for group in recorded}
    spec = _spec(trials=2, methods=("ce", "gce"))
    assert best == {group["method"]: group["best"] for group in pick(spec, out).values()}
    assert best["ce"] is not None and best["gce"] is None


def test_a_held_directory_is_listed_by_a_dry_run_refused_or_waited_for(tmp_path, monkeypatch):
    class Fake(fake_engine.SerialExecutor):
        def run(self, jobs, trainer):
            return super().run(jobs, FAKE)

    monkeypatch.setattr(tune_command, "local_executor", lambda *args: Fake())
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('methods = ["ce"]\n[base]\nepochs = 3\n')
    out = tmp_path / "out"
    out.mkdir()
    args = ["tune", "--file", sweep, "--out", out, "--trials", 2, "--final-seeds", "0"]
    args = [str(a) for a in args]
    release = threading.Event()
    hold_lock(out / SWEEP_LOCK, 0.3, until=release)  # another sweep training into out
    listed = CliRunner().invoke(app, [*args, "--dry-run"])
    assert listed.exit_code == 0 and "search: 2 runs, 0 done" in listed.output
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "pass --wait to queue behind it" in refused.output
    assert sorted(p.name for p in out.iterdir()) == [SWEEP_LOCK]  # nothing trained
    started = time.perf_counter()
    release.set()
    waited = CliRunner().invoke(app, [*args, "--wait"])
    assert waited.exit_code == 0, waited.output
    assert time.perf_counter() - started >= 0.3  # queued behind the holder
    assert len(list(out.glob("*/done"))) == 3  # then trained the 2 trials and the pick
