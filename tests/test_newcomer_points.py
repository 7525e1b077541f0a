"""The newcomer's smaller points of issue 50, one test each."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.registry import METHODS

RESULTS = Path(__file__).resolve().parents[1] / "results"
runner = CliRunner(env={"COLUMNS": "250"})


def test_legend_says_when_a_one_seed_cell_is_bold():
    # The synthetic board has one seed: its bold cells are single seeds.
    one_seed = runner.invoke(app, ["table", str(RESULTS / "synthetic"), "--metric", "acc"])
    assert "**" in one_seed.output and "(n=1)" in one_seed.output
    assert "(in a column with none, among all cells)" in one_seed.output
    three_seeds = runner.invoke(app, ["table", str(RESULTS / "ferplus-cpu"), "--metric", "acc"])
    assert three_seeds.exit_code == 0
    assert "among all cells" not in three_seeds.output


def test_method_names_regardless_of_case():
    assert METHODS.canonical("NLA") == "nla" and METHODS.canonical("nla") == "nla"
    assert METHODS.canonical("nlaa") == "nlaa"  # left for get() to report, with its hint
    result = runner.invoke(app, ["run", "NLA", "--epochs", "0"])
    assert result.exit_code == 2 and "--epochs must be at least 1" in result.output


def test_profile_without_its_data_names_profile_and_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ferplus-cpu's data root is relative: not found here
    result = runner.invoke(app, ["run", "ce", "--profile", "ferplus-cpu"])
    assert result.exit_code == 2
    assert "profile ferplus-cpu" in result.output and "--data-root" in result.output
    assert not list(tmp_path.iterdir())  # nothing written


def test_one_run_is_not_runs(tmp_path):
    one = tmp_path / "mine"
    source = sorted((RESULTS / "synthetic" / "runs").glob("ce-*"))[0]
    shutil.copytree(source, one / source.name)
    result = runner.invoke(app, ["table", str(RESULTS / "synthetic"), str(one), "--metric", "acc"])
    assert result.exit_code == 0, result.output
    assert f"{one} (1 run;" in result.output and "(1 runs" not in result.output


def test_imbalance_help_says_the_head_shrinks():
    for command in ("run", "sweep"):
        result = runner.invoke(app, [command, "--help"])
        assert "shrinks the head class" in " ".join(result.output.split()), command
