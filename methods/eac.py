"""EAC - Erasing Attention Consistency (Zhang et al., ECCV 2022), after
zyh-uaiaaaa/Erasing-Attention-Consistency.

Class activation maps A_k = sum_c W_k,c F_c from the last feature map F and the
classifier weights W (no bias; W enters as a constant, so the consistency term
puts no gradient on it, while F gets gradient from both views). The loss is
cross-entropy on view 1 only plus ``lam`` times the mean squared difference
between A(x) and the mirrored A(x~), over every class and position (the
official flip by ``grid_sample`` with align_corners is an exact mirror).

Choice: ``independent_erasing=True`` (official noisy-label runs draw the
erasing boxes of the two views independently) uses the harness's second view
"mirror_aug" (same crop, independent erasing and pixel noise); False uses
"mirror", the exact mirror of view 1. The view is chosen per instance at init.
Deviation: view 1 gets the harness's shared augmentation, which includes a
random flip (the official view 1 has none); the pair stays a mirror pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fer_bench.backbones import Backbone
from fer_bench.method import Batch, Hparams, Method, StepOutput, TrainInfo
from fer_bench.registry import METHODS


@dataclass
class EacHparams(Hparams):
    lam: float = 5.0  # weight of the attention consistency term
    independent_erasing: bool = True


def class_activation_maps(fmap: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A (B, K, h, w) from a feature map (B, C, h, w) and classifier weights (K, C), W detached.

    Under the engine's bf16 autocast the product runs in bf16, as the rest of the forward.
    """
    return torch.einsum("bchw,kc->bkhw", fmap, weight.detach())


def flip_consistency(cam: torch.Tensor, cam_mirrored: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between A(x) and the mirror of A(mirrored view)."""
    return F.mse_loss(cam, cam_mirrored.flip(-1))


@METHODS.register("eac")
class EAC(Method):
    Hparams = EacHparams
    second_view = "mirror_aug"

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: EacHparams) -> None:
        super().__init__(backbone, info, hparams)
        self.second_view = "mirror_aug" if hparams.independent_erasing else "mirror"

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        if batch.x2 is None:
            raise ValueError("eac needs the mirrored second view (batch.x2)")
        weight = self.backbone.classifier.weight
        fmap1 = self.backbone.feature_map(batch.x)
        fmap2 = self.backbone.feature_map(batch.x2)
        logits = self.backbone.classifier(self.backbone.pool(fmap1)).float()
        ce = F.cross_entropy(logits, batch.y)
        consistency = flip_consistency(
            class_activation_maps(fmap1, weight), class_activation_maps(fmap2, weight)
        )
        logs = {"ce": ce.item(), "consistency": consistency.item()}
        return StepOutput(loss=ce + self.hparams.lam * consistency, logs=logs)
