"""The committed leaderboards in results/: finished real runs, tables that re-render from them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.records.layout import RUNS_DIR, TUNING_FILE
from fer_bench.records.reading import RunState, run_state, scan_runs
from fer_bench.records.selection import SELECTIONS
from fer_bench.reports.aggregate import build_leaderboard

ROOT = Path(__file__).resolve().parents[1]
BOARDS = sorted(p.parent for p in (ROOT / "results").glob("*/table.md"))


def _tracked_files(board: Path) -> list[Path]:
    """Files of the board's runs under version control (a run in progress is not)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot tell committed runs from local ones")
    listed = subprocess.run(
        ["git", "ls-files", "--", str(board / "runs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / f for f in listed]


def _tracked_run_dirs(board: Path) -> list[Path]:
    # A tuned board's runs/ also holds tuning.json, which is no run.
    return sorted({f.parent for f in _tracked_files(board)} - {board / "runs"})


def test_there_are_committed_leaderboards():
    assert {b.name for b in BOARDS} >= {"synthetic", "ferplus-cpu"}


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: p.name)
def test_committed_runs_are_finished_and_complete(board):
    runs = _tracked_run_dirs(board)
    assert runs, f"{board} has a table but no committed runs"
    for run in runs:
        state, reason = run_state(run)
        assert state is RunState.DONE, f"{run.name}: {state.value} {reason or ''}"
        final = json.loads((run / "final.json").read_text())
        assert final["environment"]["code"] and final["labels"]["train_sha256"]
        epochs = (run / "metrics.jsonl").read_text().splitlines()
        assert len(epochs) == json.loads((run / "config.json").read_text())["epochs"]
    checkpoints = [f for f in _tracked_files(board) if f.suffix == ".pt"]
    assert not checkpoints, f"checkpoints are not committed: {checkpoints}"


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: p.name)
def test_committed_table_renders_from_committed_runs(board, tmp_path):
    """table.md is exactly what `fer-bench table` makes of the committed runs: no number
    in it was typed by hand or comes from a run that is not there."""
    for run in _tracked_run_dirs(board):
        (tmp_path / run.name).symlink_to(run, target_is_directory=True)
    tuned = (board / RUNS_DIR / TUNING_FILE).exists()
    if tuned:  # as bench/refresh_board.sh: the confirming runs become "(tuned)" rows
        (tmp_path / TUNING_FILE).symlink_to(board / RUNS_DIR / TUNING_FILE)
    # The table command itself, with refresh_board.sh's arguments (every sweep*.toml; a
    # tuned board's sweep files are the search's grid, not rows of their own).
    grid = [arg for f in sorted(board.glob("sweep*.toml")) for arg in ("--sweep", str(f))]
    out = tmp_path / "table.md"
    args = ["table", str(tmp_path), *([] if tuned else grid), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.read_text() == (board / "table.md").read_text()


MARKER = "<!-- copied from table.md: do not edit below -->\n"


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: p.name)
def test_readme_sections_appear_once(board):
    """A README edited by hand over sessions keeps one copy of each section."""
    text = (board / "README.md").read_text().split(MARKER)[0]
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings and len(headings) == len(set(headings)), headings


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: p.name)
def test_readme_tables_are_the_committed_table(board):
    readme = (board / "README.md").read_text()
    if MARKER not in readme:
        pytest.skip(f"{board.name}/README.md embeds no generated table")
    assert readme.split(MARKER, 1)[1] == "\n" + (board / "table.md").read_text()


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: p.name)
def test_every_selection_rule_tables_every_committed_board(board):
    runset = scan_runs(board / "runs")
    for name in SELECTIONS.names():
        table = build_leaderboard(runset, "acc", name)
        values = [c.mean for c in table.cells.values() if c.values]
        assert values and all(0 < v < 1 for v in values), name
    oracle, val = (build_leaderboard(runset, "acc", n) for n in ("oracle", "val"))
    for key, cell in val.cells.items():  # the best test epoch is never below any other pick
        if cell.values:
            assert oracle.cells[key].mean >= cell.mean - 1e-12
