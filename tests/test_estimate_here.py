"""Honest estimates (issue 50): the board's time and this machine's, measured, with the
precision each trains in; method cost ratios never mix hosts or precisions."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

from fer_bench.profiles import load_profile
from fer_bench.records.reading import scan_runs
from fer_bench.sweeps.board_time import estimate
from fer_bench.training.calibrate import StepTime, measure_step

BOARD = Path(__file__).resolve().parents[1] / "results" / "synthetic"


def _jobs(n: int = 2) -> list:
    cfg = load_profile("synthetic-cpu")
    cfg.epochs = 12
    return [cfg] * n


def test_ratios_leave_out_runs_of_another_precision(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(BOARD / "runs", runs)
    text = estimate(scan_runs(runs), _jobs())
    dearest = text.rsplit("(", 1)[1].split(")")[0]  # "... to 1.80x (nla) CE's"
    for final in runs.glob(f"{dearest}-*/final.json"):  # as if trained in fp32 elsewhere
        record = json.loads(final.read_text())
        record["precision"] = "fp32"
        final.write_text(json.dumps(record))
    assert f"({dearest})" not in estimate(scan_runs(runs), _jobs())


def test_this_machines_estimate_scales_by_the_measured_step():
    board = scan_runs(BOARD)
    ce = [r for r in board.runs if r.method == "ce"]
    steps = [
        row["train_time_s"] / (r.final["labels"]["n_train"] // r.config["batch_size"])
        for r in ce
        for row in r.epochs
    ]
    board_step = statistics.median(steps)
    text = estimate(board, _jobs(), StepTime(board_step * 4, "fp32", 3))
    assert "On this machine, in fp32: about " in text
    assert f"4.00x the board's {board_step:.3f} s" in text


def test_measure_step_times_the_profiles_step():
    cfg = load_profile("synthetic-cpu")
    cfg.batch_size = 8
    step = measure_step(cfg, num_classes=7, budget_s=0.1)
    assert step.seconds > 0 and step.steps >= 3 and step.precision in ("bf16", "fp32")
