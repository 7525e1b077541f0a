"""Leaderboards: golden outputs, statistics, protocol labels, bad records, the CLI."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import fake_engine
import pytest
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.config import RunConfig
from fer_bench.methods.ce import CrossEntropy
from fer_bench.records import selection
from fer_bench.records.reading import ProtocolKey, scan_runs
from fer_bench.registry import METHODS
from fer_bench.reports.aggregate import build_leaderboard, paired_p
from fer_bench.reports.compare import compare
from fer_bench.sweeps.sweep import build_spec, expand, planned_runs, read_sweep_file

GOLDEN = Path(__file__).resolve().parent / "golden"
_spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)


@pytest.mark.parametrize(("name", "metrics", "selection", "fmt"), make_golden.OUTPUTS)
def test_golden_tables(tmp_path, name, metrics, selection, fmt):
    out = tmp_path / name
    args = [
        "table",
        str(make_golden.RECORDS),
        "--metric",
        ",".join(metrics),
        "--select",
        selection,
        "--format",
        fmt,
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.read_text() == (make_golden.EXPECTED / name).read_text()


def test_golden_markdown_on_stdout_and_corrupt_record_warning():
    result = CliRunner().invoke(app, ["table", str(make_golden.RECORDS)])
    assert result.exit_code == 0
    assert result.stdout == (make_golden.EXPECTED / "table.md").read_text()
    assert "unreadable record" in result.stderr and "config.json" in result.stderr


def test_golden_table_shows_every_case():
    md = (make_golden.EXPECTED / "table.md").read_text()
    first = md.split("### ")[1]
    rows = {
        line.split(" | ")[0].strip("| "): line
        for line in first.splitlines()
        if line.startswith("| ") and "Method" not in line
    }
    assert "**55.66 ± 0.83** (n=2/3) [2]" in rows["nla"]  # best, with a corrupt seed
    assert "(n=1/3, 1 stale) ?" in rows["scn"] and rows["scn"].endswith("missing |")
    assert "seed 0 is stale" in first and "method code changed" in first
    assert "≈" in rows["ce"]
    assert "seed 2 failed: non-finite loss" in first
    assert "seed 2 incomplete" in first
    assert "final.json: unreadable JSON" in first
    assert "config.json: unreadable JSON" in first


def _cfg(method: str, seed: int, **protocol) -> RunConfig:
    cfg = RunConfig(method=method, seed=seed, epochs=2)
    for key, value in protocol.items():
        setattr(cfg.protocol, key, value)
    return cfg


def _with_final(root: Path, cfg: RunConfig, edit: Callable[[dict], None]) -> None:
    """Write ``cfg``'s records, then apply ``edit`` to its final.json."""
    fake_engine.write_records(cfg, root)
    path = fake_engine.run_dir(cfg, root) / "final.json"
    final = json.loads(path.read_text())
    edit(final)
    path.write_text(json.dumps(final))


def _with_acc(root: Path, cfg: RunConfig, acc: float, epoch: int | None = None) -> None:
    """Write ``cfg``'s records with test accuracy ``acc`` at ``epoch`` (default: the epoch
    the val rule picks)."""
    fake_engine.write_records(cfg, root)
    path = fake_engine.run_dir(cfg, root) / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    picked = epoch or selection.rule("val").epochs(rows)[0]["epoch"]
    for row in rows:
        if row["epoch"] == picked:
            row["test"]["acc"] = acc
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


# Stand-in methods for table tests: records name a registered method.
for _name in "abc":
    METHODS.register(_name)(type(f"Stub{_name.upper()}", (CrossEntropy,), {}))


def test_best_tie_and_differs_from_paired_tests(tmp_path):
    values = {"a": [0.80, 0.82, 0.81], "b": [0.79, 0.83, 0.80], "c": [0.60, 0.61, 0.63]}
    for method, accs in values.items():
        for seed, acc in enumerate(accs):
            _with_acc(tmp_path, _cfg(method, seed), acc)
    board = build_leaderboard(scan_runs(tmp_path))
    col = board.columns[0]
    a, b, c = (board.cells[m, col] for m in "abc")
    assert a.best and not b.best and not c.best
    assert b.versus_best == "tie" and b.p_value > 0.05
    assert c.versus_best == "differs" and c.p_value < 0.05
    assert a.mean == pytest.approx(0.81) and a.std == pytest.approx(0.01)


