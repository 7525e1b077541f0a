"""``sweep --board``: a committed board's exact grid for new methods, and its time estimate.

The committed boards are read only; nothing here trains."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import fake_engine
import pytest
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.records.identity import experiment
from fer_bench.records.reading import RunState, scan_runs
from fer_bench.reports.comparable import setting_values
from fer_bench.sweeps.board_grid import board_spec, check_grid
from fer_bench.sweeps.board_time import estimate
from fer_bench.sweeps.sweep import build_spec, expand, plan, read_sweep_file

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = """
from fer_bench.methods.base import Batch, Method, StepOutput
from fer_bench.registry import METHODS
import torch.nn.functional as F


@METHODS.register("mine")
class Mine(Method):
    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        return StepOutput(loss=F.cross_entropy(self.backbone(batch.x).float(), batch.y))
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file for the module: a method registers once per process."""
    path = tmp_path_factory.mktemp("plugin") / "mine.py"
    path.write_text(PLUGIN)
    return path


def _cells(identities: list[dict]) -> set[tuple[str, int]]:
    return {
        (json.dumps({k: v for k, v in i["protocol"].items() if k != "noise_seed"}), i["seed"])
        for i in identities
    }


@pytest.mark.parametrize(
    ("board", "cells"), [("results/synthetic", 2), ("results/ferplus-cpu", 18)]
)
def test_new_method_gets_the_boards_grid_and_settings(plugin, board, cells):
    spec = board_spec(ROOT / board, ["mine"], None, {"plugin": str(plugin)})
    jobs = expand(spec)
    board_runs = check_grid(ROOT / board, jobs)
    planned = [experiment(cfg) for cfg in jobs]
    recorded = [r.identity for r in board_runs.runs]
    assert len(jobs) == cells and {cfg.method for cfg in jobs} == {"mine"}
    assert _cells(planned) == _cells(recorded)
    assert setting_values(planned) == setting_values(recorded)


@pytest.mark.parametrize(
    ("board", "outside"),
    [
        ("results/ferplus-cpu", set()),
        ("results/synthetic", {"nla-7d26d029c638", "nla-e3c81e6d02e0"}),
    ],
)
def test_committed_sweep_files_plan_their_boards_runs(board, outside):
    """Every committed run is planned by one of the board's sweep files and finished; only
    the runs of another sweep's --set (synthetic's NLA with detach_weight=true) lie outside
    every grid. The board's first grid (sweep.toml) is complete; a later one (ferplus-cpu's
    sweep_trainer_methods.toml) may still be training."""
    runs = ROOT / board / "runs"
    planned = {
        file.name: plan(expand(build_spec(read_sweep_file(file), {}, {})), runs)
        for file in sorted((ROOT / board).glob("sweep*.toml"))
    }
    finished = (RunState.DONE, RunState.STALE)
    assert all(p.state in finished for p in planned["sweep.toml"])
    committed = {path.name for path in runs.iterdir()}
    in_grid = {p.path.name: p.state for grid in planned.values() for p in grid}
    assert committed - set(in_grid) == outside
    assert all(in_grid[name] in finished for name in committed & set(in_grid))


def test_dry_run_lists_the_jobs_and_the_estimate(plugin, tmp_path):
    args = ["sweep", "--board", str(ROOT / "results/synthetic"), "--methods", "mine"]
    args += ["--plugin", str(plugin), "--out", str(tmp_path / "my-runs"), "--dry-run"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "2 todo" in text and "2 runs, about " in text
    assert "Linux x86_64, 2 CPUs, no GPU, in bf16, from its records" in text
    assert "On this machine, in " in text and "training step measured here" in text
    assert not (tmp_path / "my-runs").exists()


def test_estimate_is_ces_median_epoch_times_the_epochs_to_train(plugin):
    board = ROOT / "results/synthetic"
    board_runs = scan_runs(board)
    jobs = expand(board_spec(board, ["mine"], None, {"plugin": str(plugin)}))
    times = [
        json.loads(line)["time_s"]
        for path in sorted((board / "runs").glob("ce-*/metrics.jsonl"))
        for line in path.read_text().splitlines()
    ]
    minutes = statistics.median(times) * 12 * 2 / 60
    text = estimate(board_runs, jobs)
    assert text.startswith(f"2 runs, about {minutes:.0f} min on a machine like the board's")
    assert f"CE's median epoch there took {statistics.median(times):.1f} s" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--epochs", "2"], "--epochs would change them"),
        (["--seeds", "0,1", "--profile", "ferplus-cpu"], "--profile, --seeds would change"),
    ],
)
def test_options_that_change_the_grid_are_refused(plugin, tmp_path, extra, message):
    args = ["sweep", "--board", str(ROOT / "results/synthetic"), "--methods", "mine"]
    args += ["--plugin", str(plugin), "--out", str(tmp_path / "out"), "--dry-run", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in " ".join(result.output.split())


def test_the_board_itself_is_no_output_directory(plugin):
    board = ROOT / "results/synthetic"
    args = ["sweep", "--board", str(board), "--methods", "mine", "--plugin", str(plugin)]
    result = CliRunner().invoke(app, [*args, "--out", str(board / "runs"), "--dry-run"])
    assert result.exit_code == 2 and "is the board's own directory" in result.output


def _fake_board(root: Path, sweep: str, seeds=(0,)) -> Path:
    for seed in seeds:
        for rate in (0.0, 0.3):
            cfg = build_spec({}, {}, {"epochs": 2}).base
            cfg.method, cfg.seed, cfg.protocol.noise_rate = "ce", seed, rate
            fake_engine.write_records(cfg, root / "runs")
    (root / "sweep.toml").write_text(sweep)
    return root


def test_a_sweep_file_that_drifted_from_its_runs_is_refused(plugin, tmp_path):
    grid = 'methods = ["ce"]\nnoise = [0.0, 0.3]\n'
    ok = _fake_board(tmp_path / "ok", grid + "seeds = [0]\n[base]\nepochs = 2\n")
    check_grid(ok, expand(board_spec(ok, ["ce"], None, {})))
    longer = _fake_board(tmp_path / "longer", grid + "seeds = [0]\n")
    with pytest.raises(ValueError, match=r"epochs 2 in .*runs, 12 in the jobs sweep.toml plans"):
        check_grid(longer, expand(board_spec(longer, ["ce"], None, {})))
    wider = _fake_board(tmp_path / "wider", grid + "seeds = [0, 1]\n[base]\nepochs = 2\n")
    with pytest.raises(ValueError, match="planned, not on the board: clean seed 1, sym 30% seed 1"):
        check_grid(wider, expand(board_spec(wider, ["ce"], None, {})))


def test_a_board_without_a_sweep_file_is_refused(tmp_path):
    (tmp_path / "board" / "runs").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no sweep.toml in"):
        board_spec(tmp_path / "board" / "runs", ["ce"], None, {})
