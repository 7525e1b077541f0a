"""The method-agnostic training engine.

API:
    train(cfg, out_root, resume=True, progress=True, bundle=None, wait=False, notify=...)
        -> final record (dict)
    run_dir(cfg, out_root) -> Path of the run directory ``<out_root>/<method>-<hash12>``

A run directory holds config.json, labels_train.csv / labels_val.csv,
metrics.jsonl (one line per epoch), checkpoint.pt (every epoch, the one
before kept as checkpoint.prev.pt), final.json and, last, an empty ``done``
marker. An interrupted run continues from its newest readable checkpoint to
the same numbers as an uninterrupted one (on CPU; on a GPU non-deterministic
kernels may make them differ slightly); a finished run is returned as it is.
Checkpoints hold tensors and plain values only and are read with
``weights_only=True``: resuming someone else's run directory runs no code.
One process at a time trains a run directory (a lock file beside it). Every
resume, fallback or restart is said through ``notify``, one line each.
The engine alone holds the clean labels and the flip mask; a method receives
observed labels only.
"""

from __future__ import annotations

import dataclasses
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

from fer_bench.augment import BatchAugmenter
from fer_bench.backbones import check_backbone_name, create_backbone
from fer_bench.config import RunConfig
from fer_bench.data import load_dataset
from fer_bench.data.base import DatasetBundle, Split
from fer_bench.data.store import ImageStore, channel_stats
from fer_bench.diagnostics import noise_diagnostics
from fer_bench.identity import record_fields, run_hash, run_name, staleness
from fer_bench.labels import LabelSet, build_labels
from fer_bench.method import Batch, Method, TrainInfo, build_hparams
from fer_bench.metrics import classification_metrics, collapse_note
from fer_bench.optim import build_optimizer, build_scheduler
from fer_bench.precision import resolve_precision
from fer_bench.recipes import recipe_record
from fer_bench.records import environment, read_jsonl, write_json_atomic, write_jsonl_atomic
from fer_bench.registry import METHODS, load_plugin_file
from fer_bench.sampling import epoch_order
from fer_bench.selection import summary as selection_summary
from fer_bench.training_progress import TrainingProgress

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"


class Divergence(RuntimeError):
    pass


class StaleRun(ValueError):
    """A finished run whose method changed since it was recorded."""


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


@dataclasses.dataclass
class _Data:
    train_images: ImageStore  # on the CPU until the normalisation statistics are taken
    observed: torch.Tensor  # what the method sees
    train_labels: LabelSet  # observed + clean: engine only
    val: Split
    val_labels: np.ndarray
    test: Split


def _prepare_data(bundle: DatasetBundle, labels: dict[str, LabelSet]) -> tuple[_Data, dict]:
    train = bundle.train.subset(labels["train"].index)
    val = bundle.val.subset(labels["val"].index)
    data = _Data(
        train_images=ImageStore.for_training(train.images, "cpu"),
        observed=torch.from_numpy(labels["train"].observed),
        train_labels=labels["train"],
        val=val,
        val_labels=labels["val"].observed,
        test=bundle.test,
    )
    info = {
        "train_noise_rate": labels["train"].noise_rate,
        "val_noise_rate": labels["val"].noise_rate,
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(bundle.test),
        "train_class_counts": np.bincount(
            labels["train"].observed, minlength=bundle.num_classes
        ).tolist(),
    }
    return data, info


@torch.no_grad()
def evaluate(
    method: Method, aug: BatchAugmenter, split: Split, labels: np.ndarray, cfg: RunConfig
) -> dict:
    method.eval()
    probs = []
    images = ImageStore(split.images, torch.device(cfg.device))
    for start in range(0, len(split), cfg.eval_batch_size):
        x = aug.eval_view(images[start : start + cfg.eval_batch_size])
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            p = method.predict(x).float().softmax(1)
            if cfg.aug.tta_flip:
                p = (p + method.predict(x.flip(-1)).float().softmax(1)) / 2
        probs.append(p)
    method.train()
    return classification_metrics(torch.cat(probs).cpu().numpy(), labels, split.soft_labels)


