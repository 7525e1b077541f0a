"""One run's training loop as an object with phases: build, restore, fit, evaluate, finish.

:meth:`Trainer.build` makes everything that can reject a config (data, model,
optimiser) before anything is written; :meth:`Trainer.restore` prepares the
run's random streams and, given a checkpoint, continues from it;
:meth:`Trainer.fit` trains the remaining epochs, :meth:`Trainer.evaluate`
scores each one, :meth:`Trainer.finish` writes the final record. The trainer
calls the method's hooks (``methods/base.py``) at their points and names no
method. The run directory itself (lock, identity checks, config and label
files) is :mod:`fer_bench.training.engine`'s.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fer_bench.atomic import jsonl_text, read_jsonl, write_jsonl_atomic
from fer_bench.backbones import (
    Backbone,
    TrainingInputs,
    calibration_sample,
    compile_backbone,
    create_backbone,
)
from fer_bench.config import RunConfig
from fer_bench.data.base import DatasetBundle, Split
from fer_bench.data.store import ImageStore, channel_stats
from fer_bench.methods.base import Batch, Method, TrainInfo, TrainingImages
from fer_bench.recipes import recipe_record
from fer_bench.records import checkpoint
from fer_bench.records.environment import environment
from fer_bench.records.identity import run_hash
from fer_bench.records.layout import CHECKPOINT, METRICS, seal_run
from fer_bench.records.selection import collapse_note
from fer_bench.records.selection import summary as selection_summary
from fer_bench.training.augment import BatchAugmenter
from fer_bench.training.diagnostics import noise_diagnostics, score_by_observed_class
from fer_bench.training.labels import LabelSet
from fer_bench.training.metrics import classification_metrics
from fer_bench.training.optim import build_optimizer, build_scheduler
from fer_bench.training.progress import TrainingProgress
from fer_bench.training.sampling import epoch_order


class Divergence(RuntimeError):
    pass


class _EpochTally:
    """An epoch's loss, logs and per-sample scores, summed where they are computed
    (the device) and read once, at the epoch's end: a step never waits for the
    device. Sums are float64 in step order, as Python floats summed them before, so
    the record's numbers are unchanged. A non-finite loss is remembered by its first
    step and raised at the read: later steps cannot undo it, and the epoch is never
    recorded."""

    def __init__(self, n: int, scored: bool, device: str) -> None:
        zero = torch.zeros((), dtype=torch.float64, device=device)
        self.loss, self.bad_loss, self.bad_step = zero, zero.clone(), zero.clone() - 1
        # Each log's sum: a float64 tensor for a tensor log, a float for a Python number.
        self.logs: dict[str, torch.Tensor | float] = {}
        self._scores = torch.full((n,), float("nan"), device=device) if scored else None
        self.steps = 0

    def add(
        self,
        step: int,
        loss: torch.Tensor,
        logs: dict[str, float | torch.Tensor],
        index: torch.Tensor,
        scores: torch.Tensor | None,
    ) -> None:
        value = loss.detach().double()
        first_bad = (self.bad_step < 0) & ~torch.isfinite(value)
        self.bad_step = torch.where(first_bad, float(step), self.bad_step)
        self.bad_loss = torch.where(first_bad, value, self.bad_loss)
        self.loss = self.loss + value
        for k, v in logs.items():
            v = v.detach().double() if isinstance(v, torch.Tensor) else float(v)
            self.logs[k] = self.logs.get(k, 0.0) + v
        if self._scores is not None and scores is not None:
            # A diagnostic only: an index drawn twice in a batch (--sampler balanced) keeps
            # one of its scores (which one is the device's: the last on CPU).
            self._scores[index] = scores.detach().float()
        self.steps += 1

    def read(self, epoch: int) -> dict[str, float]:
        """The epoch's mean loss and logs; Divergence if a step's loss was not finite."""
        bad_step, bad_loss = int(self.bad_step), float(self.bad_loss)
        if bad_step >= 0:
            raise Divergence(
                f"non-finite loss ({bad_loss}) at epoch {epoch + 1}, step {bad_step + 1}"
            )
        logs = {k: float(v) / self.steps for k, v in self.logs.items()}
        return {"loss": float(self.loss) / self.steps, **logs}

    def scores(self) -> np.ndarray | None:
        return None if self._scores is None else self._scores.cpu().numpy().astype(np.float64)


@dataclasses.dataclass
class _Data:
    train_images: ImageStore  # on the CPU until the normalisation statistics are taken
    observed: torch.Tensor  # what the method sees (on the CPU: the epoch order's input)
    observed_on_device: torch.Tensor  # the same, where the batches are
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
        observed_on_device=torch.from_numpy(labels["train"].observed),
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


class Trainer:
    """The state of one run's training, its own: data, method, optimiser, schedule,
    random streams, history. Use in phase order: build, restore, fit."""

    def __init__(
        self,
        cfg: RunConfig,
        method_cls: type[Method],
        hparams: Any,
        bundle: DatasetBundle,
        labels: dict[str, LabelSet],
        precision: str,
    ) -> None:
        self.cfg = cfg
        # What this machine executes; config.json and the hash keep what was asked for.
        self.run_cfg = dataclasses.replace(cfg, bf16=precision == "bf16")
        self.method_cls = method_cls
        self.hparams = hparams
        self.bundle = bundle
        self.labels = labels
        self.precision = precision
        self.history: list[dict] = []
        self.position = (0, 0)  # (epoch, steps of it done) being trained: an interrupt says it

    # --- build: everything that can reject the config, before anything is written ---

    def build(self) -> None:
        cfg, bundle = self.cfg, self.bundle
        if bundle.image_shape[0] != cfg.data.channels:  # else the record would misstate it
            raise ValueError(
                f"--cfg data.channels={cfg.data.channels}: the {bundle.name} data has "
                f"{bundle.image_shape[0]} channels"
            )
        self.data, self.label_info = _prepare_data(bundle, self.labels)
        # the inputs' normalisation and a sample of them, which a backbone may adapt to
        images = self.data.train_images.images
        mean, std = channel_stats(images)
        self.inputs = TrainingInputs(mean, std, calibration_sample(images, mean, std))
        backbone = self._new_backbone()
        _check_input_size(backbone, cfg, bundle.image_shape[0])
        n_train = len(self.data.observed)
        self.steps = n_train // cfg.batch_size
        if self.steps == 0:
            raise ValueError(f"batch size {cfg.batch_size} exceeds the {n_train} training images")
        info = TrainInfo(
            num_classes=bundle.num_classes,
            num_train=n_train,
            observed_labels=self.data.observed.clone(),
            epochs=cfg.epochs,
            steps_per_epoch=self.steps,
            batch_size=cfg.batch_size,
            new_backbone=self._new_backbone,
        )
        method = self.method_cls(backbone, info, self.hparams).to(cfg.device)
        if cfg.channels_last:
            method = method.to(memory_format=torch.channels_last)
        self.method: Method = method
        self.optimizer = build_optimizer(cfg.optim, method.param_groups(cfg.optim.lr))
        self.scheduler = build_scheduler(cfg.optim, self.optimizer, cfg.epochs, self.steps)

    def _new_backbone(self) -> Backbone:
        """The run's backbone, or another like it for a method that trains several; each
        compiled under ``--compile``, whenever the method builds it (it compiles at its
        first call: nothing runs here)."""
        cfg = self.cfg
        backbone = create_backbone(
            cfg.backbone,
            self.bundle.num_classes,
            self.bundle.image_shape[0],
            cfg.pretrained,
            self.inputs,
        )
        return compile_backbone(backbone) if cfg.torch_compile else backbone

    # --- restore: the run's streams, from the start or from a checkpoint ---

    def restore(
        self, out: Path, state: dict | None, started: float, notify: Any = lambda m: None
    ) -> None:
        """Take the normalisation statistics (build's), move the images to the device, seed the
        augmentation and order streams; with ``state``, continue from that checkpoint.
        ``started``: the run's start on ``time.perf_counter``, before resumed time."""
        cfg = self.cfg
        self.out = out
        self.started = started
        mean, std = self.inputs.mean, self.inputs.std
        self.data.train_images = ImageStore.for_training(self.data.train_images.images, cfg.device)
        self.data.observed_on_device = self.data.observed.to(cfg.device)
        self.aug_gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
        self.order_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.aug = BatchAugmenter(cfg.aug, mean, std, self.bundle.image_shape[1], self.aug_gen)
        if state is None:
            return
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"], self.aug_gen, self.order_gen, cfg.device)
        # The log as of the checkpoint, from the checkpoint (its digest covers it), so a
        # metrics.jsonl damaged since cannot carry into the run; older ones read the file.
        if checkpoint.METRICS_KEY in state:
            self.history = [json.loads(line) for line in state[checkpoint.METRICS_KEY].splitlines()]
        else:
            self.history = read_jsonl(out / METRICS)[: state["epoch"]]
        write_jsonl_atomic(out / METRICS, self.history)
        notify(f"{out}: resumed from epoch {state['epoch']} of {cfg.epochs}")

    # --- fit: the epochs left, each evaluated and checkpointed ---

    def fit(self, progress: bool = True, writer: Any = None) -> dict:
        """Train the remaining epochs; the final record (status done, or failed on a
        non-finite loss)."""
        cfg = self.run_cfg
        first_epoch = len(self.history)
        resume = f"fer-bench run --resume {self.out}"
        reporter = TrainingProgress(cfg.method, cfg.epochs, self.steps, progress, resume)
        try:
            with reporter:
                reporter.advance_to(first_epoch)
                if first_epoch == 0:
                    with self._hook():
                        self.method.before_training(self.training_images())
                for epoch in range(first_epoch, cfg.epochs):
                    row = self._train_epoch(epoch, reporter)
                    self.history.append(self.evaluate(row))
                    write_jsonl_atomic(self.out / METRICS, self.history)
                    self._save_checkpoint(epoch + 1)
                    reporter.epoch_done(epoch, row)
                    if writer is not None:
                        _log_scalars(writer, row)
        except Divergence as err:
            return self.finish("failed", str(err))
        except KeyboardInterrupt as err:
            epoch, step = self.position
            err.where = (  # type: ignore[attr-defined]
                f"in epoch {epoch} of {cfg.epochs}, after step {step} of {self.steps}; "
                f"last checkpoint: epoch {len(self.history)}"
            )
            raise
        return self.finish("done", None)

    @contextmanager
    def _hook(self) -> Iterator[None]:
        """A hook runs as a step's forward does (no gradients, the run's autocast) and
        leaves the method in training mode whatever mode its pass used."""
        device_type = torch.device(self.cfg.device).type
        with (
            torch.no_grad(),
            torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.run_cfg.bf16),
        ):
            yield
        self.method.train()

    def training_images(self) -> TrainingImages:
        return TrainingImages(
            observed_labels=self.data.observed_on_device,
            read=self._read_training_images,
            batch_size=self.cfg.eval_batch_size,
        )

    def _read_training_images(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.data.observed)
        order = torch.arange(n)
        for index, images in self.data.train_images.batches(order, batch_size, -(-n // batch_size)):
            yield index, self._layout(self.aug.eval_view(images))

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def _train_epoch(self, epoch: int, reporter: TrainingProgress) -> dict:
        cfg, method, data = self.run_cfg, self.method, self.data
        optimizer, scheduler = self.optimizer, self.scheduler
        t0 = time.perf_counter()
        with self._hook():
            method.on_epoch_start(epoch, self.training_images())
        perm = epoch_order(cfg.sampler, data.observed, self.order_gen)
        tally = _EpochTally(len(data.observed), method.score_name is not None, cfg.device)
        batches = data.train_images.batches(perm, cfg.batch_size, self.steps)
        self.position = (epoch + 1, 0)
        for step, (idx, images) in enumerate(batches):
            x1, x2 = self.aug.train_views(images, method.second_view)
            if cfg.channels_last:
                x1 = x1.contiguous(memory_format=torch.channels_last)
                x2 = None if x2 is None else x2.contiguous(memory_format=torch.channels_last)
            index = idx.to(cfg.device, non_blocking=True)
            batch = Batch(x=x1, y=data.observed_on_device[index], index=index, x2=x2)
            with torch.autocast(x1.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                out = method.loss(batch, epoch)
            loss = out.loss.float()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                method.after_step(batch, epoch)
            tally.add(step, loss, out.logs, index, out.scores)
            reporter.step()
            self.position = (epoch + 1, step + 1)
        with self._hook():
            method.on_epoch_end(epoch)
        train = tally.read(epoch)  # the epoch's one read from the device
        return {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train": train,
            "scores": tally.scores(),
            "train_time_s": round(time.perf_counter() - t0, 3),
            "t0": t0,
        }

    def _save_checkpoint(self, epoch: int) -> None:
        checkpoint.save(
            self.out / CHECKPOINT,
            {
                "method": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "epoch": epoch,
                "rng": checkpoint.rng_state(self.aug_gen, self.order_gen, self.cfg.device),
                "elapsed_s": time.perf_counter() - self.started,
                "precision": self.precision,
                checkpoint.METRICS_KEY: jsonl_text(self.history),
            },
        )

    # --- evaluate: one trained epoch's row ---

    def evaluate(self, row: dict) -> dict:
        """A trained epoch's row with its noise diagnostics, val and test metrics, time."""
        data, method = self.data, self.method
        scores = row.pop("scores")
        labels = data.train_labels
        k = self.bundle.num_classes
        row["noise"] = noise_diagnostics(scores, labels.flipped, method.score_name, labels.clean, k)
        row["score_by_observed_class"] = score_by_observed_class(
            scores, labels.observed, method.score_name, k
        )
        row["val"] = evaluate(method, self.aug, data.val, data.val_labels, self.run_cfg)
        row["test"] = evaluate(method, self.aug, data.test, data.test.labels, self.run_cfg)
        row["time_s"] = round(time.perf_counter() - row.pop("t0"), 3)
        return row

    # --- finish: the final record and the done marker ---

    def finish(self, status: str, reason: str | None) -> dict:
        cfg, history = self.cfg, self.history
        record = {
            "hash": run_hash(cfg),
            "method": cfg.method,
            "dataset": self.bundle.name,
            "class_names": list(self.bundle.class_names),
            "config": cfg.to_dict(),
            "hparams": dataclasses.asdict(self.hparams),
            "labels": self.label_info,
            "dataset_info": self.bundle.info,
            "environment": environment(cfg.device),
            "precision": self.precision,
            "recipe": recipe_record(cfg),
            "data_path": self.data.train_images.kind,
            "status": status,
            "reason": reason,
            "epochs_completed": len(history),
        }
        record["selection"] = selection_summary(history) if history else None
        selected = record["selection"]["val"]["test"] if history else {}
        record["collapsed"] = collapse_note(selected, record["class_names"])
        record["time_s"] = round(time.perf_counter() - self.started, 2)
        record["epoch_time_s"] = [r["time_s"] for r in history]
        seal_run(self.out, record)
        return record


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
            f"{side}x{side} inputs ({checkpoint.first_line(err)})"
        ) from None
    finally:
        backbone.train()


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
