"""bench/refresh_board.sh: a board's tables, comparison, plots and README copy from done runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fake_engine
import pytest
from test_results_committed import MARKER

from fer_bench.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


def _refresh(*args: str | Path) -> subprocess.CompletedProcess:
    # fer-bench and python from this interpreter's environment, as in an activated venv.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(ROOT / "bench" / "refresh_board.sh"), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
    )


def _cfg(method: str, seed: int, **hparams: str) -> RunConfig:
    cfg = RunConfig(method=method, seed=seed, epochs=3, hparams=dict(hparams))
    cfg.protocol.noise, cfg.protocol.noise_rate = "symmetric", 0.3
    return cfg


def _board(tmp_path: Path, sweep: str | None) -> Path:
    board = tmp_path / "board"
    board.mkdir()
    (board / "README.md").write_text(f"# a board\n\n{MARKER}\nstale table\n")
    if sweep is not None:
        (board / "sweep.toml").write_text(sweep)
    return board


# slow: each refresh starts about ten fer-bench processes
@pytest.mark.slow
def test_grid_board_leaves_out_unfinished_runs(tmp_path):
    grid = 'methods = ["ce", "nla"]\nseeds = [0, 1, 2]\nnoise = [0.3]\n[base]\nepochs = 3\n'
    board = _board(tmp_path, grid)
    for method, seed in [("ce", 0), ("ce", 1), ("nla", 0), ("nla", 1)]:
        fake_engine.write_records(_cfg(method, seed), board / "runs")
    fake_engine.write_records(_cfg("nla", 2), board / "runs", epochs=1)  # in progress
    result = _refresh(board)
    assert result.returncode == 0, result.stderr
    table = (board / "table.md").read_text()
    assert "4 of 6 planned runs done" in table and "incomplete" not in table
    assert "| nla | **" in table and "(n=2/3)" in table
    assert (board / "README.md").read_text() == f"# a board\n\n{MARKER}\n{table}"
    assert (board / "table.tex").read_text().startswith("% fer-bench table: needs")
    assert "(n=2, q=" in (board / "compare_nla.md").read_text()
    assert "ce minus each method" in (board / "compare_ce.md").read_text()
    assert (board / "compute.txt").read_text().startswith("4 runs")
    assert list((board / "plots").glob("*.png"))


@pytest.mark.slow
def test_board_without_grid_compares_the_named_row(tmp_path):
    board = _board(tmp_path, None)
    for seed in (0, 1):
        fake_engine.write_records(_cfg("nla", seed), board / "runs")
        fake_engine.write_records(_cfg("nla", seed, lam_c="0.125"), board / "runs")
    result = _refresh(board, "nla [defaults]")
    assert result.returncode == 0, result.stderr
    compared = (board / "compare_nla.md").read_text()
    assert "nla [defaults] minus each method" in compared
    assert "| nla [lam_c=0.125] |" in compared
    assert "planned runs" not in (board / "table.md").read_text()
    assert not (board / "compare_ce.md").exists()  # no ce runs on this board


@pytest.mark.slow
def test_board_of_one_row_writes_no_comparison(tmp_path):
    board = _board(tmp_path, None)
    fake_engine.write_records(_cfg("ce", 0), board / "runs")
    result = _refresh(board)
    assert result.returncode == 0, result.stderr
    assert (board / "table.md").exists()
    assert not list(board.glob("compare_*.md"))  # ce against nothing says nothing


def test_missing_marker_is_an_error(tmp_path):
    board = _board(tmp_path, None)
    (board / "README.md").write_text("# no marker\n")
    fake_engine.write_records(_cfg("ce", 0), board / "runs")
    result = _refresh(board)
    assert result.returncode != 0 and "marker line missing" in result.stderr
    assert sorted(p.name for p in board.iterdir()) == ["README.md", "runs"]  # nothing written


@pytest.mark.parametrize("args", [[], ["/nonexistent/board"]])
def test_bad_board_argument(args):
    result = _refresh(*args)
    assert result.returncode != 0 and (not args or "nonexistent" in result.stderr)


@pytest.mark.slow
def test_tuned_board_shows_tuned_rows_not_trials(tmp_path):
    from test_tuning_report import _boards

    _, tuned, _ = _boards(tmp_path)
    board = _board(tmp_path, 'methods = ["ce", "nla"]\n')  # the search's grid: no rows of its own
    tuned.rename(board / "runs")
    result = _refresh(board, "nla (tuned)")
    assert result.returncode == 0, result.stderr
    table = (board / "table.md").read_text()
    assert "| ce (tuned) |" in table and "| nla (official recipe) |" in table
    rows = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")}
    assert not any("optim.lr=" in row for row in rows)  # a trial would be labelled by lr
    assert "planned runs" not in table
    assert "nla (tuned) minus each method" in (board / "compare_nla.md").read_text()
    assert (board / "plots" / "tuning_spread.png").stat().st_size > 0