def _rng_state(aug_gen: torch.Generator, order_gen: torch.Generator) -> dict:
    return {
        "torch": torch.get_rng_state(),
        # Methods draw on the device too (RUL's permutation, dropout).
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "aug": aug_gen.get_state(),
        "order": order_gen.get_state(),
    }


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
    hparams = build_hparams(method_cls, cfg.hparams)
    check_backbone_name(cfg.backbone)
    _check_device(cfg.device)
    out = run_dir(cfg, out_root)
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    bundle = bundle if bundle is not None else load_dataset(cfg.data)
    labels = build_labels(bundle, cfg.protocol)
    if (out / "done").exists():
        final = _finished_record(out, labels, rerun_stale, notify)
        if final is not None:
            return final
    precision = resolve_precision(cfg.bf16, cfg.device)
    # What this machine executes; config.json and the hash keep what was asked for.
    run_cfg = dataclasses.replace(cfg, bf16=precision == "bf16")
    # Everything that can reject the config happens before the run directory is written.
    data, label_info = _prepare_data(bundle, labels)
    backbone = create_backbone(
        cfg.backbone, bundle.num_classes, bundle.image_shape[0], cfg.pretrained
    )
    _check_input_size(backbone, cfg, bundle.image_shape[0])
    n_train = len(data.observed)
    steps = n_train // cfg.batch_size
    if steps == 0:
        raise ValueError(f"batch size {cfg.batch_size} exceeds the {n_train} training images")
    info = TrainInfo(
        num_classes=bundle.num_classes,
        num_train=n_train,
        observed_labels=data.observed.clone(),
        epochs=cfg.epochs,
        steps_per_epoch=steps,
        batch_size=cfg.batch_size,
    )
    method: Method = method_cls(backbone, info, hparams).to(cfg.device)
    if cfg.channels_last:
        method = method.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg.optim, method.param_groups(cfg.optim.lr))
    scheduler = build_scheduler(cfg.optim, optimizer, cfg.epochs, steps)
    with _run_lock(out, wait):
        if (out / "done").exists():  # finished by the process we waited for
            return _already_done(out, notify)
        state = _resume_state(out, cfg, precision, resume, notify)
        if state is not None:
            _check_saved_labels(out, labels)
        # A resumed run's wall time continues from what its checkpoint had already spent.
        started = t0 - (state.get("elapsed_s", 0.0) if state else 0.0)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "config.json", {**cfg.to_dict(), **record_fields(cfg)})
        for name, label_set in labels.items():
            label_info[f"{name}_sha256"] = label_set.save(out / f"labels_{name}.csv")
        mean, std = channel_stats(data.train_images.images)
        data.train_images = ImageStore.for_training(data.train_images.images, cfg.device)
        aug_gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
        order_gen = torch.Generator().manual_seed(cfg.seed + 1)
        aug = BatchAugmenter(cfg.aug, mean, std, bundle.image_shape[1], aug_gen)

        history: list[dict] = []
        if state is not None:
            _restore(state, method, optimizer, scheduler, aug_gen, order_gen)
            history = read_jsonl(out / "metrics.jsonl")[: state["epoch"]]
            write_jsonl_atomic(out / "metrics.jsonl", history)
            notify(f"{out}: resumed from epoch {state['epoch']} of {cfg.epochs}")
        first_epoch = len(history)

        record = _base_record(cfg, bundle, hparams, label_info, precision)
        record["data_path"] = data.train_images.kind
        reporter = TrainingProgress(cfg.method, cfg.epochs, steps, enabled=progress)
        writer = _tensorboard_writer(out) if tensorboard else None
        try:
            with reporter:
                reporter.advance_to(first_epoch)
                for epoch in range(first_epoch, cfg.epochs):
                    row = _train_epoch(
                        run_cfg,
                        method,
                        aug,
                        data,
                        optimizer,
                        scheduler,
                        order_gen,
                        epoch,
                        steps,
                        reporter,
                    )
                    history.append(_evaluate_epoch(row, run_cfg, method, aug, data))
                    write_jsonl_atomic(out / "metrics.jsonl", history)
                    _save_checkpoint(
                        out / CHECKPOINT,
                        method,
                        optimizer,
                        scheduler,
                        epoch + 1,
                        aug_gen,
                        order_gen,
                        time.perf_counter() - started,
                        precision,
                    )
                    reporter.epoch_done(epoch, row)
                    if writer is not None:
                        _log_scalars(writer, row)
        except Divergence as err:
            record.update(status="failed", reason=str(err), epochs_completed=len(history))
            return _finish(out, record, history, started)
        record.update(status="done", reason=None, epochs_completed=len(history))
        return _finish(out, record, history, started)


