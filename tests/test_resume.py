"""Resume that never loses work: rerunning resumes, broken checkpoints fall back or
restart with a message, one process per run directory, weights-only checkpoints,
collapse flagged. The micro dataset (conftest) keeps each run short."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from lock_helpers import hold_lock
from resume_helpers import crash_after_save
from typer.testing import CliRunner

import fer_bench.records.checkpoint as checkpoint
import fer_bench.training.engine as engine
from fer_bench.cli import app
from fer_bench.data.loaders.synthetic import CLASSES
from fer_bench.methods.base import Method
from fer_bench.records import layout
from fer_bench.records.lock import RunBusy
from fer_bench.registry import METHODS


def _train(cfg, root: Path, bundle, messages: list[str] | None = None, **kwargs) -> dict:
    say = messages.append if messages is not None else (lambda m: None)
    return engine.train(cfg, root, progress=False, bundle=bundle, notify=say, **kwargs)


def _interrupted(cfg, root, bundle, monkeypatch, at: int = 1) -> Path:
    crash_after_save(monkeypatch, at)
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, root, bundle)
    return engine.run_dir(cfg, root)


def test_rerunning_resumes_from_the_checkpoint(micro_bundle, micro_config, tmp_path, monkeypatch):
    out = _interrupted(micro_config, tmp_path, micro_bundle, monkeypatch)
    messages: list[str] = []
    final = _train(micro_config, tmp_path, micro_bundle, messages)
    assert final["status"] == "done" and final["epochs_completed"] == 2
    assert any("resumed from epoch 1" in m for m in messages), messages
    assert final["collapsed"] is None or final["collapsed"].startswith("predicts")
    again: list[str] = []
    _train(micro_config, tmp_path, micro_bundle, again)
    assert any("already done" in m for m in again)
    # weights_only: the checkpoint holds tensors and plain values only
    state = torch.load(out / layout.CHECKPOINT, weights_only=True)
    assert state["epoch"] == 2 and torch.load(out / layout.PREVIOUS_CHECKPOINT)["epoch"] == 1


def test_truncated_checkpoint_falls_back_to_the_previous(
    micro_bundle, micro_config, tmp_path, monkeypatch
):
    cfg = replace(micro_config, epochs=3)
    out = _interrupted(cfg, tmp_path, micro_bundle, monkeypatch, at=2)
    ckpt = out / layout.CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    messages: list[str] = []
    final = _train(cfg, tmp_path, micro_bundle, messages)
    assert final["status"] == "done" and final["epochs_completed"] == 3
    assert any("checkpoint.pt unreadable" in m for m in messages), messages
    assert any("falling back to checkpoint.prev.pt (epoch 1)" in m for m in messages)
    assert any("resumed from epoch 1" in m for m in messages)
    assert all("\n" not in m for m in messages)


class _Payload:
    """Pickled, it would run code on load: weights_only refuses it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_unreadable_checkpoints_restart_with_a_message(
    micro_bundle, micro_config, tmp_path, monkeypatch
):
    out = _interrupted(micro_config, tmp_path, micro_bundle, monkeypatch)
    marker = tmp_path / "code-ran"
    torch.save({"epoch": 1, "payload": _Payload(marker)}, out / layout.CHECKPOINT)
    messages: list[str] = []
    final = _train(micro_config, tmp_path, micro_bundle, messages)
    assert not marker.exists()  # the pickled code never ran
    assert final["status"] == "done" and final["epochs_completed"] == 2
    assert any("starting over (checkpoint.pt unreadable: UnpicklingError" in m for m in messages)


def test_a_failed_checkpoint_write_leaves_no_tmp(micro_bundle, micro_config, tmp_path, monkeypatch):
    real_fsync = os.fsync

    def disk_full(fd: int) -> None:  # the checkpoint's bytes half written, then no space
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".pt.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_full)
    out = engine.run_dir(micro_config, tmp_path)
    with pytest.raises(OSError, match=f"disk full: no space left in {out}; free some"):
        _train(micro_config, tmp_path, micro_bundle)
    assert not list(out.glob("*.tmp")) and not (out / layout.CHECKPOINT).exists()


