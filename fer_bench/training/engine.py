"""The method-agnostic training engine: one run directory, trained by a :class:`Trainer`.

API:
    train(cfg, out_root, resume=True, progress=True, bundle=None, wait=False, notify=...)
        -> final record (dict)
    run_dir(cfg, out_root) -> Path of the run directory ``<out_root>/<method>-<hash12>``

The run directory's files and format are :mod:`fer_bench.records.layout`'s. An
interrupted run continues from its newest readable checkpoint to the same numbers
as an uninterrupted one (on CPU; on a GPU non-deterministic kernels may make them
differ slightly); a finished run is returned as it is. One process at a time trains a run
directory (a lock file beside it). Every resume, fallback or restart is said
through ``notify``, one line each. The engine alone holds the clean labels and
the flip mask; a method receives observed labels only. The training loop and
its hooks are :mod:`fer_bench.training.trainer`'s.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fer_bench.atomic import write_json_atomic
from fer_bench.backbones import check_backbone_name
from fer_bench.config import RunConfig
from fer_bench.data import load_dataset
from fer_bench.data.base import DatasetBundle
from fer_bench.methods.base import build_hparams
from fer_bench.records import checkpoint
from fer_bench.records.identity import (
    CannotCheck,
    method_code,
    record_fields,
    recorded_staleness,
    run_name,
)
from fer_bench.records.layout import (
    CONFIG,
    DONE_MARKER,
    ERROR_FILE,
    FINAL,
    TENSORBOARD,
    damage,
    labels_file,
)
from fer_bench.records.lock import delete_run, run_lock
from fer_bench.registry import load_plugin_file, method_class
from fer_bench.training.labels import LabelSet, build_labels
from fer_bench.training.precision import resolve_precision
from fer_bench.training.trainer import Trainer


class StaleRun(ValueError):
    """A run, finished or begun, whose method changed since it was recorded."""


class MethodFailed(RuntimeError):
    """A method's code raised while training; the traceback is kept in error.txt."""


def _method_fault(method: str, cls: type, err: Exception) -> str:
    """One line: the method, its hook and line where the error passed through its file."""
    source = inspect.getsourcefile(cls)
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == source]
    where = f" in {frames[-1].name} ({Path(source).name}:{frames[-1].lineno})" if frames else ""
    first = (str(err).strip().splitlines() or [""])[0]
    return f"method {method!r} failed while training{where}: {type(err).__name__}: {first}"


class DataMismatch(ValueError):
    """A finished run of the same name was trained on other labels."""


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
    # cfg.plugin is the command line's --plugin (a sweep worker imports it again):
    # `run --resume` puts the command line's in place of the one its record names.
    if cfg.plugin:
        load_plugin_file(cfg.plugin)
    method_cls = method_class(cfg.method)
    method_code(cfg.method)  # its source read now, as imported, for the run's record
    hparams = build_hparams(method_cls, cfg.hparams)
    check_backbone_name(cfg.backbone)
    _check_device(cfg.device)
    out = run_dir(cfg, out_root)
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    bundle = bundle if bundle is not None else load_dataset(cfg.data)
    labels = build_labels(bundle, cfg.protocol)
    if (out / DONE_MARKER).exists() and _staleness(out) is None:
        with contextlib.suppress(FileNotFoundError):  # deleted meanwhile: train under the lock
            return _finished_record(out, labels, notify)  # read without the lock
    precision = resolve_precision(cfg.bf16, cfg.device)
    trainer = Trainer(cfg, method_cls, hparams, bundle, labels, precision)
    trainer.build()  # everything that can reject the config, before the directory is written
    asked_lock = time.perf_counter()
    with run_lock(out, wait):  # a stale run is deleted under it, never while another trains
        waited = time.perf_counter() - asked_lock  # behind another process: not run time
        # Checked again under the lock: the process we waited for may have finished it.
        stale = _staleness(out)
        if stale is not None:
            _discard_stale(out, stale, rerun_stale, notify)
        elif (out / DONE_MARKER).exists():
            return _finished_record(out, labels, notify)
        state = checkpoint.resume_state(out, cfg.device, cfg.bf16, precision, resume, notify)
        if state is not None:
            _check_saved_labels(out, labels)
        # A resumed run's wall time continues from what its checkpoint had already spent.
        started = t0 + waited - (state.get("elapsed_s", 0.0) if state else 0.0)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / CONFIG, {**cfg.to_dict(), **record_fields(cfg)})
        (out / ERROR_FILE).unlink(missing_ok=True)  # an earlier attempt's error is history
        for name, label_set in labels.items():
            trainer.label_info[f"{name}_sha256"] = label_set.save(out / labels_file(name))
        trainer.restore(out, state, started, notify)
        writer = _tensorboard_writer(out) if tensorboard else None
        try:
            return trainer.fit(progress, writer)
        except OSError:
            raise  # the machine's (a full disk), not the method's
        except Exception as err:
            # The config passed every check before training: what fails now is the method
            # (a predict of the wrong shape, a vector in its logs), not the user's input.
            raise MethodFailed(_method_fault(cfg.method, method_cls, err)) from err