def _base_record(
    cfg: RunConfig, bundle: DatasetBundle, hparams: Any, label_info: dict, precision: str
) -> dict[str, Any]:
    return {
        "hash": run_hash(cfg),
        "method": cfg.method,
        "dataset": bundle.name,
        "class_names": list(bundle.class_names),
        "config": cfg.to_dict(),
        "hparams": dataclasses.asdict(hparams),
        "labels": label_info,
        "dataset_info": bundle.info,
        "environment": environment(cfg.device),
        "precision": precision,
        "recipe": recipe_record(cfg),
    }


def _evaluate_epoch(
    row: dict, cfg: RunConfig, method: Method, aug: BatchAugmenter, data: _Data
) -> dict:
    """A trained epoch's row with its noise diagnostics, val and test metrics, time."""
    scores = row.pop("scores")
    row["noise"] = (
        noise_diagnostics(scores, data.train_labels.flipped, method.score_name)
        if scores is not None
        else None
    )
    row["val"] = evaluate(method, aug, data.val, data.val_labels, cfg)
    row["test"] = evaluate(method, aug, data.test, data.test.labels, cfg)
    row["time_s"] = round(time.perf_counter() - row.pop("t0"), 3)
    return row


def _check_device(device: str) -> None:
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ValueError(f"--device {device!r}: not a device (cpu, cuda, cuda:1, ...)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU is available here; use --device cpu")


def _check_input_size(backbone: torch.nn.Module, cfg: RunConfig, channels: int) -> None:
    """A forward pass on blank images: an input too small for the backbone fails here,
    before anything is written, not in the first training step."""
    side = cfg.aug.crop or cfg.data.image_size
    backbone.eval()
    try:
        with torch.no_grad():
            backbone(torch.zeros(2, channels, side, side))
    except RuntimeError as err:
        raise ValueError(
            f"--image-size {cfg.data.image_size}: backbone {cfg.backbone} cannot take "
            f"{side}x{side} inputs ({_first_line(err)})"
        ) from None
    finally:
        backbone.train()


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _finished_record(
    out: Path, labels: dict[str, LabelSet], rerun_stale: bool, notify: Callable[[str], None]
) -> dict | None:
    """The record of a finished run, after checking it is still this experiment: its
    method unchanged (else :class:`StaleRun`, or None to retrain with ``rerun_stale``)
    and its labels the ones this data gives (else :class:`DataMismatch`)."""
    stale = staleness(json.loads((out / "config.json").read_text()))
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


def _resume_state(
    out: Path, cfg: RunConfig, precision: str, resume: bool, notify: Callable[[str], None]
) -> dict | None:
    """The checkpoint to go on from, or None after clearing what cannot be resumed."""
    if not out.exists():
        return None
    state, why_not = _load_checkpoint(out, cfg.device, notify) if resume else (None, "resume=False")
    if state is None:
        notify(f"{out}: starting over ({why_not})")
        shutil.rmtree(out)
        return None
    # Checkpoints from before precision was recorded ran as asked.
    trained_in = state.get("precision", "bf16" if cfg.bf16 else "fp32")
    if trained_in != precision:
        raise RuntimeError(
            f"{out} was trained for {state['epoch']} epochs in {trained_in}; here it would go "
            f"on in {precision}. Resume it on a machine that runs {trained_in} natively, or "
            "delete the directory to start over"
        )
    return state


def _load_checkpoint(
    out: Path, device: str, notify: Callable[[str], None]
) -> tuple[dict | None, str]:
    """The newest readable checkpoint (the previous one if the last is broken), or None
    and why there is none."""
    try:
        rows = len(read_jsonl(out / "metrics.jsonl"))
    except ValueError:  # a damaged log: no checkpoint can be matched to its epochs
        rows = 0
    why_not = "no checkpoint: interrupted in its first epoch"
    for path in (out / CHECKPOINT, out / PREVIOUS_CHECKPOINT):
        if not path.exists():
            continue
        try:
            # weights_only: a checkpoint holding code (a pickled object) is refused, not run.
            state = torch.load(path, map_location=device, weights_only=True)
            if not isinstance(state, dict) or not 0 < int(state["epoch"]) <= rows:
                raise ValueError(f"epoch not in 1..{rows}, the epochs in metrics.jsonl")
        except Exception as err:  # truncated, not a checkpoint, refused by weights_only
            why_not = f"{path.name} unreadable: {type(err).__name__}: {_first_line(err)}"
            notify(f"{out}: {why_not}")
            continue
        if path.name == PREVIOUS_CHECKPOINT:
            notify(f"{out}: falling back to {path.name} (epoch {state['epoch']})")
        return state, ""
    return None, why_not


