"""Symmetric cross-entropy (Wang et al., ICCV 2019): alpha CE + beta RCE.

RCE is the reverse cross-entropy -sum_k p_k log q_k with q the one-hot label,
log 0 replaced by A = log(1e-4): RCE = -A sum_{k != y} p_k = -A (1 - p_y) up to
the clamp. Written from HanxunH/SCELoss-Reproduce@c81fb33, a PyTorch
reproduction (the authors' own code is TensorFlow,
YisenWang/symmetric_cross_entropy_for_noisy_labels), loss.py:14-27: p = softmax(z)
clamped to [1e-7, 1], the one-hot clamped to [1e-4, 1], CE and RCE both
averaged over the batch.

Keras original against the PyTorch port: the authors' README links the port ("The
Pytorch reimplementation", README.md:14-15 at YisenWang/symmetric_cross_entropy_for_
noisy_labels@ec778df), and the harness follows the port. The authors' own loss
(loss.py:9-21 there) differs in where it clamps p: its CE clips p_y at 1e-7 before the
log (loss.py:17, 20), so a sample with p_y < 1e-7 costs at most -log(1e-7) = 16.1 and
passes no gradient, where the port's CE (torch CrossEntropyLoss on the logits, port
loss.py:12, 16) grows without bound; its RCE takes p unclamped (y_pred_2, loss.py:20),
where the port clamps p to [1e-7, 1] (port loss.py:19-20), which moves RCE by at most
1e-7 |A| per class and stops the gradient of a p_k below 1e-7. Both differ only where
some probability is under 1e-7.

Defaults: alpha 0.1, beta 1.0, the repository's CIFAR-10 run
(slurm/sce_loss0.4.slurm, README "How To Run"; 10 classes, closest to the 7-8
of FER) and the paper's CIFAR-10 setting. The argparse defaults (train.py:27-28)
are 1.0 / 1.0 and its CIFAR-100 run uses alpha 6.0; all are reachable with
``--set``. ``log_floor`` is A's argument (1e-4 official).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from fer_bench.methods.base import Batch, Hparams, Method, StepOutput
from fer_bench.registry import METHODS
from fer_bench.search import Dist, LogUniform


@dataclass
class SceHparams(Hparams):
    alpha: float = 0.1  # weight of cross-entropy
    beta: float = 1.0  # weight of reverse cross-entropy
    log_floor: float = 1e-4  # one-hot entries clamped to this before the log: A = log(1e-4)

    search_space: ClassVar[dict[str, Dist]] = {
        # CE weight: 0.1 official for 10 classes, 6.0 for 100; beta stays 1 (only the
        # ratio and the overall scale matter, and the lr search covers the scale)
        "alpha": LogUniform(0.01, 10.0),
    }

    def __post_init__(self) -> None:
        if not 0 < self.log_floor < 1:
            raise ValueError(f"sce log_floor must be in (0, 1) (got {self.log_floor})")


def reverse_ce(logits: torch.Tensor, y: torch.Tensor, log_floor: float = 1e-4) -> torch.Tensor:
    """Per-sample RCE (B,): -sum_k clamp(p_k) log clamp(q_k), q the one-hot of y."""
    probs = logits.float().softmax(1).clamp(min=1e-7, max=1.0)
    log_q = F.one_hot(y, logits.shape[1]).float().clamp(min=log_floor).log()
    return -(probs * log_q).sum(1)


@METHODS.register("sce")
class SymmetricCE(Method):
    family = "noise"
    Hparams = SceHparams

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        logits = self.backbone(batch.x).float()
        hp = self.hparams
        ce = F.cross_entropy(logits, batch.y)
        rce = reverse_ce(logits, batch.y, hp.log_floor).mean()
        return StepOutput(
            loss=hp.alpha * ce + hp.beta * rce, logs={"ce": ce.detach(), "rce": rce.detach()}
        )
