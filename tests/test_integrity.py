"""Integrity: no code runs from a record; what is read back is checked."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_engine import write_records
from PIL import Image
from resume_helpers import crash_after_save
from typer.testing import CliRunner

import fer_bench.training.engine as engine
from fer_bench.atomic import DiskFull, write_json_atomic
from fer_bench.cli import app
from fer_bench.config import DataConfig
from fer_bench.data import cache as cache_module
from fer_bench.data import decoding, load_dataset
from fer_bench.data import testing as fx
from fer_bench.data.base import DatasetBundle
from fer_bench.profiles import load_profile, with_overrides
from fer_bench.records import checkpoint, layout
from fer_bench.records.layout import seal_json
from fer_bench.records.reading import RunState, keep_traceback, run_state, scan_runs

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _booby_trap(tmp_path: Path) -> tuple[Path, Path]:
    """A plugin file that would write a marker when imported, and that marker's path."""
    marker = tmp_path / "MARKER"
    plugin = tmp_path / "evil.py"
    plugin.write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('ran')\n"
        "from fer_bench.methods.ce import CE\n"
        "from fer_bench.registry import METHODS\n"
        "METHODS.register('evil')(type('Evil', (CE,), {}))\n"
    )
    return plugin, marker


@pytest.fixture
def trapped_board(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A results directory whose records name the booby-trapped plugin: a ce run and a
    run of the method only that plugin registers."""
    plugin, marker = _booby_trap(tmp_path)
    root = tmp_path / "downloaded"
    runs = []
    for seed in (0, 1):
        write_records(with_overrides(load_profile(), {"epochs": 2, "seed": seed}), root)
        runs.append(next(p for p in root.iterdir() if p.name.startswith("ce-") and p not in runs))
    for run, method in zip(runs, ("ce", "evil"), strict=True):
        config = json.loads((run / "config.json").read_text())
        config.update(method=method, plugin=str(plugin))
        (run / "config.json").write_text(json.dumps(config))
    return root, runs[1], marker


def test_no_command_imports_a_plugin_a_record_names(trapped_board, tmp_path):
    root, evil_run, marker = trapped_board
    invoke("table", root)
    invoke("compare", root, "ce")
    invoke("plot", root, "--out", tmp_path / "plots")
    # A sweep's plan (tune plans the same way) reads both records, checking staleness.
    sweep = ["sweep", "--methods", "ce", "--seeds", "0,1", "--epochs", "2", "--out", root]
    planned = invoke(*sweep, "--dry-run")
    assert planned.exit_code == 0 and "done" in planned.output, planned.output
    result = invoke("run", "--resume", evil_run, "--quiet")
    assert not marker.exists()
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "method 'evil' is not loaded" in text and "--plugin" in text
    assert str(evil_run.parent.parent / "evil.py") in text  # named, for the user to judge


def test_a_table_names_the_method_that_is_not_loaded(trapped_board):
    root, _, marker = trapped_board
    result = invoke("table", root)
    assert "method 'evil' is not loaded" in " ".join(result.output.split())
    assert not marker.exists()


# --- checkpoints: a content checksum; a damaged one is never resumed from ---


def _interrupted(cfg, root, bundle, monkeypatch, at: int) -> Path:
    crash_after_save(monkeypatch, at)
    with pytest.raises(KeyboardInterrupt):
        engine.train(cfg, root, progress=False, bundle=bundle, notify=lambda m: None)
    return engine.run_dir(cfg, root)


def _flip_middle(path: Path, n: int = 64) -> None:
    """Invert ``n`` bytes in the middle of the file: its size stays the same."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + n] = bytes(b ^ 0xFF for b in data[middle : middle + n])
    path.write_bytes(bytes(data))


def test_a_changed_value_in_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / layout.CHECKPOINT
    checkpoint.save(path, {"epoch": 1, "w": torch.ones(3), checkpoint.METRICS_KEY: "{}\n"})
    state = torch.load(path, weights_only=True)
    state["w"][1] = 1.5  # rewritten as a same-size edit would leave it: digest untouched
    torch.save(state, path)
    messages: list[str] = []
    assert checkpoint.load(tmp_path, "cpu", messages.append) == (
        None,
        "checkpoint.pt unreadable: ValueError: content checksum mismatch: changed on disk "
        "since it was written",
    )
    assert messages and "checksum mismatch" in messages[0]


@pytest.mark.slow  # trains 4 epochs; test_a_changed_value_in_a_checkpoint_is_refused is quick
def test_a_checkpoint_overwritten_in_the_middle_falls_back_to_the_previous(
    micro_bundle, micro_config, tmp_path, monkeypatch
):
    cfg = replace(micro_config, epochs=3)
    out = _interrupted(cfg, tmp_path, micro_bundle, monkeypatch, at=2)
    _flip_middle(out / layout.CHECKPOINT)
    messages: list[str] = []
    final = engine.train(cfg, tmp_path, progress=False, bundle=micro_bundle, notify=messages.append)
    assert final["status"] == "done" and final["epochs_completed"] == 3
    assert any("checkpoint.pt unreadable" in m for m in messages), messages
    assert any("resumed from epoch 1" in m for m in messages), messages


def test_a_resume_takes_the_log_from_the_checkpoint_not_a_damaged_file(
    micro_bundle, micro_config, tmp_path, monkeypatch
):
    cfg = replace(micro_config, epochs=2)
    out = _interrupted(cfg, tmp_path, micro_bundle, monkeypatch, at=1)
    log = out / "metrics.jsonl"
    written = log.read_text()
    row = json.loads(written)
    damaged = written.replace(f'"acc": {row["test"]["acc"]}', '"acc": 0.0', 1)
    assert damaged != written
    log.write_text(damaged)
    engine.train(cfg, tmp_path, progress=False, bundle=micro_bundle, notify=lambda m: None)
    assert log.read_text().splitlines()[0] == written.splitlines()[0]


# --- finished records: sealed by digests; a damaged run is shown so, never read ---


@pytest.fixture
def finished(micro_run, tmp_path) -> Path:
    """A copy of the session's finished micro run, to damage."""
    _, root = micro_run
    (run,) = [p for p in root.iterdir() if (p / "done").exists()]
    copy = tmp_path / "runs" / run.name
    shutil.copytree(run, copy)
    return copy


def _same_size_edit(path: Path) -> None:
    """Change one digit of the file in place, as a flipped bit in a number would."""
    text = path.read_text()
    at = next(i for i, c in enumerate(text) if c.isdigit() and i > len(text) // 2)
    path.write_text(text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1 :])


@pytest.mark.parametrize("name", ["metrics.jsonl", "final.json", "config.json"])
def test_a_record_changed_after_the_run_finished_is_shown_damaged(
    finished, name, micro_run, micro_bundle
):
    assert run_state(finished) == (RunState.DONE, None)
    _same_size_edit(finished / name)
    state, reason = run_state(finished)
    assert state is RunState.CORRUPT and f"damaged: {name} changed" in reason
    result = invoke("table", finished.parent)
    assert result.exit_code == 0, result.output
    assert "corrupt" in result.output and "damaged" in result.output
    with pytest.raises(ValueError, match="damaged since it finished"):
        engine.train(micro_run[0], finished.parent, progress=False, bundle=micro_bundle)


def test_a_run_finished_before_records_were_sealed_reads_as_before(finished):
    (finished / "done").write_text("")
    _same_size_edit(finished / "metrics.jsonl")
    assert run_state(finished) == (RunState.DONE, None)


def test_a_failing_attempt_writes_nothing_into_a_finished_run(finished):
    try:
        raise RuntimeError("bad data")
    except RuntimeError:
        said = keep_traceback(finished)
    assert "finished run" in said and not (finished / "error.txt").exists()


# --- the image cache: a changed array or meta.json is caught and the entry rebuilt ---


@pytest.fixture
def rafdb(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A small RAF-DB copy and an empty cache: (data root, cache folder)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FER_BENCH_CACHE", str(cache))
    return fx.write_rafdb(tmp_path / "raf"), cache


def _load(root: Path) -> DatasetBundle:
    return load_dataset(DataConfig(name="rafdb", root=str(root), image_size=16))


def _overwrite_middle(path: Path) -> None:
    time.sleep(0.05)  # a write after the build, as any later one is: its mtime moves
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 32] = bytes(255 - b for b in data[middle : middle + 32])
    path.write_bytes(bytes(data))


def _edit_class_names(meta: Path) -> None:
    text = meta.read_text()
    meta.write_text(text.replace('"anger"', '"angry"', 1))


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda e: _overwrite_middle(next(e.glob("images-*.npy"))), "content changed"),
        (lambda e: _edit_class_names(e / "meta.json"), "meta.json does not match"),
        (lambda e: (e / "meta.json").write_text("{broken"), "meta.json does not match"),
        (lambda e: (e / "meta.json.sha256").unlink(), "written before cache checksums"),
    ],
)
def test_a_changed_cache_entry_is_rebuilt_before_a_run_reads_it(rafdb, damage, said):
    root, cache = rafdb
    first = _load(root)
    (entry,) = cache.glob("rafdb-*")
    damage(entry)
    with pytest.warns(UserWarning, match=f"ignoring unreadable cache entry .*{said}"):
        again = _load(root)
    assert np.array_equal(again.train.images, first.train.images)
    assert again.class_names == first.class_names
    assert again.train.labels.tolist() == first.train.labels.tolist()