def _restore(
    state: dict,
    method: Method,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    aug_gen: torch.Generator,
    order_gen: torch.Generator,
) -> None:
    method.load_state_dict(state["method"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"].cpu())
    if state["rng"].get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
    aug_gen.set_state(state["rng"]["aug"])
    order_gen.set_state(state["rng"]["order"])


def _train_epoch(
    cfg: RunConfig,
    method: Method,
    aug: BatchAugmenter,
    data: _Data,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    order_gen: torch.Generator,
    epoch: int,
    steps: int,
    reporter: TrainingProgress,
) -> dict:
    t0 = time.perf_counter()
    n = len(data.observed)
    perm = epoch_order(cfg.sampler, data.observed, order_gen)
    scores = np.full(n, np.nan) if method.score_name else None
    loss_sum, logs_sum = 0.0, {}
    for step, (idx, images) in enumerate(data.train_images.batches(perm, cfg.batch_size, steps)):
        x1, x2 = aug.train_views(images, method.second_view)
        if cfg.channels_last:
            x1 = x1.contiguous(memory_format=torch.channels_last)
            x2 = None if x2 is None else x2.contiguous(memory_format=torch.channels_last)
        batch = Batch(x=x1, y=data.observed[idx].to(cfg.device), index=idx.to(cfg.device), x2=x2)
        with torch.autocast(x1.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            out = method.loss(batch, epoch)
        loss = out.loss.float()
        if not torch.isfinite(loss):
            raise Divergence(
                f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, step {step + 1}"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            method.after_step(batch, epoch)
        if scores is not None and out.scores is not None:
            scores[idx.numpy()] = out.scores.detach().float().cpu().numpy()
        loss_sum += loss.item()
        for k, v in out.logs.items():
            logs_sum[k] = logs_sum.get(k, 0.0) + float(v)
        reporter.step(loss_sum / (step + 1))
    return {
        "epoch": epoch + 1,
        "lr": optimizer.param_groups[0]["lr"],
        "train": {"loss": loss_sum / steps, **{k: v / steps for k, v in logs_sum.items()}},
        "scores": scores,
        "train_time_s": round(time.perf_counter() - t0, 3),
        "t0": t0,
    }


def _tensorboard_writer(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(
            "--tensorboard needs the tensorboard package: pip install 'fer-bench[tensorboard]'"
        ) from None
    return SummaryWriter(log_dir=str(out / "tensorboard"))


def _log_scalars(writer: Any, row: dict) -> None:
    step = row["epoch"]
    writer.add_scalar("train/loss", row["train"]["loss"], step)
    writer.add_scalar("train/lr", row["lr"], step)
    for split in ("val", "test"):
        for key in ("acc", "mean_class_acc", "macro_f1", "nll", "ece"):
            writer.add_scalar(f"{split}/{key}", row[split][key], step)
    if row["noise"] is not None and row["noise"]["auroc"] is not None:
        writer.add_scalar("noise/auroc", row["noise"]["auroc"], step)
    writer.flush()


def _save_checkpoint(
    path: Path,
    method: Method,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    epoch: int,
    aug_gen: torch.Generator,
    order_gen: torch.Generator,
    elapsed_s: float,
    precision: str,
) -> None:
    """Write ``path`` through a temporary file, keeping the one before as the previous
    checkpoint: a crash or full disk at any point leaves one complete checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(
            {
                "method": method.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "rng": _rng_state(aug_gen, order_gen),
                "elapsed_s": elapsed_s,
                "precision": precision,
            },
            tmp,
        )
        if path.exists():
            path.replace(path.with_name(PREVIOUS_CHECKPOINT))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed save leaves no .tmp behind


def _finish(out: Path, record: dict, history: list[dict], started: float) -> dict:
    record["selection"] = selection_summary(history) if history else None
    selected = record["selection"]["val"]["test"] if history else {}
    record["collapsed"] = collapse_note(selected, record["class_names"])
    record["time_s"] = round(time.perf_counter() - started, 2)
    record["epoch_time_s"] = [r["time_s"] for r in history]
    write_json_atomic(out / "final.json", record)
    (out / "done").touch()
    return record
