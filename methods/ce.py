"""Plain cross-entropy: the baseline every method must beat."""

from __future__ import annotations

import torch.nn.functional as F

from fer_bench.methods.base import Batch, Method, StepOutput
from fer_bench.registry import METHODS


@METHODS.register("ce")
class CrossEntropy(Method):
    family = "baseline"

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        loss = F.cross_entropy(self.backbone(batch.x), batch.y)
        return StepOutput(loss=loss)
