"""RoLT - Robust Long-Tailed learning under label noise (Wei et al., arXiv 2108.11569), after
Stomach-ache/RoLT at c78db7b (``main.py --cfg config/.../feat_uniform.yaml --cleaning``).

At the start of every epoch (``label_cleaning``, run_networks.py:523-651) the network,
in eval mode, embeds the training set. Prototypes are the per-(noisy-)class means of the
centred, L2-normalised features (``cl2n``, :1053-1115); the nearest-class-mean logits are
``-||z - c_k||^2`` for the centred, normalised feature z (models/KNNClassifier.py:41-75).
Per class, its samples' own-class NCM logits, min-max normalised, are fitted by a
two-component Gaussian mixture; the higher-mean component's samples are clean, all of the
class when none is (``get_gmm_mask``, :653-676). The prototypes are recomputed over the
clean samples and the mask taken again from the refined logits (:551-557, 609). Network
and NCM logits are averaged over epochs, ``ens = (0.6 ens + 0.4 new) / (1 - 0.6^e)`` for
1-based epoch e, the correction kept in the stored ensemble as officially (:559-567).
After epoch 80 of 200 a kept sample trains on its label, the others on the weighted
targets ``0.4 erm_pred + 0.2 ncm_pred + 0.2 label + 0.2 uniform`` (the ensembles'
argmaxes, :636-648), each a cross-entropy (:269-278); before, plain cross-entropy.

Adaptations: the soft targets start after ``round(start * E)`` epochs; ``fer_bench.gmm``
for scikit-learn (k-means from the extremes, not ``random_state=0``); a class with fewer
than two distinct values keeps all its samples; a class with no kept sample keeps its
unrefined prototype. Not reproduced: RoLT-DRW and RoLT with LDAM (other configs: deferred
re-weighting from epoch 160, :341-350, 625-633), RoLT+ (rolt+/, a DivideMix variant).
Official recipe (not set here): feat_uniform.yaml (SGD lr 0.1, momentum 0.9, weight decay
2e-4, batch 128, 200 epochs). Scores: the last mixture's higher-mean posterior.

Repeated indices (``--sampler balanced`` draws with replacement): the per-sample clean
probabilities and ensembled predictions are written only by the epoch-start pass, which
reads every image once; a step only reads them, so an index repeated in a batch reads
the same value at each occurrence, each occurrence a sample of the batch. No update is
lost; nothing to order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.backbones import Backbone
from fer_bench.gmm import low_component_posterior
from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo, TrainingImages
from fer_bench.registry import METHODS
from fer_bench.search import Dist, Uniform

WEIGHTS = (0.4, 0.2, 0.2, 0.2)  # erm_pred, ncm_pred, label, uniform (run_networks.py:646-648)


@dataclass
class RoltHparams(Hparams):
    start: float = 0.4  # share of the epochs before the soft targets apply (80 of 200)
    ema: float = 0.6  # the logits' temporal ensemble (run_networks.py:558)

    search_space: ClassVar[dict[str, Dist]] = {
        "start": Uniform(0.2, 0.6),  # 80 of 200 official; the DRW config re-weights at 160
    }

    def __post_init__(self) -> None:
        if not 0 <= self.start < 1 or not 0 <= self.ema < 1:
            raise ValueError("rolt start and ema must be in [0, 1)")


def embed(
    net: Backbone, images: TrainingImages, head: nn.Module | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled features, logits of ``head`` or else the classifier) of every training image,
    in the training set's order, on the CPU in float32."""
    head = net.classifier if head is None else head
    index, feats, logits = [], [], []
    for batch in images.batches():
        f = net.pool(net.feature_map(batch.x)).float()
        index.append(batch.index.cpu())
        feats.append(f.cpu())
        logits.append(head(f).float().cpu())
    order = torch.cat(index).argsort()
    return torch.cat(feats)[order], torch.cat(logits)[order]


def centred_normalised(feats: torch.Tensor) -> torch.Tensor:
    centred = feats - feats.mean(0)
    return centred / centred.norm(dim=1, keepdim=True)


def class_centroids(
    z: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor, k: int
) -> torch.Tensor:
    """(K, D): each class's mean kept z (all of the class if none is kept; NaN if empty)."""
    rows = [(labels == c) & keep for c in range(k)]
    rows = [r if r.any() else labels == c for c, r in enumerate(rows)]
    return torch.stack([z[r].mean(0) for r in rows])


def ncm_logits(z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """-||z - c_k||^2 (KNNClassifier.l2_similarity); -inf for a class without prototype."""
    return (-(torch.cdist(z, centroids) ** 2)).nan_to_num(nan=-math.inf)


def class_clean_posterior(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per class: the higher-mean component's posterior of its samples' own-class logits,
    min-max normalised (1 for a class with fewer than two distinct values)."""
    post = torch.ones(len(labels), dtype=torch.float64)
    for c in labels.unique().tolist():
        rows = labels == c
        v = logits[rows, c].double()
        if v.unique().numel() >= 2:
            post[rows] = 1 - low_component_posterior((v - v.min()) / (v - v.min()).max())
    return post


def gmm_mask(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """get_gmm_mask's posterior: a class none of whose samples passes 0.5 keeps them all."""
    post = class_clean_posterior(logits, labels)
    for c in labels.unique().tolist():
        if not (post[labels == c] > 0.5).any():
            post[labels == c] = 1.0
    return post


@METHODS.register("rolt")
class RoLT(Method):
    Hparams = RoltHparams
    score_name = "clean_prob"
    family = "noise+longtail"

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: RoltHparams) -> None:
        super().__init__(backbone, info, hparams)
        n, k = info.num_train, info.num_classes
        self.start_epoch = round(hparams.start * info.epochs)
        self.register_buffer("ens_erm", torch.zeros(n, k))
        self.register_buffer("ens_ncm", torch.zeros(n, k))
        self.register_buffer("clean_prob", torch.ones(n))

    def on_epoch_start(self, epoch: int, images: TrainingImages) -> None:
        self.eval()
        labels, k = images.observed_labels.cpu(), self.info.num_classes
        feats, logits = embed(self.backbone, images)
        z = centred_normalised(feats)
        everything = torch.ones(len(labels), dtype=torch.bool)
        first = gmm_mask(ncm_logits(z, class_centroids(z, labels, everything, k)), labels)
        refined = ncm_logits(z, class_centroids(z, labels, first > 0.5, k))
        self.clean_prob.copy_(gmm_mask(refined, labels))
        a, e = self.hparams.ema, epoch + 1
        for ens, new in ((self.ens_erm, logits), (self.ens_ncm, refined)):
            new = new.to(ens)
            ens.copy_((new if e == 1 else a * ens + (1 - a) * new) / (1 - a**e))

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        logits = self.backbone(batch.x).float()
        scores = self.clean_prob[batch.index]
        if epoch < self.start_epoch:
            return StepOutput(loss=F.cross_entropy(logits, batch.y), scores=scores)
        ce = -logits.log_softmax(1)  # (B, K): the cross-entropy of every class
        y = batch.y[:, None]
        erm, ncm = (e[batch.index].argmax(1, keepdim=True) for e in (self.ens_erm, self.ens_ncm))
        w = WEIGHTS
        soft = w[0] * ce.gather(1, erm) + w[1] * ce.gather(1, ncm) + w[2] * ce.gather(1, y)
        soft = soft.squeeze(1) + w[3] * ce.mean(1)
        kept = scores > 0.5
        loss = torch.where(kept, ce.gather(1, y).squeeze(1), soft).mean()
        return StepOutput(loss=loss, logs={"kept": kept.float().mean()}, scores=scores)