def test_a_single_seed_cell_is_not_the_best_while_a_column_has_tested_cells(tmp_path):
    values = {"a": [0.80, 0.82, 0.81], "b": [0.60, 0.61, 0.63], "c": [0.95]}
    for method, accs in values.items():
        for seed, acc in enumerate(accs):
            _with_acc(tmp_path, _cfg(method, seed), acc)
    board = build_leaderboard(scan_runs(tmp_path))
    a, b, c = (board.cells[m, board.columns[0]] for m in "abc")
    assert a.best and not c.best  # c's higher mean rests on one seed
    assert b.versus_best == "differs" and c.versus_best == "untested"


def test_paired_p_edge_cases():
    assert paired_p({0: 0.5}, {0: 0.4}) is None  # one shared seed: untested
    assert paired_p({0: 0.5, 1: 0.6}, {1: 0.6, 2: 0.1}) is None
    assert paired_p({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6}) == 1.0  # identical runs
    assert paired_p({0: 0.9, 1: 0.8, 2: 0.85}, {0: 0.5, 1: 0.41, 2: 0.44}) < 0.01


def test_selection_rule_picks_its_epoch(tmp_path):
    cfg = _cfg("ce", 0)
    _with_acc(tmp_path, cfg, 0.9, epoch=1)  # the fake run's val accuracy peaks at epoch 2
    runset = scan_runs(tmp_path)
    oracle = build_leaderboard(runset, "acc", "oracle")
    val = build_leaderboard(runset, "acc", "val")
    col = oracle.columns[0]
    assert oracle.cells["ce", col].mean == 0.9
    assert val.cells["ce", col].mean != 0.9
    assert "optimistic" in oracle.title and "optimistic" not in val.title


def test_runs_of_one_method_under_other_settings_get_their_own_row(tmp_path):
    fake_engine.write_records(_cfg("ce", 0), tmp_path)
    longer = _cfg("ce", 0)
    longer.epochs = 3
    fake_engine.write_records(longer, tmp_path)
    board = build_leaderboard(scan_runs(tmp_path))
    assert board.rows == ["ce [epochs=2]", "ce [epochs=3]"]
    assert ("epochs", "varies: 2, 3") in board.setting


def test_setting_counts_runs_that_trained_in_fp32(tmp_path):
    for seed in range(3):
        fake_engine.write_records(_cfg("ce", seed), tmp_path)
    board = build_leaderboard(scan_runs(tmp_path))
    assert ("precision", "bf16") in board.setting  # records that predate the field
    out = fake_engine.run_dir(_cfg("ce", 2), tmp_path)
    final = json.loads((out / "final.json").read_text())
    (out / "final.json").write_text(json.dumps({**final, "precision": "fp32"}))
    board = build_leaderboard(scan_runs(tmp_path))
    assert ("precision", "varies: bf16 in 2, fp32 in 1 runs") in board.setting
    assert board.rows == ["ce"]  # the same config: one row, its mix stated


def test_mixed_datasets_are_refused(tmp_path):
    fake_engine.write_records(_cfg("ce", 0), tmp_path)
    other = _cfg("ce", 0)
    other.data.name = "ferplus"
    fake_engine.write_records(other, tmp_path)
    with pytest.raises(ValueError, match="mixes datasets"):
        build_leaderboard(scan_runs(tmp_path))


@pytest.mark.parametrize(
    ("protocol", "label"),
    [
        ({}, "clean"),
        ({"noise": "pairflip", "noise_rate": 0.0}, "clean"),
        ({"noise_rate": 0.3}, "sym 30%"),
        ({"noise_rate": 0.2, "imbalance": 50.0}, "exp IF50 + sym 20%"),
        ({"noise": "fer2013"}, "fer2013"),
        ({"noise": "file:/data/noise01.txt"}, "file noise01.txt"),
        ({"noise": "pairflip", "noise_rate": 0.1, "noise_on_val": False}, "pair 10% (clean val)"),
        ({"imbalance": 10.0, "imbalance_type": "step"}, "step IF10"),
    ],
)
def test_protocol_labels(protocol, label):
    assert ProtocolKey.from_config(_cfg("ce", 0, **protocol).to_dict()).label == label


