"""Co-teaching+ (Yu et al., ICML 2019), after xingruiyu/coteaching_plus at a68ed61.

Two networks as in Co-teaching (``coteach.py``, whose class, schedule and selection this
reuses). After the initial epochs, each batch keeps only the samples on which the
two networks' predictions disagree; among those each network ranks by its own
per-sample loss and keeps the ``int((1 - tau) * n)`` smallest (all n when that is 0),
and each network is trained on its peer's choice, the loss divided once more by the
kept count (loss.py:10-35, 37-68). The forget rate tau follows Co-teaching's linear
ramp (``np.linspace(0, tau, num_gradual)``, main.py:180-183; epoch indexing as in
``coteach.py``, the official loop also trains epochs 1..n_epoch-1, main.py:366).

Facts of the official code kept, with the choices made:
* Before ``init_epoch`` it is plain Co-teaching on the logits (main.py:251-252). The
  official value depends on the dataset: 20 of 200 epochs for CIFAR-10 (main.py:73,
  75), 5 for CIFAR-100, 0 for MNIST and text; here ``init_epoch_fraction`` of the
  run's epochs (0.1, CIFAR-10's share; 10 classes, closest to FER's 7-8).
* ``double_softmax=True`` (official): after the initial epochs the networks' softmax
  outputs, not their logits, go into ``F.cross_entropy``, which takes a softmax again
  (loss.py:38-39, 64-68, 70-75); ``False`` gives the paper's cross-entropy of the
  logits.
* A batch with no disagreement trains both networks on its whole mean loss while the
  official ``step = epoch * i`` (the 1-based epoch times the 0-based batch index, not
  a global step; main.py:255, loss.py:60, 77-78) is below ``full_batch_steps`` (5000),
  and gives a zero loss after.
* Not reproduced: the sample with dataset index 0 is dropped from the official
  disagreement index list, which can truncate it by one (loss.py:53-58); two Adam
  optimisers are one here (as ``coteach.py``); the official decay of the learning
  rate and of Adam's beta1 after epoch 80 (main.py:165-177); forget rate default 0.2
  as in ``coteach.py`` (the official code uses the true noise rate, main.py:155-158).
The selection runs on the device without reading it (masks, not index lists).
Prediction and evaluation use network 1; ``scores`` are its negative per-sample
losses, the small-loss criterion.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fer_bench.backbones import Backbone
from fer_bench.methods.base import Batch, StepOutput, TrainInfo, TrainingImages
from fer_bench.methods.coteach import (
    CoteachHparams,
    CoTeaching,
    coteaching_losses,
    forget_rate_at,
)
from fer_bench.registry import METHODS


@dataclass
class CoteachPlusHparams(CoteachHparams):
    init_epoch_fraction: float = 0.1  # share of the epochs trained as plain Co-teaching
    double_softmax: bool = True  # official: cross-entropy of the softmax outputs
    full_batch_steps: int = 5000  # a batch without disagreement trains until this "step"

    def __post_init__(self) -> None:
        super().__post_init__()
        share = self.init_epoch_fraction
        if not 0 <= share <= 1:
            raise ValueError(f"coteach_plus init_epoch_fraction must be in [0, 1] (got {share})")


def peer_masks(
    loss_1: torch.Tensor, loss_2: torch.Tensor, disagree: torch.Tensor, forget_rate: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(kept by network 1, kept by network 2, how many each keeps): the ``int((1 - tau) n)``
    smallest losses among the n disagreement samples (all n when that is 0), as masks."""
    n = disagree.sum()
    kept = torch.floor((1 - forget_rate) * n.double()).long()
    kept = torch.where(kept > 0, kept, n)

    def smallest(losses: torch.Tensor) -> torch.Tensor:
        order = torch.where(disagree, losses, torch.inf).argsort()
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order), device=order.device)
        return (rank < kept) & disagree

    return smallest(loss_1), smallest(loss_2), kept


def coteaching_plus_losses(
    logits_1: torch.Tensor,
    logits_2: torch.Tensor,
    y: torch.Tensor,
    forget_rate: float,
    hp: CoteachPlusHparams,
    full_batch: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss of network 1, loss of network 2) after the initial epochs."""
    inputs = (
        (logits_1.softmax(1), logits_2.softmax(1)) if hp.double_softmax else (logits_1, logits_2)
    )
    ce_1, ce_2 = (F.cross_entropy(z, y, reduction="none") for z in inputs)
    disagree = logits_1.argmax(1) != logits_2.argmax(1)
    kept_by_1, kept_by_2, kept = peer_masks(ce_1.detach(), ce_2.detach(), disagree, forget_rate)
    count = kept.clamp(min=1).to(ce_1.dtype)  # 1 where nothing disagrees (the other branch)
    loss_1, loss_2 = (ce_1 * kept_by_2).sum() / count, (ce_2 * kept_by_1).sum() / count
    if hp.divide_by_kept:
        loss_1, loss_2 = loss_1 / count, loss_2 / count
    scale = 1.0 if full_batch else 0.0  # no disagreement: the whole batch, or nothing
    agree = ~disagree.any()
    loss_1 = torch.where(agree, scale * ce_1.mean(), loss_1)
    loss_2 = torch.where(agree, scale * ce_2.mean(), loss_2)
    return loss_1, loss_2


@METHODS.register("coteach_plus")
class CoTeachingPlus(CoTeaching):  # its peer network and score; its own loss
    Hparams = CoteachPlusHparams
    family = "noise"

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: CoteachPlusHparams) -> None:
        super().__init__(backbone, info, hparams)
        self.init_epoch = round(hparams.init_epoch_fraction * info.epochs)
        self.batch_in_epoch = 0  # the official loop's batch index i, for its step = epoch * i

    def on_epoch_start(self, epoch: int, images: TrainingImages) -> None:
        self.batch_in_epoch = 0

    def after_step(self, batch: Batch, epoch: int) -> None:
        self.batch_in_epoch += 1

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        hp, tau = self.hparams, forget_rate_at(epoch, self.hparams)
        logits_1, logits_2 = self.backbone(batch.x).float(), self.peer(batch.x).float()
        if epoch + 1 < self.init_epoch:  # official epochs are 1-based
            loss_1, loss_2, _ = coteaching_losses(
                logits_1, logits_2, batch.y, tau, hp.divide_by_kept
            )
        else:
            full_batch = (epoch + 1) * self.batch_in_epoch < hp.full_batch_steps
            loss_1, loss_2 = coteaching_plus_losses(
                logits_1, logits_2, batch.y, tau, hp, full_batch
            )
        disagree = (logits_1.argmax(1) != logits_2.argmax(1)).float().mean()
        logs = {
            "forget_rate": tau,
            "disagree": disagree,
            "loss_1": loss_1.detach(),
            "loss_2": loss_2.detach(),
        }
        scores = -F.cross_entropy(logits_1, batch.y, reduction="none").detach()
        return StepOutput(loss=loss_1 + loss_2, logs=logs, scores=scores)
