"""Co-teaching (Han et al., NeurIPS 2018), after bhanML/Co-teaching at 7c7fbe2.

Two networks of the same architecture, initialised independently
(``TrainInfo.new_backbone``), see the same batch. Each ranks the batch by its
own per-sample cross-entropy and keeps the ``R(T) = 1 - tau(T)`` share with the
smallest loss; each network is then trained on the samples its *peer* kept
(loss.py:8-32). The forget rate ``tau(T)`` rises linearly from 0 to
``forget_rate ** exponent`` over the first ``num_gradual`` epochs and is
``forget_rate`` after (main.py:134-135).

The official code sets ``forget_rate`` to the true noise rate when none is given
(main.py:112-115); a method here never knows it, so ``forget_rate`` is a plain
hyperparameter (default 0.2, a guess to tune, e.g. with ``fer-bench tune``).

Facts of the official code kept, with the choices made:
* Epoch indexing: the official loop trains epochs 1..n_epoch-1 (epoch 0 only
  evaluates the random networks, main.py:276-287) and reads ``rate_schedule[epoch]``
  (main.py:196), so the first trained epoch already forgets ``tau**c / (Tk - 1)``.
  Here 0-based epoch ``e`` trains with ``rate_schedule[e + 1]``, the same sequence.
* Loss scale: each network's loss is the mean cross-entropy over its peer's kept
  samples divided once more by their number (loss.py:29-32, ``torch.sum`` of a
  mean); ``divide_by_kept=False`` gives the paper's plain mean. Under Adam the
  extra constant factor changes little beyond the ``eps`` term.
* Two Adam optimisers at one learning rate (main.py:263-268) are one optimiser over
  both networks here: Adam is per parameter and the two losses share no parameter.
* At least one sample is kept per batch (the official code would divide by zero).
* Prediction and evaluation use network 1 (the official code reports both).
* Noise diagnostics: ``scores`` are network 1's negative per-sample losses, the
  small-loss criterion by which it picks what network 2 learns from.

Not reproduced: the official linear decay of the learning rate to 0 and of Adam's
beta1 from 0.9 to 0.1 after ``epoch_decay_start`` (main.py:119-131); the run's
configured schedule applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from fer_bench.backbones import Backbone
from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo
from fer_bench.registry import METHODS
from fer_bench.search import Dist, Uniform


@dataclass
class CoteachHparams(Hparams):
    forget_rate: float = 0.2  # tau: share of each batch dropped once the schedule is full
    num_gradual: int = 10  # T_k: epochs over which tau rises linearly (main.py:24)
    exponent: float = 1.0  # c: the ramp ends at tau ** c (main.py:25)
    divide_by_kept: bool = True  # official loss scale: mean / kept (loss.py:29-32)

    search_space: ClassVar[dict[str, Dist]] = {
        # forget rate: the official code uses the noise rate, which a method never knows
        "forget_rate": Uniform(0.0, 0.5),
    }

    def __post_init__(self) -> None:
        if not 0.0 <= self.forget_rate < 1.0:
            raise ValueError(f"coteach forget_rate must be in [0, 1) (got {self.forget_rate})")
        if self.num_gradual < 1:
            raise ValueError(f"coteach num_gradual must be at least 1 (got {self.num_gradual})")


def forget_rate_at(epoch: int, hp: CoteachHparams) -> float:
    """tau for 0-based ``epoch``: the official ``rate_schedule[epoch + 1]``."""
    step = epoch + 1
    if step >= hp.num_gradual:
        return hp.forget_rate
    return hp.forget_rate**hp.exponent * step / (hp.num_gradual - 1)


def small_loss(losses: torch.Tensor, forget_rate: float) -> torch.Tensor:
    """Positions of the ``int((1 - forget_rate) * B)`` smallest losses (at least one)."""
    kept = max(1, int((1 - forget_rate) * losses.numel()))
    return losses.argsort()[:kept]


def coteaching_losses(
    logits_1: torch.Tensor,
    logits_2: torch.Tensor,
    y: torch.Tensor,
    forget_rate: float,
    divide_by_kept: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss of network 1, loss of network 2, network 1's per-sample losses): each network
    learns from the samples its peer finds easiest."""
    per_sample_1 = F.cross_entropy(logits_1, y, reduction="none")
    per_sample_2 = F.cross_entropy(logits_2, y, reduction="none")
    kept_by_1 = small_loss(per_sample_1.detach(), forget_rate)
    kept_by_2 = small_loss(per_sample_2.detach(), forget_rate)
    loss_1 = F.cross_entropy(logits_1[kept_by_2], y[kept_by_2])
    loss_2 = F.cross_entropy(logits_2[kept_by_1], y[kept_by_1])
    if divide_by_kept:
        loss_1, loss_2 = loss_1 / len(kept_by_2), loss_2 / len(kept_by_1)
    return loss_1, loss_2, per_sample_1.detach()


@METHODS.register("coteach")
class CoTeaching(Method):
    family = "noise"
    Hparams = CoteachHparams
    score_name = "neg_loss"  # network 1's small-loss criterion: higher = kept sooner

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: CoteachHparams) -> None:
        super().__init__(backbone, info, hparams)
        if info.new_backbone is None:
            raise ValueError("coteach needs a second network: TrainInfo.new_backbone")
        self.peer = info.new_backbone()

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        tau = forget_rate_at(epoch, self.hparams)
        loss_1, loss_2, per_sample = coteaching_losses(
            self.backbone(batch.x).float(),
            self.peer(batch.x).float(),
            batch.y,
            tau,
            self.hparams.divide_by_kept,
        )
        logs = {"forget_rate": tau, "loss_1": loss_1.detach(), "loss_2": loss_2.detach()}
        return StepOutput(loss=loss_1 + loss_2, logs=logs, scores=-per_sample)
