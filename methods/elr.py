"""Early-learning regularisation (Liu et al., NeurIPS 2020), after shengliu66/ELR@934af53.

Each training sample keeps a target t_i, a temporal ensemble of its
predictions: at every visit t_i <- beta t_i + (1 - beta) p_i / sum(p_i), with p
the softmax clamped to [1e-4, 1 - 1e-4] and detached; t starts at zero. The
loss is CE + lam mean_i log(1 - <t_i, p_i>), the gradient flowing through the
clamped p only (ELR/model/loss.py:11-29). As in the official forward, the
target is updated before the regulariser reads it, so the current prediction
is in it.

Defaults beta 0.7, lam 3: the repository's CIFAR-10 configuration
(ELR/config_cifar10.json, "train_loss"), 10 classes being closest to FER's 7-8;
its CIFAR-100 run uses beta 0.9, lam 7 and its asymmetric-noise CIFAR-10 run
beta 0.9, lam 1 (config_cifar100.json, config_cifar10_asym.json).

Repeated indices: ``--sampler balanced`` draws with replacement, so one index can occur
twice in a batch, which the official code (one pass over a permutation) never meets. Each
occurrence counts as one visit, applied in batch order, as visits in successive batches
would be: an index seen m times ends at beta^m t + (1 - beta) sum_j beta^(m-1-j) p_j,
p_j its j-th occurrence's prediction, and every occurrence's regulariser and score read
that final target. Without repeats (every run of the uniform sampler) this is the update
above, bit for bit (tests/test_elr.py).

The targets are a registered buffer (N, K), so a checkpoint saves them and a
resume restores them. Score: t_i[y_i], the ensembled target's mass on the
observed label after this step's update (higher = the model has long agreed
with the label, believed cleaner).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from fer_bench.backbones import Backbone
from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo
from fer_bench.registry import METHODS
from fer_bench.search import Dist, LogUniform, Uniform

CLAMP = 1e-4  # the official clamp of the probabilities (loss.py:23)


@dataclass
class ElrHparams(Hparams):
    beta: float = 0.7  # momentum of the per-sample target
    lam: float = 3.0  # weight of the regulariser

    search_space: ClassVar[dict[str, Dist]] = {
        # official 0.7 / 3 (CIFAR-10), 0.9 / 7 (CIFAR-100), 0.9 / 1 (asymmetric noise)
        "beta": Uniform(0.5, 0.95),
        "lam": LogUniform(1.0, 10.0),
    }

    def __post_init__(self) -> None:
        if not 0 <= self.beta < 1:
            raise ValueError(f"elr beta must be in [0, 1) (got {self.beta})")


def elr_regulariser(target: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """mean_i log(1 - <t_i, p_i>): minimising it pushes p_i towards t_i."""
    return torch.log(1 - (target * probs).sum(1)).mean()


def updated_targets(
    target: torch.Tensor, index: torch.Tensor, seen: torch.Tensor, beta: float
) -> torch.Tensor:
    """(B, K): each batch position's target after the batch's visits, repeated indices
    applied in batch order (module docstring); elementwise, so no step reads the device."""
    same = index[:, None] == index[None, :]
    later = same.triu(1).sum(1)  # occurrences of the same index after this one
    weight = (1 - beta) * beta ** later.to(seen.dtype)
    visits = (same[:, :, None] * (weight[:, None] * seen)[None]).sum(1)
    return beta ** same.sum(1, keepdim=True).to(seen.dtype) * target[index] + visits


@METHODS.register("elr")
class EarlyLearningReg(Method):
    family = "noise"
    Hparams = ElrHparams
    score_name = "target_p_label"

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: ElrHparams) -> None:
        super().__init__(backbone, info, hparams)
        self.register_buffer("target", torch.zeros(info.num_train, info.num_classes))

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        hp = self.hparams
        logits = self.backbone(batch.x).float()
        probs = logits.softmax(1).clamp(CLAMP, 1 - CLAMP)
        with torch.no_grad():
            seen = probs.detach() / probs.detach().sum(1, keepdim=True)
            self.target[batch.index] = updated_targets(self.target, batch.index, seen, hp.beta)
        target = self.target[batch.index]
        ce = F.cross_entropy(logits, batch.y)
        reg = elr_regulariser(target, probs)
        agreement = target.gather(1, batch.y[:, None]).squeeze(1)
        logs = {"ce": ce.detach(), "elr_reg": reg.detach(), "target_p_label": agreement.mean()}
        return StepOutput(loss=ce + hp.lam * reg, logs=logs, scores=agreement)
