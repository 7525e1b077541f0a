"""Measuring helpers shared by the speed benchmarks (bench/speed.py, bench/gpu_speed.py):
the device's name, its measured matmul peak, a model's training FLOPs, an engine run's
training images/s."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from fer_bench.config import RunConfig
from fer_bench.records.environment import cpu_model
from fer_bench.records.identity import run_name
from fer_bench.records.layout import METRICS


def synchronize(device: str) -> None:
    """Wait for the device's queued work: a GPU timer read before it would time nothing."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model as /proc/cpuinfo gives it."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def matmul_peak(dtype: torch.dtype, device: str = "cpu", n: int = 2048, reps: int = 10) -> float:
    """FLOP/s of an n x n matmul in ``dtype`` on ``device``, measured."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    synchronize(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    synchronize(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def training_flops_per_image(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """FLOPs of one forward and backward of cross-entropy on the batch ``x``, per image."""
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(net(x), y).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops() / x.shape[0]


def last_epoch(cfg: RunConfig, out_root: Path) -> dict:
    """The last metrics row of ``cfg``'s run under ``out_root``."""
    lines = (Path(out_root) / run_name(cfg) / METRICS).read_text().splitlines()
    return json.loads(lines[-1])


def train_images_per_s(cfg: RunConfig, final: dict, out_root: Path) -> float:
    """Training images/s of the run's last epoch (the first pays the start-up: kernel
    selection, compilation), over the full batches it trains."""
    trained = final["labels"]["n_train"] // cfg.batch_size * cfg.batch_size
    return trained / last_epoch(cfg, out_root)["train_time_s"]
