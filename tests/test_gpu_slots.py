"""Many runs per GPU: worker placement over fake devices, run directories unchanged, and
``--jobs-per-device`` harmless on a machine without a GPU."""

from __future__ import annotations

import json

import fake_engine
import pytest
import torch
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.commands.common import local_executor
from fer_bench.sweeps import gpu_slots
from fer_bench.sweeps.executors import LocalExecutor
from fer_bench.sweeps.gpu_slots import (
    auto_jobs_per_device,
    parse_jobs_per_device,
    sweep_devices,
    visible_devices,
    worker_devices,
)
from fer_bench.sweeps.sweep import build_spec, expand, plan, run_sweep

FAKE = "fake_engine"
GIB = 2**30


def test_workers_interleave_over_devices_so_the_first_jobs_spread():
    assert worker_devices(["cuda:0", "cuda:1"], 3) == ["cuda:0", "cuda:1"] * 3
    assert worker_devices(["cuda:0"], 2) == ["cuda:0", "cuda:0"]


def test_cuda_means_every_visible_gpu_and_cuda_i_only_that_one():
    assert visible_devices("cuda", 3) == ["cuda:0", "cuda:1", "cuda:2"]
    assert visible_devices("cuda:1", 3) == ["cuda:1"]
    with pytest.raises(ValueError, match="only 2 CUDA GPU"):
        visible_devices("cuda:2", 2)
    with pytest.raises(ValueError, match="no CUDA GPU is visible"):
        visible_devices("cuda", 0)
    with pytest.raises(ValueError, match="use --workers"):
        visible_devices("cpu", 4)


def test_auto_fits_the_fullest_device_and_the_cores():
    assert auto_jobs_per_device([40 * GIB, 13 * GIB], cores=64, job_bytes=3 * GIB) == 4
    assert auto_jobs_per_device([140 * GIB], cores=16, job_bytes=3 * GIB) == 16
    assert auto_jobs_per_device([140 * GIB, 140 * GIB], cores=16, job_bytes=3 * GIB) == 8
    assert auto_jobs_per_device([1 * GIB], cores=16, job_bytes=3 * GIB) == 1


@pytest.mark.parametrize("text", ["0", "-1", "two", ""])
def test_jobs_per_device_must_be_a_count_or_auto(text):
    assert parse_jobs_per_device("auto") == "auto" and parse_jobs_per_device("3") == 3
    with pytest.raises(ValueError, match="positive integer or auto"):
        parse_jobs_per_device(text)


def test_sweep_devices_reads_the_visible_gpus_and_their_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (31 * GIB, 141 * GIB))
    assert sweep_devices("cuda", 2, cores=16) == ["cuda:0", "cuda:1"] * 2
    per_device = 31 // (gpu_slots.AUTO_JOB_BYTES // GIB)
    assert sweep_devices("cuda", "auto", cores=64) == ["cuda:0", "cuda:1"] * per_device
    assert sweep_devices("cuda:1", 1, cores=16) == ["cuda:1"]


def test_sweep_and_tune_build_their_local_workers_from_the_same_options(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert local_executor(None, "3", "cuda").devices == ["cuda:0", "cuda:1"] * 3
    assert local_executor(2, None, "cpu").devices == [None, None]
    assert local_executor(None, None, "cuda").devices == [None]


@pytest.mark.slow  # spawns worker processes that import torch: over 7 s
def test_each_worker_trains_on_its_device_into_the_usual_run_directory(tmp_path):
    jobs = expand(build_spec({}, {"methods": ["ce", "nla"], "seeds": [0, 1]}, {"epochs": 2}))
    planned = plan(jobs, tmp_path, FAKE)
    executor = LocalExecutor(devices=["cuda:0", "cuda:1"], cores=2)
    report = run_sweep(planned, tmp_path, executor, FAKE)
    assert [r.status for r in report.results] == ["done"] * 4
    devices = []
    for p in planned:  # the path planned from the cpu config is the one written
        config = json.loads((p.path / "config.json").read_text())
        assert config["hash"] == fake_engine.run_hash(p.cfg)
        devices.append(config["device"])
    assert set(devices) == {"cuda:0", "cuda:1"}
    assert devices[:2] == ["cuda:0", "cuda:1"]  # the first jobs spread over the devices


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs-per-device", "2"], "places jobs on GPUs; this sweep runs on 'cpu'"),
        (["--jobs-per-device", "2", "--device", "cuda"], "no CUDA GPU is visible here"),
        (["--jobs-per-device", "2", "--workers", "2"], "give it without --workers"),
        (["--jobs-per-device", "many", "--device", "cuda"], "positive integer or auto"),
    ],
)
@pytest.mark.parametrize("command", ["sweep", "tune"])
def test_jobs_per_device_without_a_gpu_is_one_clear_line(tmp_path, args, message, command):
    out = tmp_path / "o"
    grid = tmp_path / "grid.toml"
    grid.write_text('methods = ["ce"]\n')
    result = CliRunner().invoke(app, [command, "--file", str(grid), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not out.exists()
