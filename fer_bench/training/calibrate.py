"""This machine's pace for a config: a few-second measurement of its training step.

A board's records say how long its epochs took on the board's machine; a newcomer's
machine may be several times slower, or lack native bf16 and train in fp32.
:func:`measure_step` times the step every run of the config repeats (the backbone's
forward and backward under cross-entropy and the optimiser's update, on a batch of the
config's size, in the precision the runs will use here) for a few seconds, so that an
estimate can be scaled from the board's machine to this one (fer_bench/sweeps/board_time.py).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from fer_bench.config import RunConfig


@dataclass(frozen=True)
class StepTime:
    seconds: float  # median of the timed steps
    precision: str  # what the runs will use on this machine: "bf16" or "fp32"
    steps: int  # how many were timed


def measure_step(cfg: RunConfig, num_classes: int, budget_s: float = 3.0) -> StepTime:
    """Time ``cfg``'s training step on ``cfg.device`` for about ``budget_s`` seconds
    (at least 3 steps, after one untimed warm-up step), on random images."""
    import torch
    from torch.nn import functional

    from fer_bench.backbones import create_backbone
    from fer_bench.training.benchmarking import synchronize
    from fer_bench.training.optim import build_optimizer
    from fer_bench.training.precision import resolve_precision

    precision = resolve_precision(cfg.bf16, cfg.device)
    torch.manual_seed(0)
    backbone = create_backbone(cfg.backbone, num_classes, cfg.data.channels).to(cfg.device)
    params = [{"params": list(backbone.parameters()), "lr": cfg.optim.lr}]
    optimizer = build_optimizer(cfg.optim, params)
    size = cfg.data.image_size
    x = torch.randn(cfg.batch_size, cfg.data.channels, size, size, device=cfg.device)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(num_classes, (cfg.batch_size,), device=cfg.device)
    device_type = torch.device(cfg.device).type

    def step() -> None:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = functional.cross_entropy(backbone(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(cfg.device)

    step()  # the first step chooses kernels: not timed
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < budget_s:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return StepTime(statistics.median(times), precision, len(times))
