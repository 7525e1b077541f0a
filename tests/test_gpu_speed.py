"""bench/gpu_speed.py: its official-style data path, and the whole script at its quick
CPU size (the figures it writes, with the device named)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_speed.py"


def _script():
    spec = importlib.util.spec_from_file_location("gpu_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_official_path_decodes_each_png_to_a_transformed_rgb_sample(tmp_path):
    gpu_speed = _script()
    faces = np.random.default_rng(0).integers(0, 256, (3, 1, 48, 48), dtype=np.uint8)
    files = gpu_speed.write_pngs(faces, tmp_path)
    data = gpu_speed.DecodedPerSample(files, np.array([4, 0, 2]), gpu_speed.official_transform(64))
    image, label = data[0]
    assert len(data) == 3 and label == 4
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32


@pytest.mark.slow
def test_quick_run_on_cpu_writes_every_figure_with_the_device_named(tmp_path):
    out = tmp_path / "speed.json"
    env = {
        **os.environ,
        "FER_BENCH_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["device_name"] and report["quick"] is True
    assert report["bf16_matmul_peak_tflops"] > 0
    (pack,) = report["packed"]
    assert pack["jobs"] == 2 and len(pack["train_images_per_s_per_job"]) == 2
    assert pack["jobs_per_minute"] > 0 and pack["train_images_per_s_sum"] > 0
    for profile in ("ferplus-gpu", "rafdb-paper"):
        row = report[profile]
        assert row["train_images_per_s"] > 0 and row["train_gflops_per_image"] > 0
        assert row["fraction_of_bf16_peak"] > 0
    assert report["rafdb-paper"]["backbone"] == "resnet18"
    assert report["rafdb-paper"]["input"] == [3, 32]
    official = report["official_loop"]
    assert official["train_images_per_s"] > 0
    assert official["engine_ratio"] == pytest.approx(
        report["rafdb-paper"]["train_images_per_s"] / official["train_images_per_s"]
    )
