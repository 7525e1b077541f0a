"""bench/sweep_time.py: epochs of runs trained under other threads, precision or CPU
are reported apart, each method relative to CE under the same setting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fer_bench.records.environment import environment

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "sweep_time.py"


def _run(
    root: Path,
    name: str,
    method: str,
    epochs: list[float],
    env: dict,
    precision: str,
    n_train: int = 100,
):
    run = root / name
    run.mkdir()
    final = {
        "method": method,
        "time_s": sum(epochs),
        "precision": precision,
        "environment": env,
        "labels": {"n_train": n_train},
    }
    (run / "final.json").write_text(json.dumps(final))
    rows = [json.dumps({"epoch": i, "train_time_s": t}) for i, t in enumerate(epochs, 1)]
    (run / "metrics.jsonl").write_text("\n".join(rows) + "\n")


def test_settings_are_reported_apart_and_old_records_name_no_cpu(tmp_path):
    xeon = {"torch_threads": 1, "cpu": "Intel Xeon"}
    _run(tmp_path, "ce-a", "ce", [7.0, 8.0, 9.0], xeon, "bf16")
    _run(tmp_path, "nla-a", "nla", [16.0, 16.0], xeon, "bf16")
    _run(tmp_path, "nla-b", "nla", [48.0, 48.0], xeon, "bf16", n_train=300)
    _run(tmp_path, "ce-b", "ce", [22.0, 22.0], {"torch_threads": 2}, "fp32")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    # core-hours: 24, 32 and 96 s on 1 thread, 44 s on 2: 240 core-seconds
    hours = "0.07 CPU core-hours (wall time x torch threads)"
    assert out[0] == f"4 runs, 0.05 h wall time in all (196 s), {hours}"
    assert out[1:] == [
        " trained with 1 torch threads, bf16, on Intel Xeon, 100 training images:",
        "  ce     median training epoch    8.0 s  (1.00x CE)",
        "  nla    median training epoch   16.0 s  (2.00x CE)",
        " trained with 1 torch threads, bf16, on Intel Xeon, 300 training images:",
        "  nla    median training epoch   48.0 s  (no CE runs)",
        " trained with 2 torch threads, fp32, on an unrecorded CPU, 100 training images:",
        "  ce     median training epoch   22.0 s  (1.00x CE)",
    ]


def _cpuinfo_model_names() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]


@pytest.mark.skipif(not _cpuinfo_model_names(), reason="no model name in /proc/cpuinfo here")
def test_records_name_the_cpu_model_not_the_architecture():
    assert environment("cpu")["cpu"] == _cpuinfo_model_names()[0]
