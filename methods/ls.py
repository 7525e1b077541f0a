"""Label smoothing (Szegedy et al., CVPR 2016, Sec. 7): CE against a smoothed target.

The target is q' = (1 - eps) one_hot(y) + eps / K, so the loss is
(1 - eps) CE(z, y) + eps mean_k(-log p_k). This is PyTorch's standard form,
``F.cross_entropy(..., label_smoothing=eps)`` (torch/nn/modules/loss.py:1293,
CrossEntropyLoss's ``label_smoothing``, "a mixture of the original ground truth
and a uniform distribution", citing the paper), which the method calls.
The uniform part spreads over all K classes, the label's included, as in the
paper's u(k) = 1/K. Default eps 0.1, the paper's ImageNet value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F

from fer_bench.methods.base import Batch, Hparams, Method, StepOutput
from fer_bench.registry import METHODS
from fer_bench.search import Dist, Uniform


@dataclass
class LsHparams(Hparams):
    eps: float = 0.1  # mass moved from the label to the uniform distribution

    search_space: ClassVar[dict[str, Dist]] = {
        # 0.1 official; 0 is cross-entropy, and past ~0.5 the label barely leads
        "eps": Uniform(0.02, 0.4),
    }

    def __post_init__(self) -> None:
        if not 0 <= self.eps < 1:
            raise ValueError(f"ls eps must be in [0, 1) (got {self.eps})")


@METHODS.register("ls")
class LabelSmoothing(Method):
    family = "noise"
    Hparams = LsHparams

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        logits = self.backbone(batch.x).float()
        return StepOutput(loss=F.cross_entropy(logits, batch.y, label_smoothing=self.hparams.eps))
