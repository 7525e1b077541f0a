"""Optimisers and learning-rate schedules from config, stepped once per iteration."""

from __future__ import annotations

import math

import torch

from fer_bench.config import OptimConfig


def build_optimizer(cfg: OptimConfig, param_groups: list[dict]) -> torch.optim.Optimizer:
    if cfg.name == "adam":
        return torch.optim.Adam(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            param_groups,
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=True,
        )
    raise ValueError(f"unknown optimizer {cfg.name!r}; known: adam, adamw, sgd")


class LrFactor:
    """Multiplier of each group's base lr at iteration ``step`` (picklable for checkpoints).

    onecycle: cosine rise from 1/25 over ``warmup_frac`` of training, cosine fall to ~0
    (torch's OneCycleLR shape); cosine: cosine fall to 0; exponential: gamma per epoch,
    as the official FER repos step ExponentialLR once per epoch; constant: 1.
    """

    def __init__(self, cfg: OptimConfig, epochs: int, steps_per_epoch: int) -> None:
        if cfg.schedule not in ("onecycle", "cosine", "exponential", "constant"):
            raise ValueError(
                f"unknown schedule {cfg.schedule!r}; known: onecycle, cosine, exponential, constant"
            )
        self.schedule = cfg.schedule
        self.gamma = cfg.gamma
        self.warmup_frac = cfg.warmup_frac
        self.steps_per_epoch = steps_per_epoch
        self.total = epochs * steps_per_epoch

    def __call__(self, step: int) -> float:
        t = min(step / max(self.total, 1), 1.0)
        if self.schedule == "constant":
            return 1.0
        if self.schedule == "exponential":
            return self.gamma ** (step // self.steps_per_epoch)
        if self.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        start, end = 1 / 25, 1 / 25e4
        if t < self.warmup_frac:
            w = t / self.warmup_frac
            return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * w))
        w = (t - self.warmup_frac) / (1 - self.warmup_frac)
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * w))


def build_scheduler(
    cfg: OptimConfig, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LrFactor(cfg, epochs, steps_per_epoch))
