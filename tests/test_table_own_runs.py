"""``fer-bench table`` over one's own runs (issue 50): a folder mixing datasets gives one
table per dataset, a single run directory is a table of one run, refusals say what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from fer_bench.cli import app

RESULTS = Path(__file__).resolve().parents[1] / "results"
runner = CliRunner()


def _first(board: str, method: str) -> Path:
    return sorted((RESULTS / board / "runs").glob(f"{method}-*"))[0]


def _mixed(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    for source in (_first("synthetic", "ce"), _first("ferplus-cpu", "ce")):
        shutil.copytree(source, runs / source.name)
    return runs


def test_mixed_datasets_make_one_table_each(tmp_path):
    result = runner.invoke(app, ["table", str(_mixed(tmp_path)), "--metric", "acc"])
    assert result.exit_code == 0, result.output
    assert "## ferplus (1 run)" in result.output and "## synthetic (1 run)" in result.output
    assert result.output.count("### Overall test accuracy") == 2


def test_mixed_datasets_in_one_file_format_say_what_to_do(tmp_path):
    runs = _mixed(tmp_path)
    refused = runner.invoke(app, ["table", str(runs), "--format", "csv"])
    assert refused.exit_code == 2
    assert "--dataset NAME" in refused.output and "ferplus, synthetic" in refused.output
    one = runner.invoke(app, ["table", str(runs), "--format", "csv", "--dataset", "synthetic"])
    assert one.exit_code == 0 and "ferplus" not in one.output
    unknown = runner.invoke(app, ["table", str(runs), "--dataset", "rafdb"])
    assert unknown.exit_code == 2 and "it has: ferplus, synthetic" in unknown.output


def test_one_run_directory_is_a_table(tmp_path):
    run = _first("synthetic", "nla")
    result = runner.invoke(app, ["table", str(run), "--metric", "acc"])
    assert result.exit_code == 0, result.output
    assert "| nla |" in result.output.replace("**", "")
