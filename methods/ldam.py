"""LDAM with deferred re-weighting (Cao et al., NeurIPS 2019), after kaidic/LDAM-DRW@2536330.

Margins m_c = C / n_c^(1/4) with C such that the largest is ``max_m``
(losses.py:27-28); the label's logit loses its margin and all logits are scaled
by s before a (weighted) cross-entropy (losses.py:35-45). DRW (cifar_train.py:
199-206): unit class weights until the DRW epoch, then the class-balanced
weights (1 - beta) / (1 - beta^n_c), normalised to sum to K, with beta 0.9999.
The official run switches at epoch 160 of 200 (``idx = epoch // 160``, 0-based
epoch), here ``drw_start`` = 0.8 of the run's epochs: DRW from 0-based epoch
round(0.8 E). n_c counts the observed (possibly noisy) training labels; a class
absent from them is counted once, where the official code would divide by zero.

Classifier (``normed``): the official LDAM model swaps the last layer for a
``NormedLinear`` (cifar_train.py:106-107, models/resnet_cifar.py:37-45), so the
logits are cosines in [-1, 1] and the margin and s act on cosines; the paper
describes the same normalisation. ``normed=True`` (official) uses such a head on
the backbone's pooled features (the backbone's own classifier is then unused);
``normed=False`` keeps the backbone's linear classifier, the margin subtracted
from raw logits and s still applied (s=1 then gives the plain logit-margin
reading). Prediction returns s * cos: the official model returns cos, which has
the same argmax, but softmax(cos) is nearly uniform, so ECE and NLL read the
probabilities at the scale the loss trains.

Not here: the official schedule (lr 0.1, 5-epoch warm-up, x0.01 at 160 and
x1e-4 at 180, cifar_train.py:366-378) belongs to the recipe, not the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.backbones import Backbone
from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo
from fer_bench.registry import METHODS
from fer_bench.search import Dist, LogUniform, Uniform


@dataclass
class LdamHparams(Hparams):
    max_m: float = 0.5  # the largest class margin (the rarest class)
    s: float = 30.0  # logit scale
    drw_start: float = 0.8  # fraction of the epochs before DRW (official 160 of 200)
    drw_beta: float = 0.9999  # class-balanced weights' beta after the DRW start
    normed: bool = True  # cosine classifier (official NormedLinear)

    search_space: ClassVar[dict[str, Dist]] = {
        # 0.5 and 30 official; s sets the cosine classifier's temperature
        "max_m": Uniform(0.1, 1.0),
        "s": LogUniform(10.0, 64.0),
    }

    def __post_init__(self) -> None:
        if not 0 <= self.drw_start <= 1:
            raise ValueError(f"ldam drw_start must be in [0, 1] (got {self.drw_start})")
        if not 0 <= self.drw_beta < 1:
            raise ValueError(f"ldam drw_beta must be in [0, 1) (got {self.drw_beta})")


def class_margins(counts: torch.Tensor, max_m: float) -> torch.Tensor:
    """m_c proportional to n_c^(-1/4), the largest equal to max_m (K,)."""
    m = counts.double().pow(-0.25)
    return (m * (max_m / m.max())).float()


def class_balanced_weights(counts: torch.Tensor, beta: float) -> torch.Tensor:
    """(1 - beta) / (1 - beta^n_c), normalised to sum to K; all ones at beta = 0."""
    w = (1 - beta) / (1 - torch.pow(beta, counts.double()))
    return (w / w.sum() * len(counts)).float()


def ldam_loss(
    logits: torch.Tensor, y: torch.Tensor, margins: torch.Tensor, s: float, weight: torch.Tensor
) -> torch.Tensor:
    is_label = F.one_hot(y, logits.shape[1]).bool()
    shifted = torch.where(is_label, logits - margins[y, None], logits)
    return F.cross_entropy(s * shifted, y, weight=weight)


class NormedLinear(nn.Module):
    """Cosine between the feature and each class weight, as models/resnet_cifar.py:37-45."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        weight = torch.empty(in_features, out_features).uniform_(-1, 1)
        self.weight = nn.Parameter(weight.renorm(2, 1, 1e-5).mul(1e5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # float32 outside autocast: s = 30 would magnify bfloat16's rounding of the cosines.
        with torch.autocast(x.device.type, enabled=False):
            return F.normalize(x.float(), dim=1) @ F.normalize(self.weight.float(), dim=0)


@METHODS.register("ldam")
class LdamDrw(Method):
    family = "longtail"
    Hparams = LdamHparams

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: LdamHparams) -> None:
        super().__init__(backbone, info, hparams)
        counts = torch.bincount(info.observed_labels.long(), minlength=info.num_classes)
        counts = counts.clamp(min=1)
        self.register_buffer("margins", class_margins(counts, hparams.max_m), persistent=False)
        drw = class_balanced_weights(counts, hparams.drw_beta)
        self.register_buffer("drw_weights", drw, persistent=False)
        self.drw_epoch = round(hparams.drw_start * info.epochs)
        self.head = (
            NormedLinear(backbone.num_features, info.num_classes) if hparams.normed else None
        )

    def cosine_or_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            return self.backbone(x).float()
        return self.head(self.backbone.pool(self.backbone.feature_map(x)))

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        drw = epoch >= self.drw_epoch
        weight = self.drw_weights if drw else None
        logits = self.cosine_or_logits(batch.x)
        loss = ldam_loss(logits, batch.y, self.margins, self.hparams.s, weight)
        return StepOutput(loss=loss, logs={"drw": float(drw)})

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.hparams.s * self.cosine_or_logits(x)

    def param_groups(self, lr: float) -> list[dict]:
        # With the cosine head the backbone's own classifier is unused: leave it out.
        unused = [] if self.head is None else self.backbone.classifier.parameters()
        skip = {id(p) for p in unused}
        params = [p for p in self.parameters() if p.requires_grad and id(p) not in skip]
        return [{"params": params, "lr": lr}]
