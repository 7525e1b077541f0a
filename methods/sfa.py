"""SFA - Stochastic Feature Averaging (Li et al., IJCAI 2023), after HotanLee/SFA at 233fa8e.

DivideMix's training (``methods/dividemix.py``; Train_cifar.py:56-137) plus, per network,
a second linear head trained by the balanced softmax (logits + log class counts, :341-360)
on the same features: with the observed class counts in the warm-up (:144-158), then on
the mixed inputs and targets with the counts of the peer's kept samples (:117-133,
455-460). After the warm-up each network divides the training set at each epoch's start
(``eval_train``, :199-264): the samples whose second-head confidence in their label
exceeds ``phi^e / K`` (1-based epoch e) give per-class ``cl2n`` centroids (RoLT's,
:285-322); a class with over 300 of them draws its centroid from ``N(m, v)``, m and v
running averages (``beta``) of the centroid and its square (:237-253); the per-class
mixture of the nearest-centroid logits (summed over ``sample_rate`` draws) gives the clean
probability (:258-283); those above ``p_threshold`` are kept and counted. Prediction: the
mean of both heads of both networks (official: their sum, :175-179).

Official code and paper differ: ``eval_train`` never returns the averages it assigns
(:237-242), so after the first division ``m = (1 - beta) c`` and ``v = (1 - beta) c^2`` of
the epoch's centroids c (``carry_average=False``, default); ``True``: the paper's average.
Defaults: :17-38. Adaptations: ``phi``'s exponent counts a 200-epoch run's epochs
(``e * 200 / E``); counts are at least 1 (official: log 0); a class with no confident
sample takes its samples' centroid (official: NaN); ``fer_bench.gmm`` for scikit-learn;
the warm-up trains network k on view k (DivideMix's); scores are 1 in the warm-up; the
lambda_u ramp starts from 0 (the official counts epochs from 1, so it starts at 1/16).

Repeated indices (``--sampler balanced``): as in DivideMix, the clean probabilities,
class counts and centroids are written only by the epoch-start pass, which reads every
image once; a step only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.backbones import Backbone
from fer_bench.methods.base import Batch, StepOutput, TrainInfo, TrainingImages
from fer_bench.methods.dividemix import (
    DivideMix,
    DividemixHparams,
    mix_coefficient,
    semi_loss,
    sharpen,
)
from fer_bench.methods.rolt import (
    centred_normalised,
    class_centroids,
    class_clean_posterior,
    embed,
    ncm_logits,
)
from fer_bench.registry import METHODS
from fer_bench.search import Dist, Uniform

OFFICIAL_EPOCHS = 200  # the run over which phi's exponent counts (Train_cifar.py:23)


@dataclass
class SfaHparams(DividemixHparams):  # lambda_u, p_threshold, T and alpha: the same defaults
    warmup: float = 30 / 200  # Train_cifar.py:34
    rampup: float = 16 / 200  # lambda_u ramp (:324)
    beta: float = 0.99  # centroid averaging (:36)
    phi: float = 1.005  # confidence threshold growth (:37)
    sample_rate: int = 1  # centroid draws per division (:38)
    min_sampled: int = 300  # a class with more confident samples draws its centroid (:230)
    carry_average: bool = False  # False: the official code; True: the paper's average

    search_space: ClassVar[dict[str, Dist]] = {
        "lambda_u": Uniform(0.0, 50.0),  # 25 on CIFAR, 0 on WebVision (Train_webvision.py:23)
        "p_threshold": Uniform(0.5, 0.7),
        "warmup": Uniform(1 / 100, 0.15),  # 30 of 200 on CIFAR, 1 of 100 on WebVision (:319)
    }


@METHODS.register("sfa")
class SFA(DivideMix):
    Hparams = SfaHparams
    family = "noise+longtail"

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: SfaHparams) -> None:
        super().__init__(backbone, info, hparams)
        k, d = info.num_classes, backbone.num_features
        self.heads = nn.ModuleList([nn.Linear(d, k), nn.Linear(d, k)])
        counts = torch.bincount(info.observed_labels, minlength=k).float()
        self.register_buffer("observed_count", counts)
        self.register_buffer("clean_count", counts.repeat(2, 1))  # per network, kept
        self.register_buffer("centroid_mean", torch.zeros(2, k, d, dtype=torch.float64))
        self.register_buffer("centroid_square", torch.zeros(2, k, d, dtype=torch.float64))

    def on_epoch_start(self, epoch: int, images: TrainingImages) -> None:
        self.step_in_epoch = 0
        if epoch < self.warmup_epochs:
            return
        self.eval()
        labels = images.observed_labels.cpu()
        for row, net in enumerate(self.nets):
            feats, logits = embed(net, images, self.heads[row])
            confs = logits.softmax(1).gather(1, labels[:, None])[:, 0]
            self._divide(row, epoch, feats.double(), confs.double(), labels)

    def _divide(
        self, row: int, epoch: int, feats: torch.Tensor, confs: torch.Tensor, labels: torch.Tensor
    ) -> None:
        """Network ``row``'s clean probabilities and kept counts (eval_train, :199-264)."""
        hp, k = self.hparams, self.info.num_classes
        e = (epoch + 1) * OFFICIAL_EPOCHS / self.info.epochs
        confident = confs > hp.phi**e / k
        drawn = torch.bincount(labels[confident], minlength=k) > hp.min_sampled
        z = centred_normalised(feats)
        c = class_centroids(z, labels, confident, k)
        first = epoch == self.warmup_epochs  # the first division starts the averages
        keep = 0.0 if first else hp.beta * float(hp.carry_average)
        w = 1.0 if first else 1 - hp.beta
        m, sq = self.centroid_mean, self.centroid_square
        m[row] = keep * m[row] + w * c.to(m)
        sq[row] = keep * sq[row] + w * c.to(m) ** 2
        mean, square = m[row].cpu(), sq[row].cpu()
        std = (square - mean**2).clamp(1e-30, 1e30).sqrt()
        logits = 0.0
        for _ in range(hp.sample_rate):
            draw = mean + std * torch.randn(mean.shape, dtype=mean.dtype)
            logits = logits + ncm_logits(z, torch.where(drawn[:, None], draw, mean))
        prob = class_clean_posterior(logits, labels)
        self.clean_prob[row] = prob.to(self.clean_prob)
        kept = labels[prob > hp.p_threshold]
        self.clean_count[row] = torch.bincount(kept, minlength=k).to(self.clean_count)

    def _mixmatch_loss(
        self,
        net: Backbone,
        batch: Batch,
        w: torch.Tensor,
        own_views: list[torch.Tensor],
        guessed: torch.Tensor,
        lambda_u: float,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """DivideMix's, plus the second head's balanced semi-supervised loss (:117-133)."""
        hp, k = self.hparams, 0 if net is self.backbone else 1
        own = (own_views[0] + own_views[1]) / 2
        one_hot = F.one_hot(batch.y, own.shape[1]).float()
        refined = sharpen(w[:, None] * one_hot + (1 - w[:, None]) * own, hp.T)
        lab = w > hp.p_threshold
        x = torch.cat([batch.x[lab], batch.x2[lab], batch.x[~lab], batch.x2[~lab]])
        t = torch.cat([refined[lab], refined[lab], guessed[~lab], guessed[~lab]])
        mix, perm = mix_coefficient(hp.alpha), torch.randperm(len(x), device=x.device)
        feats = net.pool(net.feature_map(mix * x + (1 - mix) * x[perm]))
        t, n_labelled = mix * t + (1 - mix) * t[perm], 2 * int(lab.sum())
        loss, lx, lu = semi_loss(net.classifier(feats).float(), t, n_labelled, lambda_u)
        prior = self.clean_count[1 - k].clamp_min(1).log()
        _, bx, bu = semi_loss(self.heads[k](feats).float() + prior, t, n_labelled, lambda_u)
        logs = {"lx": lx.detach(), "lu": lu.detach(), "balanced_lx": bx.detach()}
        return loss + bx + lambda_u * bu, logs | {"labelled": lab.float().mean()}

    def _warmup_loss(self, batch: Batch, scores: torch.Tensor) -> StepOutput:
        total, logs, prior = 0.0, {}, self.observed_count.clamp_min(1).log()
        for k, (net, x) in enumerate(zip(self.nets, (batch.x, batch.x2), strict=True)):
            feats = net.pool(net.feature_map(x))
            logits = net.classifier(feats).float()
            ce = F.cross_entropy(logits, batch.y)
            if self.hparams.conf_penalty:  # DivideMix's option (off, as in SFA's code)
                ce = ce + (logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()
            balanced = F.cross_entropy(self.heads[k](feats).float() + prior, batch.y)
            logs |= {f"ce_{k + 1}": ce.detach(), f"balanced_{k + 1}": balanced.detach()}
            total = total + ce + balanced
        return StepOutput(loss=total, logs=logs, scores=scores)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for net, head in zip(self.nets, self.heads, strict=True):
            feats = net.pool(net.feature_map(x))
            outs += [net.classifier(feats), head(feats)]
        return sum(outs) / 4
