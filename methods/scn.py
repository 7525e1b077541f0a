"""SCN - Self-Cure Network (Wang et al., CVPR 2020), after kaiwang960112/Self-Cure-Network.

An importance head alpha = sigmoid(a.f + a0) on the pooled feature scales the
logits (training logits alpha * l); the loss is cross-entropy on alpha * l plus
the rank regulariser max(0, margin_1 - (mean alpha of the top beta share -
mean alpha of the rest)). From epoch ``relabel_epoch`` (1-based, as the
official loop counts) on, after each optimiser step, samples whose prediction
softmax(alpha * l) beats their label by more than ``margin_2`` get relabelled
to the prediction, permanently (a registered label table).

Choices where the official code and the paper disagree:
* ``relabel_scope="batch"`` (official): every sample of the batch is tested;
  ``"low"`` (paper): only the low-importance group.
* The relabelling uses the outputs of the step's own forward pass (before the
  update), as the official loop does.
A batch too small to split into two non-empty groups gets no rank loss (the
official code would take the mean of an empty group).
``predict`` returns alpha * l, the official model's output: argmax equals
that of l (alpha > 0) and its softmax is what cross-entropy calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.backbones import Backbone
from fer_bench.method import Batch, Hparams, Method, StepOutput, TrainInfo
from fer_bench.methods.relabel import LabelTable
from fer_bench.registry import METHODS

SCOPES = ("batch", "low")


@dataclass
class ScnHparams(Hparams):
    beta: float = 0.7  # share of the batch in the high-importance group
    margin_1: float = 0.15  # rank margin delta1 (the authors suggest 0.07 at batch 64)
    margin_2: float = 0.2  # relabelling margin delta2
    relabel_epoch: int = 10  # 1-based epoch from which relabelling runs
    relabel_scope: str = "batch"  # "batch" (official) | "low" (paper)

    def __post_init__(self) -> None:
        if self.relabel_scope not in SCOPES:
            raise ValueError(f"scn relabel_scope must be one of {SCOPES}")


def rank_split(alpha: torch.Tensor, beta: float) -> torch.Tensor:
    """Mask of the floor(beta * B) highest importances (the high group)."""
    high = torch.zeros_like(alpha, dtype=torch.bool)
    high[alpha.topk(int(beta * alpha.numel())).indices] = True
    return high


def rank_loss(alpha: torch.Tensor, beta: float, margin: float) -> torch.Tensor:
    """max(0, margin - (mean alpha_H - mean alpha_L)); zero when a group would be empty."""
    high = rank_split(alpha, beta)
    if high.all() or not high.any():
        return alpha.sum() * 0.0
    return F.relu(margin - (alpha[high].mean() - alpha[~high].mean()))


@METHODS.register("scn")
class SCN(Method):
    Hparams = ScnHparams
    score_name = "importance"

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: ScnHparams) -> None:
        super().__init__(backbone, info, hparams)
        self.importance = nn.Linear(backbone.num_features, 1)
        self.table = LabelTable(info.observed_labels)
        self._pending: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone.pool(self.backbone.feature_map(x))
        alpha = torch.sigmoid(self.importance(f)).float().squeeze(1)
        return alpha, alpha.unsqueeze(1) * self.backbone.classifier(f).float()

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        hp = self.hparams
        alpha, logits = self._forward(batch.x)
        y = self.table.lookup(batch.index)
        wce = F.cross_entropy(logits, y)
        rr = rank_loss(alpha, hp.beta, hp.margin_1)
        if epoch + 1 >= hp.relabel_epoch:
            low = ~rank_split(alpha.detach(), hp.beta)
            candidates = low if hp.relabel_scope == "low" else torch.ones_like(low)
            self._pending = (batch.index, logits.detach().softmax(1), candidates)
        logs = {
            "wce": wce.item(),
            "rank": rr.item(),
            "alpha": alpha.mean().item(),
            "relabelled": self.table.changed_fraction(),
        }
        return StepOutput(loss=wce + rr, logs=logs, scores=alpha.detach())

    def after_step(self, batch: Batch, epoch: int) -> None:
        if self._pending is not None:
            index, probs, candidates = self._pending
            self.table.update(index, probs, self.hparams.margin_2, candidates)
            self._pending = None

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)[1]