def test_an_untouched_cache_entry_is_not_hashed_again(rafdb, monkeypatch):
    root, _ = rafdb
    _load(root)
    hashed: list[Path] = []
    real = cache_module.sha256_file
    monkeypatch.setattr(cache_module, "sha256_file", lambda p: hashed.append(p) or real(p))
    _load(root)
    assert [p.name for p in hashed] == ["labels.npz"]  # the arrays cost a stat each


# --- a full disk: one line naming the directory; nothing half-written; a rerun resumes ---


def test_a_full_disk_while_decoding_is_one_line_and_the_rerun_resumes(rafdb, monkeypatch):
    root, cache = rafdb
    real = os.posix_fallocate

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    result = invoke("data", "info", "rafdb", "--data-root", root, "--image-size", 16)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"disk full: no space left in {cache}" in " ".join(
        result.output.split()
    )
    assert not list(cache.glob("rafdb-*")) and list(cache.glob(".rafdb-*.partial"))
    monkeypatch.setattr(os, "posix_fallocate", real)
    assert invoke("data", "info", "rafdb", "--data-root", root, "--image-size", 16).exit_code == 0
    assert list(cache.glob("rafdb-*/meta.json"))


def test_a_full_disk_writing_a_record_leaves_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "final.json"
    write_json_atomic(path, {"status": "done"})

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFull, match=f"disk full: no space left in {tmp_path}"):
        write_json_atomic(path, {"status": "failed"})
    assert json.loads(path.read_text()) == {"status": "done"}
    assert [p.name for p in tmp_path.iterdir()] == ["final.json"]


