"""The method contract (after DomainBed's ``Algorithm`` and USB's hooks); every other
file of this folder is a method.

A method is an ``nn.Module`` holding its backbone and anything else it trains
or keeps: heads, more networks (``TrainInfo.new_backbone`` builds another one
like the first), per-sample state as registered buffers. The engine owns the
optimiser (over all of the method's parameters), schedule, autocast and
checkpoints, and the checkpoint holds the method's whole ``state_dict``, so a
resumed run continues bit for bit. A method says what loss a batch gives
(:meth:`Method.loss`) and predicts logits; it may act at named points of the
training loop (hooks, all optional, run under ``no_grad`` and the run's autocast):

* :meth:`Method.before_training`: once, before the first epoch of a fresh run,
* :meth:`Method.on_epoch_start` / :meth:`Method.on_epoch_end`: around each epoch,
* :meth:`Method.after_step`: after each optimiser step (e.g. relabelling).

The first two may read the whole training set in batches (:class:`TrainingImages`).
A method sees observed training labels only: the clean labels and the flip
mask stay with the engine, which uses them for diagnostics alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from fer_bench.backbones import Backbone
from fer_bench.hparams import parse_overrides, type_name
from fer_bench.recipes import Recipe
from fer_bench.search import Dist


@dataclass
class Batch:
    x: torch.Tensor  # view 1, normalised float (B, C, H, W)
    y: torch.Tensor  # observed labels (B,)
    # Positions in the training set (B,). ``--sampler balanced`` draws with replacement, so
    # one position can occur twice in a batch: a method writing per-sample state here must
    # say what a repeat does (e.g. methods/elr.py, methods/relabel.py).
    index: torch.Tensor
    x2: torch.Tensor | None = None  # second view when the method asks for one


@dataclass(frozen=True)
class TrainInfo:
    """What a method may know about its training set before training."""

    num_classes: int
    num_train: int
    observed_labels: torch.Tensor  # (N,) observed (possibly noisy) training labels
    epochs: int
    steps_per_epoch: int
    batch_size: int
    # A fresh backbone like the method's own (its own initial draw, the same pretrained
    # weights), for a method that trains more than one network.
    new_backbone: Callable[[], Backbone] | None = None


@dataclass(frozen=True)
class TrainingImages:
    """The training set as a hook may read it: every image once, in training order,
    under the evaluation view (centre crop, normalised, no randomness), with its
    observed label. Never the clean labels."""

    observed_labels: torch.Tensor  # (N,)
    # batch size -> (positions, images on the device) of each batch, the last one short
    read: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]
    batch_size: int  # the run's evaluation batch size

    def __len__(self) -> int:
        return len(self.observed_labels)

    def batches(self, batch_size: int | None = None) -> Iterator[Batch]:
        for index, x in self.read(batch_size or self.batch_size):
            yield Batch(x=x, y=self.observed_labels[index].to(x.device), index=index.to(x.device))


@dataclass
class StepOutput:
    loss: torch.Tensor
    # Per-step numbers to average over the epoch: 0-dim tensors, read once per epoch
    # (``.item()`` here would make every step wait for the device), or Python numbers.
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)
    # Per-sample score for noise diagnostics, higher = believed cleaner (B,).
    scores: torch.Tensor | None = None


@dataclass
class Hparams:
    """Base for a method's hyperparameters; subclasses add fields with official defaults.

    ``search_space`` (a ClassVar, so not a dataclass field): the method's own continuous
    knobs a random search may draw (fer_bench.search); none for the base.
    """

    search_space: ClassVar[dict[str, Dist]] = {}


# Method families, in the order `fer-bench list methods` shows them; "other" is a
# plugin's family until it names one.
FAMILIES = ("fer", "noise", "noise+longtail", "longtail", "baseline", "other")


class Method(nn.Module):
    Hparams: ClassVar[type] = Hparams
    # A registered view (fer_bench.training.views: mirror, mirror_aug, independent, strong) given as
    # Batch.x2; None = one view. May be set per instance from hparams.
    second_view: str | None = None
    score_name: ClassVar[str | None] = None  # what `scores` means, e.g. "importance"
    # The recipe of the method's official code (``--recipe official``), if it has one.
    official_recipe: ClassVar[Recipe | None] = None
    # What `fer-bench list methods` groups it under: one of FAMILIES.
    family: ClassVar[str] = "other"

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: Any) -> None:
        super().__init__()
        self.backbone = backbone
        self.info = info
        self.hparams = hparams

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        raise NotImplementedError

    def before_training(self, images: TrainingImages) -> None:
        """Once, before the first epoch of a fresh run; a resumed run has what it did in
        its checkpoint (the method's state) and does not call it again."""

    def on_epoch_start(self, epoch: int, images: TrainingImages) -> None:
        """At the start of each epoch (0-based), a resumed one included, before its
        first batch is drawn (e.g. a pass over the training set)."""

    def on_epoch_end(self, epoch: int) -> None:
        """After the epoch's last optimiser step, before evaluation and the checkpoint."""

    def after_step(self, batch: Batch, epoch: int) -> None:
        """Called after each optimiser step."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]


def build_hparams(cls: type[Method], overrides: dict[str, str]) -> Any:
    """Official defaults overridden by ``--set key=value`` strings (typed by the field)."""
    types = {f.name: type_name(f.type) for f in dataclasses.fields(cls.Hparams)}
    return cls.Hparams(**parse_overrides(types, overrides))
