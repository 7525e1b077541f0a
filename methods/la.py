"""Logit-adjusted cross-entropy (Menon et al., ICLR 2021): CE(z + tau log pi, y).

pi are the class priors of the observed (possibly noisy) training labels, so
the method sees nothing the others do not. Inference uses the raw logits z,
which the adjusted loss trains towards balanced error. A class absent from
the training labels gets log(0 + 1e-12), as in the authors' code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from fer_bench.backbones import Backbone
from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo
from fer_bench.registry import METHODS
from fer_bench.search import Dist, Uniform


@dataclass
class LaHparams(Hparams):
    tau: float = 1.0

    search_space: ClassVar[dict[str, Dist]] = {
        # prior scaling: 1 official (Menon et al.); 0 would be plain cross-entropy
        "tau": Uniform(0.25, 2.0),
    }


def log_priors(labels: torch.Tensor, num_classes: int, tau: float) -> torch.Tensor:
    """tau * log pi with pi the class frequencies of ``labels``."""
    prior = torch.bincount(labels.long(), minlength=num_classes).double() / labels.numel()
    return torch.log(prior**tau + 1e-12).float()


def logit_adjusted_ce(logits: torch.Tensor, y: torch.Tensor, adjust: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits + adjust, y)


@METHODS.register("la")
class LogitAdjusted(Method):
    family = "longtail"
    Hparams = LaHparams

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: LaHparams) -> None:
        super().__init__(backbone, info, hparams)
        adjust = log_priors(info.observed_labels, info.num_classes, hparams.tau)
        self.register_buffer("adjust", adjust, persistent=False)

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        logits = self.backbone(batch.x).float()
        return StepOutput(loss=logit_adjusted_ce(logits, batch.y, self.adjust))