@pytest.mark.parametrize(
    ("val_noise_rate", "label"), [(0.0, "file t.csv (clean val)"), (0.3, "file t.csv")]
)
def test_protocol_label_says_clean_val_when_the_record_does(tmp_path, val_noise_rate, label):
    # An index CSV labels the training split only: validation stays clean whatever the config says.
    cfg = _cfg("ce", 0, noise="file:/data/t.csv")
    labels = {"train_noise_rate": 0.3, "val_noise_rate": val_noise_rate}
    _with_final(tmp_path, cfg, lambda final: final.update(labels=labels))
    (run,) = scan_runs(tmp_path).runs
    assert cfg.protocol.noise_on_val
    assert run.protocol.label == label


def test_planned_seed_joins_the_clean_val_column_its_finished_seed_earned(tmp_path):
    done, planned = _cfg("ce", 0, noise="file:/data/t.csv"), _cfg("ce", 1, noise="file:/data/t.csv")
    labels = {"train_noise_rate": 0.3, "val_noise_rate": 0.0}
    _with_final(tmp_path, done, lambda final: final.update(labels=labels))
    runset = scan_runs(tmp_path)
    runset.runs += planned_runs([planned], tmp_path)
    board = build_leaderboard(runset)
    assert [c.label for c in board.columns] == ["file t.csv (clean val)"]
    assert board.progress == (1, 2)


def test_protocols_sort_clean_first_then_by_rate():
    keys = [
        ProtocolKey.from_config(_cfg("ce", 0, **p).to_dict())
        for p in (
            {"imbalance": 50.0},
            {"noise_rate": 0.3},
            {"noise": "fer2013"},
            {"noise_rate": 0.1},
            {},
        )
    ]
    ordered = [k.label for k in sorted(keys, key=ProtocolKey.sort_key)]
    assert ordered == ["clean", "sym 10%", "sym 30%", "fer2013", "exp IF50"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "top5"], "unknown metric 'top5'"),
        (["--select", "best"], "unknown selection rule 'best'"),
        (["--format", "pdf"], "unknown table format 'pdf'"),
    ],
)
def test_cli_bad_options(args, message):
    result = CliRunner().invoke(app, ["table", str(make_golden.RECORDS), *args])
    assert result.exit_code == 2 and message in result.output


