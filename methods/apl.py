"""Active passive loss NCE+RCE (Ma et al., ICML 2020), after
HanxunH/Active-Passive-Losses at 04bce53.

alpha NCE + beta RCE (loss.py:167-176): the normalised cross-entropy
NCE = log p_y / sum_k log p_k (loss.py:78-90), an "active" loss that is robust
because it is normalised, plus the reverse cross-entropy RCE = -sum_k p_k log q_k
with q the one-hot label, log 0 replaced by A = log(1e-4) and p clamped to
[1e-7, 1] (loss.py:43-57: the same RCE as SCE's, ``sce.reverse_ce``), a
"passive" one. Both are averaged over the batch.

Defaults: alpha 1, beta 1, the repository's CIFAR-10 configs
(configs/cifar10/sym/nce+rce.yaml:29-33, asym the same; 10 classes, closest to
the 7-8 of FER). CIFAR-100 uses alpha 10,
beta 0.1 (configs/cifar100/sym/nce+rce.yaml:29-33), WebVision alpha 50, beta 0.1
(configs/webvision_mini/nce+rce.yaml); all reachable with ``--set``. The other
pairings of the repository (NCE+MAE, NFL+RCE, ...) are not provided.

Not reproduced (the recipe, not the loss): the gradient-norm clipping at 5 of every
config (``grad_bound``, trainer.py:44) and the configs' SGD with cosine schedule; the
run's configured optimiser and schedule apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from fer_bench.methods.base import Batch, Hparams, Method, StepOutput
from fer_bench.methods.sce import reverse_ce
from fer_bench.registry import METHODS
from fer_bench.search import Dist, LogUniform


@dataclass
class AplHparams(Hparams):
    alpha: float = 1.0  # weight of the normalised cross-entropy (active)
    beta: float = 1.0  # weight of the reverse cross-entropy (passive)

    search_space: ClassVar[dict[str, Dist]] = {
        # NCE weight: 1 official for 10 classes, 10 (beta 0.1) for 100, 50 (beta 0.1) for
        # WebVision; beta stays 1 (only the ratio and the overall scale matter, and the lr
        # search covers the scale)
        "alpha": LogUniform(0.1, 100.0),
    }

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"apl alpha and beta must be >= 0 (got {self.alpha}, {self.beta})")


def normalized_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample NCE (B,): -log p_y / -sum_k log p_k, in [0, 1]."""
    log_p = logits.float().log_softmax(1)
    return log_p.gather(1, y.view(-1, 1)).squeeze(1) / log_p.sum(1)


@METHODS.register("apl")
class ActivePassiveLoss(Method):
    Hparams = AplHparams
    family = "noise"

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        logits = self.backbone(batch.x).float()
        nce = normalized_ce(logits, batch.y).mean()
        rce = reverse_ce(logits, batch.y).mean()
        hp = self.hparams
        loss = hp.alpha * nce + hp.beta * rce
        return StepOutput(loss=loss, logs={"nce": nce.detach(), "rce": rce.detach()})
