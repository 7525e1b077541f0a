"""Generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018): L_q = (1 - p_y^q) / q.

q -> 0 gives cross-entropy, q = 1 the noise-robust mean absolute error; the
paper's default q = 0.7. The plain L_q loss, without the truncated variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from fer_bench.methods.base import Batch, Hparams, Method, StepOutput
from fer_bench.registry import METHODS
from fer_bench.search import Dist, Uniform


@dataclass
class GceHparams(Hparams):
    q: float = 0.7

    search_space: ClassVar[dict[str, Dist]] = {
        # 0.7 official; q -> 0 is cross-entropy, q = 1 mean absolute error (the valid range)
        "q": Uniform(0.1, 1.0),
    }

    def __post_init__(self) -> None:
        if not 0 < self.q <= 1:
            raise ValueError(f"gce q must be in (0, 1] (got {self.q})")


def gce_loss(logits: torch.Tensor, y: torch.Tensor, q: float) -> torch.Tensor:
    # p^q as exp(q log p): finite gradients even where p underflows to 0.
    log_p = logits.float().log_softmax(1).gather(1, y.view(-1, 1)).squeeze(1)
    return ((1 - torch.exp(q * log_p)) / q).mean()


@METHODS.register("gce")
class GeneralizedCE(Method):
    family = "noise"
    Hparams = GceHparams

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        return StepOutput(loss=gce_loss(self.backbone(batch.x), batch.y, self.hparams.q))