def test_a_second_process_on_the_run_is_refused(micro_bundle, micro_config, tmp_path):
    out = engine.run_dir(micro_config, tmp_path)
    busy = pytest.raises(RunBusy, match=f"another process is training {out}")
    with FileLock(out.with_name(f".{out.name}.lock")), busy:
        _train(micro_config, tmp_path, micro_bundle)
    assert not out.exists()


@METHODS.register("test-collapse")
class Collapse(Method):
    """Predicts class 3 whatever the image."""

    def loss(self, batch, epoch):
        from fer_bench.methods.base import StepOutput

        return StepOutput(loss=torch.nn.functional.cross_entropy(self.predict(batch.x), batch.y))

    def predict(self, x):
        logits = self.backbone(x)
        return logits + torch.nn.functional.one_hot(torch.tensor(3), logits.shape[1]) * 1e3


def test_collapse_is_flagged(micro_bundle, micro_config, tmp_path):
    cfg = replace(micro_config, method="test-collapse", epochs=1)
    final = _train(cfg, tmp_path, micro_bundle)
    assert final["collapsed"] == f"predicts {CLASSES[3]} for 100 % of test images"
    (row,) = [json.loads(line) for line in (engine.run_dir(cfg, tmp_path) / "metrics.jsonl").open()]
    assert row["test"]["pred_mode"] == 3 and row["test"]["pred_share_max"] == 1.0


