"""The method plugin interface (after DomainBed's ``Algorithm``).

A method is an ``nn.Module`` holding its backbone and any heads. The engine
owns the optimiser, schedule, autocast and checkpoints; a method says what
loss a batch gives (:meth:`Method.loss`), may act after the optimiser step
(:meth:`Method.after_step`, e.g. relabelling) and predicts logits.

A method sees observed training labels only: the clean labels and the flip
mask stay with the engine, which uses them for diagnostics alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from fer_bench.backbones import Backbone
from fer_bench.recipes import Recipe
from fer_bench.search import Dist

SecondView = Literal["mirror", "mirror_aug"]


@dataclass
class Batch:
    x: torch.Tensor  # view 1, normalised float (B, C, H, W)
    y: torch.Tensor  # observed labels (B,)
    index: torch.Tensor  # positions in the training set (B,)
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


@dataclass
class StepOutput:
    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)
    # Per-sample score for noise diagnostics, higher = believed cleaner (B,).
    scores: torch.Tensor | None = None


@dataclass
class Hparams:
    """Base for a method's hyperparameters; subclasses add fields with official defaults.

    ``search_space`` (a ClassVar, so not a dataclass field): the method's own continuous
    knobs a random search may draw (fer_bench.search); none for the base.
    """

    search_space: ClassVar[dict[str, Dist]] = {}


class Method(nn.Module):
    Hparams: ClassVar[type] = Hparams
    second_view: SecondView | None = None  # may be set per instance from hparams
    score_name: ClassVar[str | None] = None  # what `scores` means, e.g. "importance"
    # The recipe of the method's official code (``--recipe official``), if it has one.
    official_recipe: ClassVar[Recipe | None] = None

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: Any) -> None:
        super().__init__()
        self.backbone = backbone
        self.info = info
        self.hparams = hparams

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        raise NotImplementedError

    def after_step(self, batch: Batch, epoch: int) -> None:
        """Called after each optimiser step, under no_grad."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]


def build_hparams(cls: type[Method], overrides: dict[str, str]) -> Any:
    """Official defaults overridden by ``--set key=value`` strings (typed by the field)."""
    hp_cls = cls.Hparams
    fields = {f.name: f for f in dataclasses.fields(hp_cls)}
    values: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in fields:
            known = ", ".join(fields) or "(none)"
            raise ValueError(f"method has no hyperparameter {key!r}; known: {known}")
        values[key] = _parse(raw, fields[key].type, key)
    return hp_cls(**values)


def _parse(raw: str, typ: Any, key: str) -> Any:
    typ = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    try:
        if typ == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        if typ == "int":
            return int(raw)
        if typ == "float":
            return float(raw)
    except ValueError:
        raise ValueError(f"--set {key}={raw}: expected {typ}") from None
    return raw