def test_cli_missing_or_empty_dir(tmp_path):
    result = CliRunner().invoke(app, ["table", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such results directory" in result.output
    result = CliRunner().invoke(app, ["table", str(tmp_path)])
    assert result.exit_code == 2 and "no readable run records" in result.output


def test_cli_format_from_suffix_and_nothing_half_written(tmp_path):
    out = tmp_path / "board.tex"
    assert (
        CliRunner().invoke(app, ["table", str(make_golden.RECORDS), "--out", str(out)]).exit_code
        == 0
    )
    assert out.read_text().startswith("% fer-bench table") and r"\begin{table}" in out.read_text()
    result = CliRunner().invoke(app, ["table", str(make_golden.RECORDS), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.tex"]


def test_cli_sweep_file_shows_cells_not_run(tmp_path):
    runs = tmp_path / "runs"
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        'methods = ["ce", "scn"]\nseeds = [0, 1]\nnoise = [0.0, 0.3]\n[base]\nepochs = 2\n'
    )
    spec = build_spec(read_sweep_file(sweep), {}, {})
    jobs = {(c.method, c.seed, c.protocol.noise_rate): c for c in expand(spec)}
    for key in [("ce", 0, 0.0), ("ce", 1, 0.0), ("scn", 0, 0.0)]:
        fake_engine.write_records(jobs[key], runs)
    result = CliRunner().invoke(app, ["table", str(runs), "--sweep", str(sweep), "--metric", "acc"])
    assert result.exit_code == 0, result.output
    rows = {line.split(" | ")[0].strip("| "): line for line in result.stdout.splitlines()}
    assert rows["scn"].endswith("(n=1/2) ? | not run |")  # a planned seed is no footnote
    assert "(n=2)" in rows["ce"] and rows["ce"].endswith("| not run |")
    assert "3 of 8 planned runs done" in result.stdout and "[1]" not in result.stdout
    # Without the sweep file the table knows only the runs on disk.
    plain = CliRunner().invoke(app, ["table", str(runs), "--metric", "acc"]).stdout
    assert "sym 30%" not in plain and "seed 1 missing" in plain


def test_cli_several_sweep_files_and_cells_of_no_grid(tmp_path):
    """A board grown by a second grid (new methods on some columns only): both files plan
    their cells, a job in both is planned once, and a cell of neither grid is no gap."""
    runs = tmp_path / "runs"
    first, second = tmp_path / "sweep.toml", tmp_path / "sweep_more.toml"
    tail = "seeds = [0, 1]\n[base]\nepochs = 2\n"
    first.write_text('methods = ["ce"]\nnoise = [0.0, 0.3]\n' + tail)
    second.write_text('methods = ["ce", "gce"]\nnoise = [0.3]\n' + tail)
    for cfg in expand(build_spec(read_sweep_file(first), {}, {})):
        fake_engine.write_records(cfg, runs)
    args = ["table", str(runs), "--sweep", str(first), "--sweep", str(second), "--metric", "acc"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {line.split(" | ")[0].strip("| "): line for line in result.stdout.splitlines()}
    assert rows["gce"].endswith("| not in grid | not run |")
    assert "(n=2)" in rows["ce"] and "not" not in rows["ce"]
    assert "4 of 6 planned runs done" in result.stdout  # ce at 30 % is planned once
    without = CliRunner().invoke(app, ["table", str(runs), "--metric", "acc"]).stdout
    assert "gce" not in without and "not in grid" not in without


def test_compare_one_method_against_each(tmp_path):
    clean = {"a": [0.80, 0.82, 0.81], "b": [0.70, 0.71, 0.73], "c": [0.79, 0.83, 0.80]}
    for method, accs in clean.items():
        for seed, acc in enumerate(accs):
            _with_acc(tmp_path, _cfg(method, seed), acc)
    for method, acc in (("a", 0.5), ("b", 0.6)):  # one seed at 30 % noise
        _with_acc(tmp_path, _cfg(method, 0, noise="symmetric", noise_rate=0.3), acc)
    board = build_leaderboard(scan_runs(tmp_path))
    found = {(c.other, c.protocol.label): c for c in compare(board, "a")}
    versus_b, versus_c = found["b", "clean"], found["c", "clean"]
    assert versus_b.n == 3 and versus_b.diff == pytest.approx(0.0967, abs=1e-4)
    assert versus_b.verdict == "better" and versus_b.q < 0.05
    assert versus_c.verdict == "no difference shown"
    # Benjamini-Hochberg over the two tested pairs only (the untested ones do not count).
    assert versus_b.p < versus_c.p
    assert versus_c.q == pytest.approx(versus_c.p)
    assert versus_b.q == pytest.approx(min(2 * versus_b.p, versus_c.p))
    noisy = found["b", "sym 30%"]
    assert noisy.n == 1 and noisy.diff == pytest.approx(-0.1) and noisy.verdict == "untested"
    assert found["c", "sym 30%"].verdict == "no shared seeds"
    with pytest.raises(ValueError, match="rows: a, b, c"):
        compare(board, "nla")
    alone = tmp_path / "alone"
    _with_acc(alone, _cfg("a", 0), 0.8)
    with pytest.raises(ValueError, match="nothing to compare: 'a' is the table's only row"):
        compare(build_leaderboard(scan_runs(alone)), "a")

    result = CliRunner().invoke(app, ["compare", str(tmp_path), "a", "--metric", "acc"])
    assert result.exit_code == 0, result.output
    rows = {line.split(" | ")[0].strip("| "): line for line in result.stdout.splitlines()}
    assert rows["b"].startswith("| b | **+9.67 (n=3, q=") and rows["b"].endswith("| -10.00 (n=1) |")
    assert rows["c"].endswith("| – |") and "**" not in rows["c"]
