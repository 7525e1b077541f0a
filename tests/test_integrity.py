"""Integrity: no code runs from a record; what is read back is checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_engine import write_records
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.config import RunConfig

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _booby_trap(tmp_path: Path) -> tuple[Path, Path]:
    """A plugin file that would write a marker when imported, and that marker's path."""
    marker = tmp_path / "MARKER"
    plugin = tmp_path / "evil.py"
    plugin.write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('ran')\n"
        "from fer_bench.methods.ce import CE\n"
        "from fer_bench.registry import METHODS\n"
        "METHODS.register('evil')(type('Evil', (CE,), {}))\n"
    )
    return plugin, marker


@pytest.fixture
def trapped_board(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A results directory whose records name the booby-trapped plugin: a ce run and a
    run of the method only that plugin registers."""
    plugin, marker = _booby_trap(tmp_path)
    root = tmp_path / "downloaded"
    runs = []
    for seed in (0, 1):
        cfg = RunConfig(epochs=2, seed=seed)
        write_records(cfg, root)
        runs.append(next(p for p in root.iterdir() if p.name.startswith("ce-") and p not in runs))
    for run, method in zip(runs, ("ce", "evil"), strict=True):
        config = json.loads((run / "config.json").read_text())
        config.update(method=method, plugin=str(plugin))
        (run / "config.json").write_text(json.dumps(config))
    return root, runs[1], marker


def test_no_command_imports_a_plugin_a_record_names(trapped_board, tmp_path):
    root, evil_run, marker = trapped_board
    invoke("table", root)
    invoke("compare", root, "ce")
    invoke("plot", root, "--out", tmp_path / "plots")
    result = invoke("run", "--resume", evil_run, "--quiet")
    assert not marker.exists()
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "method 'evil' is not loaded" in text and "--plugin" in text
    assert str(evil_run.parent.parent / "evil.py") in text  # named, for the user to judge


def test_a_table_names_the_method_that_is_not_loaded(trapped_board):
    root, _, marker = trapped_board
    result = invoke("table", root)
    assert "method 'evil' is not loaded" in " ".join(result.output.split())
    assert not marker.exists()