# --- every error names its cause ---


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--imbalance", "inf"], "--imbalance: the factor must be finite and >= 1 (got inf)"),
        (["--cfg", "eval_batch_size=0"], "--cfg eval_batch_size=0: outside [1, inf)"),
        (["--cfg", "aug.erase_p=2"], "--cfg aug.erase_p=2.0: outside [0, 1]"),
        (["--seed", "-1"], "--cfg seed=-1: outside [0, 4294967295]"),
        (["--cfg", "data.channels=3"], "--cfg data.channels=3: the synthetic data has 1 channels"),
    ],
)
def test_values_out_of_range_are_one_line_naming_the_option(
    args, message, tmp_path, micro_bundle, monkeypatch
):
    monkeypatch.setattr("fer_bench.training.engine.load_dataset", lambda cfg: micro_bundle)
    runs = tmp_path / "runs"
    result = invoke("run", "ce", "--out", runs, "--quiet", "--epochs", "1", *args)
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert message in line
    assert not runs.exists() or not any(runs.iterdir())


def test_a_decode_worker_count_that_is_no_number_names_the_variable(rafdb, monkeypatch):
    root, _ = rafdb
    monkeypatch.setenv("FER_BENCH_DECODE_WORKERS", "abc")
    with pytest.raises(ValueError, match=r"\$FER_BENCH_DECODE_WORKERS='abc': expected a whole"):
        decoding.decode_workers()


def test_a_label_file_not_in_utf8_names_file_and_line(rafdb):
    root, _ = rafdb
    labels = root / "EmoLabel" / "list_patition_label.txt"
    lines = labels.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"_", "é".encode("latin-1"), 1)
    labels.write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match=f"{labels}:3: not UTF-8 text"):
        _load(root)


def test_a_decompression_bomb_names_the_image(rafdb, monkeypatch):
    root, _ = rafdb
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # every face is then "a bomb"
    with pytest.raises(ValueError, match="list_patition_label.txt:1: cannot decode image .*bomb"):
        _load(root)


def test_a_vote_count_too_large_names_file_and_line(tmp_path):
    root = fx.write_ferplus(tmp_path / "ferplus")
    path = root / "FER2013Valid" / "label.csv"
    rows = path.read_text().splitlines()
    fields = rows[0].split(",")
    rows[0] = ",".join([*fields[:-1], "9" * 30])
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=f"{path}:1: vote count 9+ too large"):
        load_dataset(DataConfig(name="ferplus", root=str(root)))


