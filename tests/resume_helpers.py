"""Helpers of the tests that kill a run and resume it: the kill, and what must match."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import fer_bench.records.checkpoint as checkpoint
from fer_bench.records import layout
from fer_bench.records.layout import METRICS

TIMES = ("time_s", "train_time_s")  # wall times: the only fields a resume may change


def crash_after_save(monkeypatch, at: int = 1) -> None:
    """The process dies (KeyboardInterrupt) right after the ``at``-th checkpoint is
    written; saving works normally again after that."""
    real_save = checkpoint.save
    calls = {"n": 0}

    def save(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == at:
            monkeypatch.setattr(checkpoint, "save", real_save)
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save)


def rows_without_times(run: Path) -> list[dict]:
    """The run's metrics.jsonl rows without their wall times."""
    rows = [json.loads(line) for line in (run / METRICS).open()]
    return [{k: v for k, v in r.items() if k not in TIMES} for r in rows]


def same_method_state(full: Path, cut: Path) -> dict[str, torch.Tensor]:
    """Assert the two runs' final checkpoints hold equal method states; return one."""
    a, b = (torch.load(d / layout.CHECKPOINT)["method"] for d in (full, cut))
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key
    return a
