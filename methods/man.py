"""MAN - Mining Ambiguity and Noise (Zhang et al., Pattern Recognition Letters 2022), after
zzzzzzyang/MAN at df07e3f.

Two networks (``TrainInfo.new_backbone``; main.py:280-281) are warmed up with
``(CE_1 + CE_2) / 2`` (main.py:45-58) for the first ``warmup`` epochs (10 of 100,
main.py:33-34, 343-347). Every later epoch starts with a pass over the training set in
eval mode (co-division, ``eval_train``/``Partition.judge``, main.py:98-179): a sample
both networks predict as its label is *clean*, one both get wrong is *noisy*, the rest
*ambiguous*. The step's loss is ``L_c + w_omega L_a + w_gamma L_n`` (main.py:243):
``L_c`` the two networks' mean cross-entropy on the clean samples (:191-202); ``L_n``
the mean of each network's MSE between its softmax on the weak view and on a strong view
of the noisy samples (:207-224); ``L_a`` the mutual loss on the ambiguous samples,
``(1 - lambda) (CE_1 + CE_2) / 2 + lambda (KL(p_2 || p_1) + KL(p_1 || p_2)) / 2`` with
``lambda = 0.9 exp(-0.65 (1 - e / (0.9 E))^2)`` for 1-based epoch e of E (:252-276),
gradients through both sides of each KL as in the official code. A subset absent from the
batch adds 0 (:191-240). Defaults: w_gamma 1, w_omega 0.6 (main.py:36-37).

Adaptations to the harness: the warm-up is a share of the run (``round(warmup * E)``, at
least 1 epoch; official 10 of 100); each network makes one forward of the whole batch
and the subsets are read from it (official: one forward per subset, so BatchNorm
statistics per subset); the strong view is the harness's ``strong`` view (official:
pad-crop, flip and RandAugment(2, 10), main.py:301-309); the division pass uses the
evaluation view (official: the weak training transform in eval mode) and also runs in the
warm-up, for the noise diagnostics only. Prediction: the mean of the two networks' logits
(main.py:88). Official recipe (not set here): Adam at its default lr 1e-3 (``--lr`` is
unused), weight decay 1e-4, ExponentialLR 0.9, batch 128, 100 epochs (main.py:283-337).
Scores: how many networks agree with the label, halved (1 clean, 0.5 ambiguous, 0 noisy).

Repeated indices (``--sampler balanced`` draws with replacement): the per-sample
agreement counts are written only by the epoch-start division pass, which reads every
image once; a step only reads them, so an index repeated in a batch reads the same value
at each occurrence, each occurrence a sample of the batch. No update is lost; nothing to
order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from fer_bench.backbones import Backbone
from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo, TrainingImages
from fer_bench.registry import METHODS
from fer_bench.search import Dist, LogUniform, Uniform


@dataclass
class ManHparams(Hparams):
    warmup: float = 0.1  # share of the epochs warming up (official 10 of 100, main.py:34)
    w_gamma: float = 1.0  # weight of the noisy subset's consistency loss (main.py:36)
    w_omega: float = 0.6  # weight of the ambiguous subset's mutual loss (main.py:37)
    lambda_max: float = 0.9  # mutual loss ramp (main.py:261)
    ramp_beta: float = 0.65
    ramp_end: float = 0.9  # share of the run at which lambda peaks (main.py:266)

    search_space: ClassVar[dict[str, Dist]] = {
        "w_gamma": LogUniform(0.3, 3.0),  # 1 official (main.py:36)
        "w_omega": Uniform(0.2, 1.0),  # 0.6 official (main.py:37)
    }

    def __post_init__(self) -> None:
        if not 0 < self.warmup < 1 or self.ramp_end <= 0:
            raise ValueError("man warmup must be in (0, 1) and ramp_end above 0")


def mutual_weight(epoch: int, epochs: int, hp: ManHparams) -> float:
    """lambda of Mutual_loss for 0-based ``epoch`` (the official counts from 1)."""
    return hp.lambda_max * math.exp(-hp.ramp_beta * (1 - (epoch + 1) / (hp.ramp_end * epochs)) ** 2)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the masked rows; 0 when none is."""
    return (values * mask).sum() / mask.sum().clamp_min(1)


@METHODS.register("man")
class MAN(Method):
    Hparams = ManHparams
    second_view = "strong"
    score_name = "agreement"  # share of the two networks predicting the observed label
    family = "fer"

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: ManHparams) -> None:
        super().__init__(backbone, info, hparams)
        if info.new_backbone is None:
            raise ValueError("man needs a second network: TrainInfo.new_backbone")
        self.peer = info.new_backbone()
        self.warmup_epochs = max(1, round(hparams.warmup * info.epochs))
        if self.warmup_epochs >= info.epochs:
            raise ValueError(f"man warm-up of {self.warmup_epochs} epochs leaves no epoch")
        # Networks predicting each sample's observed label at the last division (2 = clean).
        self.register_buffer("agree", torch.full((info.num_train,), 2, dtype=torch.long))

    def on_epoch_start(self, epoch: int, images: TrainingImages) -> None:
        self.eval()
        for batch in images.batches():
            hits = [net(batch.x).argmax(1).eq(batch.y).long() for net in (self.backbone, self.peer)]
            self.agree[batch.index] = hits[0] + hits[1]

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        hp, y = self.hparams, batch.y
        logits = [net(batch.x).float() for net in (self.backbone, self.peer)]
        ce = [F.cross_entropy(z, y, reduction="none") for z in logits]
        agree = self.agree[batch.index]
        scores = agree.float() / 2
        if epoch < self.warmup_epochs:
            return StepOutput(loss=0.5 * (ce[0] + ce[1]).mean(), scores=scores)
        clean, noisy = agree == 2, agree == 0
        loss_c = masked_mean(0.5 * (ce[0] + ce[1]), clean)
        lam = mutual_weight(epoch, self.info.epochs, hp)
        log_p = [z.log_softmax(1) for z in logits]
        kl_21 = (log_p[1].exp() * (log_p[1] - log_p[0])).sum(1)  # KL(p_2 || p_1)
        kl_12 = (log_p[0].exp() * (log_p[0] - log_p[1])).sum(1)
        mutual = (1 - lam) * 0.5 * (ce[0] + ce[1]) + lam * 0.5 * (kl_21 + kl_12)
        loss_a = masked_mean(mutual, ~clean & ~noisy)
        loss_n = self._consistency(batch, logits, noisy)
        loss = loss_c + hp.w_omega * loss_a + hp.w_gamma * loss_n
        logs = {"clean": clean.float().mean(), "noisy": noisy.float().mean(), "lambda": lam}
        return StepOutput(loss=loss, logs=logs, scores=scores)

    def _consistency(
        self, batch: Batch, logits: list[torch.Tensor], noisy: torch.Tensor
    ) -> torch.Tensor:
        """Mean over both networks of the weak/strong softmax MSE on the noisy samples."""
        rows = noisy.nonzero().squeeze(1)
        if rows.numel() == 0:
            return logits[0].sum() * 0.0
        strong = batch.x2[rows]
        mse = [
            F.mse_loss(z[rows].softmax(1), net(strong).float().softmax(1))
            for z, net in zip(logits, (self.backbone, self.peer), strict=True)
        ]
        return 0.5 * (mse[0] + mse[1])

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.backbone(x) + self.peer(x))