def test_a_symlink_loop_names_the_image(rafdb):
    root, _ = rafdb
    image = next((root / "Image" / "aligned").iterdir())
    image.unlink()
    image.symlink_to(image)
    with pytest.raises(ValueError, match=f"cannot read image {image}: Too many levels"):
        _load(root)


PLUGIN_HEAD = (
    "import torch\n"
    "import torch.nn.functional as F\n"
    "from fer_bench.methods.base import Method, StepOutput\n"
    "from fer_bench.registry import METHODS\n"
)
CE_LOSS = (
    "    def loss(self, batch, epoch):\n"
    "        return StepOutput(loss=F.cross_entropy(self.backbone(batch.x), batch.y))\n"
)


@pytest.mark.parametrize(
    ("name", "body", "said"),
    [
        (
            "wrong-shape",
            "    def predict(self, x):\n        return self.backbone(x)[:, :2]\n",
            "method 'wrong-shape' failed while training",
        ),
        (
            "vector-log",
            "    def loss(self, batch, epoch):\n"
            "        loss = F.cross_entropy(self.backbone(batch.x), batch.y)\n"
            "        return StepOutput(loss=loss, logs={'v': torch.ones(3)})\n",
            "method 'vector-log' failed while training",
        ),
        (
            "raises",
            "    def loss(self, batch, epoch):\n        raise KeyError('oops')\n",
            "method 'raises' failed while training in loss (faulty.py:8): KeyError",
        ),
    ],
)
def test_a_plugin_fault_is_the_methods_failure_with_its_traceback_kept(
    name, body, said, tmp_path, micro_bundle, monkeypatch
):
    monkeypatch.setattr("fer_bench.training.engine.load_dataset", lambda cfg: micro_bundle)
    plugin = tmp_path / "faulty.py"
    methods = body if "def loss" in body else CE_LOSS + body
    plugin.write_text(PLUGIN_HEAD + f"@METHODS.register({name!r})\nclass M(Method):\n" + methods)
    runs = tmp_path / "runs"
    args = ["--plugin", plugin, "--out", runs, "--quiet", "--epochs", "1"]
    result = invoke("run", name, *args, "--cfg", "data.image_size=24", "--batch-size", "64")
    assert result.exit_code == 1, result.output
    assert said in " ".join(result.output.split())
    (error,) = runs.glob("*/error.txt")
    assert "Traceback" in error.read_text()


def test_ctrl_c_says_where_it_stopped_and_how_to_resume(tmp_path, micro_bundle, monkeypatch):
    monkeypatch.setattr("fer_bench.training.engine.load_dataset", lambda cfg: micro_bundle)
    crash_after_save(monkeypatch, at=1)  # Ctrl-C right after epoch 1's checkpoint
    runs = tmp_path / "runs"
    args = ["--out", runs, "--quiet", "--epochs", "2", "--batch-size", "64"]
    result = invoke("run", "ce", *args, "--cfg", "data.image_size=24")
    assert result.exit_code == 130, result.output
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    (line,) = result.output.strip().splitlines()
    assert "interrupted in epoch 1 of 2, after step 3 of 3; last checkpoint: epoch 1" in line
    assert f"resume with: fer-bench run --resume {run}" in line


def test_a_broken_final_json_of_an_unsealed_run_names_the_file(finished, micro_run, micro_bundle):
    (finished / "done").write_text("")  # finished before sealing: read as before, unchecked
    (finished / "final.json").write_text('{"status": "do')
    with pytest.raises(ValueError, match=r"final.json: not valid JSON .*; delete .* to train"):
        engine.train(micro_run[0], finished.parent, progress=False, bundle=micro_bundle)
    assert run_state(finished)[0] is RunState.CORRUPT


def test_a_label_file_that_is_a_symlink_loop_says_so(rafdb):
    root, _ = rafdb
    labels = root / "EmoLabel" / "list_patition_label.txt"
    labels.unlink()
    labels.symlink_to(labels)
    with pytest.raises(FileNotFoundError, match=f"a broken or looping symlink: {labels}"):
        _load(root)


def test_a_tuning_record_changed_since_it_was_written_is_refused(tmp_path):
    record = {"trials": 8, "groups": {"nla / clean": {"best": {"lr": "0.00766"}}}}
    path = tmp_path / "tuning.json"
    write_json_atomic(path, seal_json(record))
    assert scan_runs(tmp_path).tuning == {tmp_path: record}
    path.write_text(path.read_text().replace("0.00766", "0.00966"))
    with pytest.raises(ValueError, match="tuning.json: changed since it was written"):
        scan_runs(tmp_path)