def test_cli_resume_alone_takes_the_stored_config(
    micro_bundle, micro_config, tmp_path, monkeypatch
):
    out = _interrupted(micro_config, tmp_path, micro_bundle, monkeypatch)
    monkeypatch.setattr(engine, "load_dataset", lambda cfg: micro_bundle)
    result = CliRunner().invoke(app, ["run", "--resume", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "resumed from epoch 1" in result.output and (out / "done").exists()
    result = CliRunner().invoke(app, ["run", "--resume", str(out), "--epochs", "5"])
    assert result.exit_code == 2 and "differs from the command in epochs" in result.output


def test_wait_queues_behind_the_other_process(micro_bundle, micro_config, tmp_path):
    cfg = replace(micro_config, epochs=1)
    out = engine.run_dir(cfg, tmp_path)
    hold_lock(out.with_name(f".{out.name}.lock"), 1.0)  # the other process
    started = time.monotonic()
    final = _train(cfg, tmp_path, micro_bundle, wait=True)
    assert final["status"] == "done" and time.monotonic() - started >= 1.0


def _freeze(out: Path, monkeypatch) -> None:
    """From now on every write under ``out`` fails as on a file system remounted read-only
    (tests run as root here, where chmod does not stop a write)."""
    real_open = builtins.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if set(mode) & set("wax+") and Path(file).resolve().is_relative_to(out.resolve()):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    def read_only_save(obj, path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    for module in (builtins, io):
        monkeypatch.setattr(module, "open", guarded_open)
    monkeypatch.setattr(checkpoint.torch, "save", read_only_save)


def test_a_run_directory_turning_read_only_keeps_the_last_epoch(
    micro_bundle, micro_config, tmp_path, monkeypatch
):
    cfg = replace(micro_config, epochs=3)
    out = _interrupted(cfg, tmp_path, micro_bundle, monkeypatch)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(engine, "load_dataset", lambda cfg: micro_bundle)
    with monkeypatch.context() as frozen:
        _freeze(out, frozen)
        result = CliRunner().invoke(app, ["run", "--resume", str(out), "--quiet"])
    assert result.exit_code == 1
    failure = [line for line in result.output.splitlines() if "run failed" in line]
    assert failure and "Read-only file system" in failure[0], result.output
    assert "traceback not kept" in failure[0] and "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # epoch 1 intact
    assert torch.load(out / layout.CHECKPOINT, weights_only=True)["epoch"] == 1
    assert not list(out.glob("*.tmp"))


def test_a_run_begun_under_other_code_is_started_over_not_resumed(
    micro_bundle, micro_config, tmp_path, monkeypatch
):
    from fer_bench.records.reading import RunState
    from fer_bench.sweeps.sweep import plan

    out = _interrupted(micro_config, tmp_path, micro_bundle, monkeypatch)
    stored = json.loads((out / "config.json").read_text())
    stored["method_code"] = "0" * 16  # its first epoch trained under other code
    (out / "config.json").write_text(json.dumps(stored))
    with pytest.raises(engine.StaleRun, match="was begun under other code"):
        _train(micro_config, tmp_path, micro_bundle)
    assert plan([micro_config], tmp_path)[0].state is RunState.STALE
    messages: list[str] = []
    final = _train(micro_config, tmp_path, micro_bundle, messages, rerun_stale=True)
    assert final["status"] == "done" and final["epochs_completed"] == 2
    assert any("deleted to start it over" in m for m in messages)
    assert not any("resumed" in m for m in messages), messages


def test_a_resume_that_trains_on_clears_the_earlier_attempts_error(
    micro_bundle, micro_config, tmp_path, monkeypatch
):
    from fer_bench.records.layout import ERROR_FILE
    from fer_bench.records.reading import RunState, run_state

    out = _interrupted(micro_config, tmp_path, micro_bundle, monkeypatch)
    (out / ERROR_FILE).write_text("Traceback ...\nOSError: disk full\n")
    assert run_state(out) == (RunState.PARTIAL, "last attempt raised OSError: disk full")
    crash_after_save(monkeypatch, 1)  # the resumed attempt is stopped again, without error
    with pytest.raises(KeyboardInterrupt):
        _train(micro_config, tmp_path, micro_bundle)
    assert run_state(out) == (RunState.PARTIAL, None)  # not a failed run to start over


def test_a_gpu_runs_random_stream_follows_it_to_another_gpu(monkeypatch):
    """Saved from the run's GPU alone, restored into the GPU it resumes on (simulated:
    this host has none). Restoring by index would feed cuda:0 the stream of cuda:1."""
    streams = {"cuda:0": torch.tensor([0], dtype=torch.uint8)}
    streams["cuda:1"] = torch.tensor([1], dtype=torch.uint8)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: streams[device].clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: streams.update({device: s}))
    state = checkpoint.rng_state(torch.Generator(), torch.Generator(), "cuda:1")
    streams["cuda:1"] = torch.tensor([9], dtype=torch.uint8)  # drawn on after the save
    checkpoint.set_rng_state(state, torch.Generator(), torch.Generator(), "cuda:0")
    assert streams["cuda:0"].tolist() == [1] and streams["cuda:1"].tolist() == [9]
    cpu_state = checkpoint.rng_state(torch.Generator(), torch.Generator(), "cpu")
    assert cpu_state["cuda_run_device"] is None
    # Written before the run's stream was saved alone: every GPU's, by index.
    old = {**state, "cuda": [streams["cuda:0"], torch.tensor([5], dtype=torch.uint8)]}
    del old["cuda_run_device"]
    checkpoint.set_rng_state(old, torch.Generator(), torch.Generator(), "cuda:1")
    assert streams["cuda:1"].tolist() == [5]


def test_deleting_a_run_removes_its_done_marker_first(tmp_path, monkeypatch):
    from fer_bench.records import lock as run_lock

    out = tmp_path / "ce-0123"
    out.mkdir()
    (out / "done").touch()
    (out / "final.json").write_text("{}")
    monkeypatch.setattr(run_lock.shutil, "rmtree", lambda path: None)  # cut short
    run_lock.delete_run(out)
    assert not (out / "done").exists() and (out / "final.json").exists()
