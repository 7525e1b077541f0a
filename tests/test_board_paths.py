"""table, compare and plot read a board directory (results/NAME) as well as its runs/."""

from __future__ import annotations

import fake_engine
import pytest
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.config import RunConfig
from fer_bench.records.reading import scan_runs


@pytest.fixture
def board(tmp_path):
    for method in ("ce", "nla"):
        for seed in (0, 1):
            cfg = RunConfig(method=method, seed=seed, epochs=2)
            cfg.protocol.noise_rate = 0.3
            fake_engine.write_records(cfg, tmp_path / "board" / "runs")
    (tmp_path / "board" / "README.md").write_text("a board's tables live beside runs/\n")
    return tmp_path / "board"


def test_scan_runs_reads_a_board_directory(board):
    assert len(scan_runs(board).runs) == len(scan_runs(board / "runs").runs) == 4


@pytest.mark.parametrize(
    "command",
    [["table", "{dir}"], ["compare", "{dir}", "nla"], ["plot", "{dir}", "--out", "{tmp}/plots"]],
)
def test_commands_accept_a_board_directory(board, tmp_path, command):
    args = [a.format(dir=board, tmp=tmp_path) for a in command]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no readable run records" not in result.output
