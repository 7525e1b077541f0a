"""ReSup (Zhang et al., arXiv 2305.17895, 2023, "Reliable Label Noise Suppression for FER"),
after purpleleaves007/FERDenoise at 0eb4353.

Two networks (``TrainInfo.new_backbone``; model.py:12-55). After each epoch every
training sample gets, per network, the cosine similarity of its softmax prediction to
its one-hot label (utils.py:134-144), clamped to [1e-3, 1 - 1e-3] (:164-167), and a
two-component Beta mixture is fitted to each network's similarities (``BetaMixture1D``,
:40-121: EM of 10 iterations from Beta(1, 2) and Beta(2, 1), weights 1/2, moment-matched
M-step, responsibilities floored at 1e-12). A sample's clean probability is the
posterior of the high-similarity component Beta(2, 1) read from a 100-point lookup table
that is made non-decreasing past its maximum (:100-112, ``create_lookup(1)``), at the
similarity of the sample's current training forward, clamped to [1e-4, 1 - 1e-4]
(:205-227). From the second epoch on the loss is the batch mean of
``c2 CE_1 + c1 CE_2 + 5 mse(p_1, p_2)``: each network's cross-entropy weighted by its
*peer's* clean probability (the swapped decision) plus 5 times the mean squared
difference of the two softmaxes (:238-245); the first epoch is ``CE_1 + CE_2`` (:247-250).
The per-class variances ``maxps`` (:145-148, 177-180) are computed but unused (the
division by them is commented out, :240-241), so not reproduced.

Adaptations to the harness: the mixture is fitted at the start of each epoch from the
second on (official: after each epoch, :354, the same sequence) over the evaluation view
(official: the training transform in eval mode, :123-134). The official second network
starts from ImageNet weights and the first from MS-Celeb (model.py:15-33); here both are
the run's backbone, each its own draw. Prediction is network 1 (the official best model is
picked by network 1's accuracy, utils.py:341). Official recipe (main.py:19-88, not set
here): Adam lr 2e-4, MultiStepLR [10, 20] x 0.1, batch 96, 30 epochs, 224 px.
Scores: network 1's clean probability (the weight network 2 learns with).

Repeated indices (``--sampler balanced`` draws with replacement): the per-sample label
similarities (fitted into the lookup tables) are written only by the epoch-start pass,
which reads every image once; a step only reads the tables, so an index repeated in a
batch reads the same value at each occurrence, each occurrence a sample of the batch. No
update is lost; nothing to order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from fer_bench.backbones import Backbone
from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo, TrainingImages
from fer_bench.registry import METHODS
from fer_bench.search import Dist, LogUniform

RESOLUTION = 100  # lookup table size (utils.py:50)


@dataclass
class ResupHparams(Hparams):
    sim_weight: float = 5.0  # weight of the two networks' softmax MSE (utils.py:245)
    bmm_iters: int = 10  # EM iterations of the Beta mixture (utils.py:169)

    search_space: ClassVar[dict[str, Dist]] = {
        "sim_weight": LogUniform(1.0, 25.0),  # 5 official; no other value published
    }


def beta_log_pdf(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log Beta(x; a, b) for x (N,) against parameters (2,): (2, N)."""
    a, b = a[:, None], b[:, None]
    log_norm = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
    return (a - 1) * x.log() + (b - 1) * (1 - x).log() - log_norm


def fit_beta_mixture(x: torch.Tensor, iters: int) -> tuple[torch.Tensor, ...]:
    """(alphas, betas, weights) of BetaMixture1D.fit (utils.py:76-95), in float64."""
    x = x.double().clamp(1e-4, 1 - 1e-4)
    a, b = torch.tensor([1.0, 2.0]).double(), torch.tensor([2.0, 1.0]).double()
    w = torch.tensor([0.5, 0.5]).double()
    for _ in range(iters):
        r = (w[:, None] * beta_log_pdf(x, a, b).exp()).clamp_min(1e-12)
        r = r / r.sum(0)
        mean = (r * x).sum(1) / r.sum(1)
        # Floored so that identical similarities give no 0 / 0 (the official would).
        var = ((r * (x - mean[:, None]) ** 2).sum(1) / r.sum(1)).clamp_min(1e-12)
        a = mean * (mean * (1 - mean) / var - 1)
        b = a * (1 - mean) / mean
        w = r.sum(1) / r.sum()
    return a, b, w


def clean_lookup(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """create_lookup(1): the high component's posterior on 100 points, flat past its peak."""
    x = torch.linspace(1e-12, 1 - 1e-12, RESOLUTION, dtype=torch.float64)
    weighted = w[:, None] * beta_log_pdf(x, a, b).exp()
    table = weighted[1] / (weighted.sum(0) + 1e-12)
    peak = int(table.argmax())
    table[peak:] = table[peak]
    return table


def label_similarity(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """cos(softmax, one-hot), clamped as utils.py:164-167 and :188-189."""
    sim = F.cosine_similarity(logits.softmax(1), F.one_hot(y, logits.shape[1]).float())
    return torch.where(sim >= 1, 1 - 1e-3, torch.where(sim <= 0, 1e-3, sim))


def look_up(table: torch.Tensor, sim: torch.Tensor) -> torch.Tensor:
    """look_lookup (utils.py:107-112) and the clamp of :220-223."""
    slot = (RESOLUTION * sim.double()).long().clamp(0, RESOLUTION - 1)
    return table[slot].clamp(1e-4, 1 - 1e-4).float()


@METHODS.register("resup")
class ReSup(Method):
    Hparams = ResupHparams
    score_name = "clean_prob"  # network 1's Beta-mixture posterior of the clean component
    family = "fer"

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: ResupHparams) -> None:
        super().__init__(backbone, info, hparams)
        if info.new_backbone is None:
            raise ValueError("resup needs a second network: TrainInfo.new_backbone")
        self.peer = info.new_backbone()
        # Row k: network k's lookup table (all 1 - 1e-4 until the first fit).
        self.register_buffer("table", torch.ones(2, RESOLUTION, dtype=torch.float64))

    def on_epoch_start(self, epoch: int, images: TrainingImages) -> None:
        if epoch == 0:
            return
        self.eval()
        sims = torch.zeros(2, len(images))
        for batch in images.batches():
            for k, net in enumerate((self.backbone, self.peer)):
                sims[k, batch.index.cpu()] = label_similarity(net(batch.x).float(), batch.y).cpu()
        for k in range(2):
            fitted = fit_beta_mixture(sims[k], self.hparams.bmm_iters)
            self.table[k] = clean_lookup(*fitted).to(self.table)

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        logits_1, logits_2 = self.backbone(batch.x).float(), self.peer(batch.x).float()
        ce_1 = F.cross_entropy(logits_1, batch.y, reduction="none")
        ce_2 = F.cross_entropy(logits_2, batch.y, reduction="none")
        with torch.no_grad():
            c_1 = look_up(self.table[0], label_similarity(logits_1, batch.y))
            c_2 = look_up(self.table[1], label_similarity(logits_2, batch.y))
        if epoch == 0:
            return StepOutput(loss=(ce_1 + ce_2).mean(), scores=c_1)
        sim = ((logits_1.softmax(1) - logits_2.softmax(1)) ** 2).mean(1)
        loss = (c_2 * ce_1 + c_1 * ce_2 + self.hparams.sim_weight * sim).mean()
        logs = {"clean_1": c_1.mean(), "clean_2": c_2.mean(), "mse": sim.mean().detach()}
        return StepOutput(loss=loss, logs=logs, scores=c_1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)
