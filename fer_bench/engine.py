"""The method-agnostic training engine: one run directory, trained by a :class:`Trainer`.

API:
    train(cfg, out_root, resume=True, progress=True, bundle=None, wait=False, notify=...)
        -> final record (dict)
    run_dir(cfg, out_root) -> Path of the run directory ``<out_root>/<method>-<hash12>``

A run directory holds config.json, labels_train.csv / labels_val.csv,
metrics.jsonl (one line per epoch), checkpoint.pt (every epoch, the one
before kept as checkpoint.prev.pt; :mod:`fer_bench.checkpoint`), final.json
and, last, an empty ``done`` marker. An interrupted run continues from its
newest readable checkpoint to the same numbers as an uninterrupted one (on
CPU; on a GPU non-deterministic kernels may make them differ slightly); a
finished run is returned as it is. One process at a time trains a run
directory (a lock file beside it). Every resume, fallback or restart is said
through ``notify``, one line each. The engine alone holds the clean labels and
the flip mask; a method receives observed labels only. The training loop and
its hooks are :mod:`fer_bench.trainer`'s.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout

from fer_bench import checkpoint
from fer_bench.backbones import check_backbone_name
from fer_bench.config import RunConfig
from fer_bench.data import load_dataset
from fer_bench.data.base import DatasetBundle
from fer_bench.identity import CannotCheck, method_code, record_fields, run_name, staleness
from fer_bench.labels import LabelSet, build_labels
from fer_bench.methods.base import build_hparams
from fer_bench.precision import resolve_precision
from fer_bench.records import write_json_atomic
from fer_bench.registry import METHODS, load_plugin_file
from fer_bench.results import ERROR_FILE
from fer_bench.trainer import Trainer


class StaleRun(ValueError):
    """A run, finished or begun, whose method changed since it was recorded."""


class DataMismatch(ValueError):
    """A finished run of the same name was trained on other labels."""


class RunBusy(RuntimeError):
    """Another process holds the run directory's lock."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_dir(cfg: RunConfig, out_root: Path) -> Path:
    return Path(out_root) / run_name(cfg)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(
    cfg: RunConfig,
    out_root: Path,
    resume: bool = True,
    progress: bool = True,
    bundle: DatasetBundle | None = None,
    tensorboard: bool = False,
    wait: bool = False,
    notify: Callable[[str], None] = _say,
    rerun_stale: bool = False,
) -> dict:
    """Train ``cfg`` into its run directory, resuming it if it has a checkpoint
    (``resume=False`` starts over); ``wait`` queues behind another process on it. A
    finished run is returned after checking it is still this experiment (its method's
    code and its labels); a stale one is retrained only with ``rerun_stale``."""
    cfg.validate()
    if cfg.plugin:
        load_plugin_file(cfg.plugin)
    method_cls = METHODS.get(cfg.method)
    method_code(cfg.method)  # its source read now, as imported, for the run's record
    hparams = build_hparams(method_cls, cfg.hparams)
    check_backbone_name(cfg.backbone)
    _check_device(cfg.device)
    out = run_dir(cfg, out_root)
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    bundle = bundle if bundle is not None else load_dataset(cfg.data)
    labels = build_labels(bundle, cfg.protocol)
    if (out / "done").exists() and _stale_reason(out) is None:
        return _finished_record(out, labels, rerun_stale, notify)  # read without the lock
    precision = resolve_precision(cfg.bf16, cfg.device)
    trainer = Trainer(cfg, method_cls, hparams, bundle, labels, precision)
    trainer.build()  # everything that can reject the config, before the directory is written
    asked_lock = time.perf_counter()
    with _run_lock(out, wait):  # a stale run is deleted under it, never while another trains
        waited = time.perf_counter() - asked_lock  # behind another process: not run time
        if (out / "done").exists():  # stale, or finished by the process we waited for
            final = _finished_record(out, labels, rerun_stale, notify)
            if final is not None:
                return final
        _check_partial_current(out, rerun_stale, notify)
        state = checkpoint.resume_state(out, cfg.device, cfg.bf16, precision, resume, notify)
        if state is not None:
            _check_saved_labels(out, labels)
        # A resumed run's wall time continues from what its checkpoint had already spent.
        started = t0 + waited - (state.get("elapsed_s", 0.0) if state else 0.0)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "config.json", {**cfg.to_dict(), **record_fields(cfg)})
        (out / ERROR_FILE).unlink(missing_ok=True)  # an earlier attempt's error is history
        for name, label_set in labels.items():
            trainer.label_info[f"{name}_sha256"] = label_set.save(out / f"labels_{name}.csv")
        trainer.restore(out, state, started, notify)
        writer = _tensorboard_writer(out) if tensorboard else None
        return trainer.fit(progress, writer)


