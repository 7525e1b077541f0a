"""checkpoint.save keeps the current checkpoint in place at every filesystem step."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fer_bench.records import checkpoint, layout


def test_the_current_checkpoint_exists_after_every_step_of_a_save(tmp_path, monkeypatch):
    path = tmp_path / layout.CHECKPOINT
    checkpoint.save(path, {"epoch": 1})
    checkpoint.save(path, {"epoch": 2})
    present: list[bool] = []

    def watched(real):
        def step(*args, **kwargs):
            result = real(*args, **kwargs)
            present.append(path.exists())  # a crash right here would find what is on disk
            return result

        return step

    for name in ("replace", "unlink", "rename"):
        monkeypatch.setattr(Path, name, watched(getattr(Path, name)))
    monkeypatch.setattr(os, "link", watched(os.link))
    checkpoint.save(path, {"epoch": 3})
    assert present and all(present), present
    assert torch.load(path, weights_only=True)["epoch"] == 3
    previous = tmp_path / layout.PREVIOUS_CHECKPOINT
    assert torch.load(previous, weights_only=True)["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, previous.name])
