"""Balanced Softmax (Ren et al., NeurIPS 2020): CE(z + log n, y), n the class counts.

Written from jiawei-ren/BalancedMetaSoftmax-Classification@34a61e4,
loss/BalancedSoftmaxLoss.py:37-51: the logits are shifted by the log of the
samples per class, then plain cross-entropy; evaluation uses the raw logits
(run_networks.py:545, 574). Here n counts the observed (possibly noisy)
training labels, never the clean ones: the official code reads a frequency file
of its training labels (loss/BalancedSoftmaxLoss.py:26-31), which under label
noise are the observed ones.

A class absent from the observed labels gets log 0 = -inf, as in the official
code: it is never a target, softmax gives it probability 0 and its logit no
gradient, so the loss stays finite (tested).

Softmax is shift-invariant, so this loss equals ``la`` at tau = 1 (log n and
log n/N differ by a constant); it has no continuous knob, hence no
search_space (the lr and weight decay search still applies). Balanced Meta-
Softmax's meta sampler (BALMS) is not part of this method: it needs a learned
sampler the engine does not offer.
"""

from __future__ import annotations

import torch

from fer_bench.backbones import Backbone
from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo
from fer_bench.methods.la import logit_adjusted_ce
from fer_bench.registry import METHODS


def log_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """log n_c (K,) of the labels; -inf for a class that does not occur."""
    return torch.bincount(labels.long(), minlength=num_classes).float().log()


@METHODS.register("bsoftmax")
class BalancedSoftmax(Method):
    family = "longtail"

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: Hparams) -> None:
        super().__init__(backbone, info, hparams)
        adjust = log_counts(info.observed_labels, info.num_classes)
        self.register_buffer("adjust", adjust, persistent=False)

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        logits = self.backbone(batch.x).float()
        return StepOutput(loss=logit_adjusted_ce(logits, batch.y, self.adjust))