def _check_device(device: str) -> None:
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ValueError(f"--device {device!r}: not a device (cpu, cuda, cuda:1, ...)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU is available here; use --device cpu")


def _finished_record(
    out: Path, labels: dict[str, LabelSet], rerun_stale: bool, notify: Callable[[str], None]
) -> dict | None:
    """The record of a finished run, after checking it is still this experiment: its
    method unchanged (else :class:`StaleRun`, or None to retrain with ``rerun_stale``)
    and its labels the ones this data gives (else :class:`DataMismatch`)."""
    stale = _stale_reason(out)
    if stale is not None:
        if not rerun_stale:
            raise StaleRun(f"{out} is stale: {stale}; pass --rerun-stale to train it again")
        notify(f"{out}: stale ({stale}), deleted to train it again")
        shutil.rmtree(out)
        return None
    recorded = json.loads((out / "final.json").read_text()).get("labels") or {}
    for name, label_set in labels.items():
        if recorded.get(f"{name}_sha256") not in (None, label_set.sha256()):
            raise DataMismatch(
                f"{out} was trained on other {name} labels than this data gives (label-file "
                "hash differs): the data behind this dataset name changed; use another --out"
            )
    return _already_done(out, notify)


def _stale_reason(out: Path) -> str | None:
    """Why the run in ``out`` is not this code's experiment (see ``staleness``), or None."""
    return staleness(json.loads((out / "config.json").read_text()))


def _check_partial_current(out: Path, rerun_stale: bool, notify: Callable[[str], None]) -> None:
    """An unfinished run is resumed only under the code that trained its first epochs:
    one begun under another method code or defaults raises :class:`StaleRun`, or with
    ``rerun_stale`` starts over (a run of two codes would be recorded as current)."""
    try:
        stale = _stale_reason(out)
    except (OSError, ValueError, CannotCheck):
        return  # no readable record of how it began: nothing trained to mix with
    if stale is None:
        return
    if not rerun_stale:
        raise StaleRun(f"{out} was begun under other code: {stale}; pass --rerun-stale")
    notify(f"{out}: begun under other code ({stale}), deleted to start it over")
    shutil.rmtree(out)


def _check_saved_labels(out: Path, labels: dict[str, LabelSet]) -> None:
    for name, label_set in labels.items():
        saved = out / f"labels_{name}.csv"
        if saved.exists() and saved.read_bytes() != label_set.to_csv_bytes():
            raise DataMismatch(
                f"{saved} differs from the labels this data gives: the data behind this "
                "dataset name changed since the run started; use another --out"
            )


def _already_done(out: Path, notify: Callable[[str], None]) -> dict:
    notify(f"{out}: already done (delete the directory to train it again)")
    return json.loads((out / "final.json").read_text())


@contextmanager
def _run_lock(out: Path, wait: bool) -> Iterator[None]:
    """One process per run directory; the lock file lies beside it, so deleting the
    directory to start over never deletes a lock another process holds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out.with_name(f".{out.name}.lock"))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        raise RunBusy(
            f"another process is training {out} (lock {lock.lock_file}); pass --wait to wait for it"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _tensorboard_writer(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(
            "--tensorboard needs the tensorboard package: pip install 'fer-bench[tensorboard]'"
        ) from None
    return SummaryWriter(log_dir=str(out / "tensorboard"))