def _check_device(device: str) -> None:
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ValueError(f"--device {device!r}: not a device (cpu, cuda, cuda:1, ...)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU is available here; use --device cpu")


def _finished_record(out: Path, labels: dict[str, LabelSet], notify: Callable[[str], None]) -> dict:
    """The record of a finished current run, after checking it is as it finished (else
    ValueError: a damaged record is no source of numbers) and its labels are the ones
    this data gives (else :class:`DataMismatch`)."""
    if (why := damage(out)) is not None:
        raise ValueError(f"{out}: damaged since it finished ({why}); delete it to train it again")
    recorded = _read_final(out).get("labels") or {}
    for name, label_set in labels.items():
        if recorded.get(f"{name}_sha256") not in (None, label_set.sha256()):
            raise DataMismatch(
                f"{out} was trained on other {name} labels than this data gives (label-file "
                "hash differs): the data behind this dataset name changed; use another --out"
            )
    return _already_done(out, notify)


def _staleness(out: Path) -> str | None:
    """Why the run finished or begun in ``out`` is not this code's experiment (its
    method's code or defaults changed), or None (also where nothing has begun)."""
    try:
        return recorded_staleness(out)
    except CannotCheck as err:
        if (out / DONE_MARKER).exists():
            raise ValueError(f"{out}: {err}; delete the directory to train it again") from None
        return None  # no readable record of how it began: nothing trained to mix with


def _discard_stale(out: Path, stale: str, rerun_stale: bool, notify: Callable[[str], None]) -> None:
    """A stale run is never served, and never resumed (a run of two codes would be
    recorded as current): :class:`StaleRun`, or with ``rerun_stale`` deleted to start over."""
    what = "finished" if (out / DONE_MARKER).exists() else "begun"
    if not rerun_stale:
        raise StaleRun(f"{out} was {what} under other code: {stale}; pass --rerun-stale")
    notify(f"{out}: {what} under other code ({stale}), deleted to start it over")
    delete_run(out)


def _check_saved_labels(out: Path, labels: dict[str, LabelSet]) -> None:
    for name, label_set in labels.items():
        saved = out / labels_file(name)
        if saved.exists() and saved.read_bytes() != label_set.to_csv_bytes():
            raise DataMismatch(
                f"{saved} differs from the labels this data gives: the data behind this "
                "dataset name changed since the run started; use another --out"
            )


def _already_done(out: Path, notify: Callable[[str], None]) -> dict:
    notify(f"{out}: already done (delete the directory to train it again)")
    return _read_final(out)


def _read_final(out: Path) -> dict:
    path = out / FINAL
    try:
        final = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        final = err
    if not isinstance(final, dict):
        why = f"not valid JSON ({final})" if isinstance(final, ValueError) else "not an object"
        raise ValueError(f"{path}: {why}; delete {out} to train it again")
    return final


def _tensorboard_writer(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(
            "--tensorboard needs the tensorboard package: pip install 'fer-bench[tensorboard]'"
        ) from None
    return SummaryWriter(log_dir=str(out / TENSORBOARD))
