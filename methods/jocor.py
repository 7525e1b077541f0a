"""JoCoR (Wei et al., CVPR 2020), after hongxin001/JoCoR at 86db359.

Two networks (``TrainInfo.new_backbone``) trained together on one joint loss per
sample (algorithm/loss.py:20-24):
(1 - lambda) (CE(z1, y) + CE(z2, y)) + lambda (KL(p2 || p1) + KL(p1 || p2)),
the co-regularisation being the symmetric KL divergence between the two softmax
outputs, with gradients through both (loss.py:8-15). The batch is ranked by that
joint loss and the mean over the ``int((1 - tau) B)`` smallest is the one loss both
networks minimise, with one Adam over both (loss.py:27-40, algorithm/jocor.py:64-65).
The forget rate tau rises as Co-teaching's (``np.linspace(0, tau ** exponent,
num_gradual)``, jocor.py:41-42; ``coteach.forget_rate_at``, the same epoch
indexing: the official loop also trains epochs 1..n_epoch-1, main.py:171).

Defaults: lambda 0.9, the authors' best for CIFAR-10 at 20 % and 50 % symmetric noise
(README.md:28-30; the argparse default is 0.1, main.py:32, and example.sh runs 0.95
on MNIST); num_gradual 10 and exponent 1 (main.py:20-23). The official forget rate is
the true noise rate (half of it for asymmetric noise, jocor.py:20-26), which a method
never knows: 0.2 here, as ``coteach.py``, a value to tune.

Choices: at least one sample is kept per batch (the official mean of none is NaN).
Not reproduced: the linear decay of the learning rate to 0 and of Adam's beta1 to 0.1
from epoch 80 (jocor.py:30-38), and the cap of 400 iterations per epoch
(main.py:29, jocor.py:120). Prediction uses network 1 (the official code reports
both); ``scores`` are the negative joint losses, the criterion of the selection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from fer_bench.backbones import Backbone
from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo
from fer_bench.methods.coteach import forget_rate_at, small_loss
from fer_bench.registry import METHODS
from fer_bench.search import Dist, Uniform


@dataclass
class JocorHparams(Hparams):
    forget_rate: float = 0.2  # tau: share of each batch dropped once the schedule is full
    num_gradual: int = 10  # T_k: epochs over which tau rises linearly (main.py:20)
    exponent: float = 1.0  # c: the ramp ends at tau ** c (main.py:22)
    co_lambda: float = 0.9  # weight of the co-regularisation (README.md:30)

    search_space: ClassVar[dict[str, Dist]] = {
        # forget rate: the official code uses the noise rate, which a method never knows
        "forget_rate": Uniform(0.0, 0.5),
        # "Generally, the best lambda is between 0.5-0.9" (README.md:28)
        "co_lambda": Uniform(0.5, 0.95),
    }

    def __post_init__(self) -> None:
        if not 0.0 <= self.forget_rate < 1.0:
            raise ValueError(f"jocor forget_rate must be in [0, 1) (got {self.forget_rate})")
        if self.num_gradual < 1:
            raise ValueError(f"jocor num_gradual must be at least 1 (got {self.num_gradual})")
        if not 0.0 <= self.co_lambda <= 1.0:
            raise ValueError(f"jocor co_lambda must be in [0, 1] (got {self.co_lambda})")


def kl_per_sample(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(target) || softmax(logits)) per sample (B,), as loss.py:8-15."""
    kl = F.kl_div(logits.log_softmax(1), target_logits.softmax(1), reduction="none")
    return kl.sum(1)


def joint_loss(
    logits_1: torch.Tensor, logits_2: torch.Tensor, y: torch.Tensor, co_lambda: float
) -> torch.Tensor:
    """Per-sample joint loss (B,): weighted supervised losses plus symmetric KL."""
    ce = F.cross_entropy(logits_1, y, reduction="none") + F.cross_entropy(
        logits_2, y, reduction="none"
    )
    kl = kl_per_sample(logits_1, logits_2) + kl_per_sample(logits_2, logits_1)
    return (1 - co_lambda) * ce + co_lambda * kl


@METHODS.register("jocor")
class JoCoR(Method):
    Hparams = JocorHparams
    family = "noise"
    score_name = "neg_loss"  # the joint small-loss criterion: higher = kept sooner

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: JocorHparams) -> None:
        super().__init__(backbone, info, hparams)
        if info.new_backbone is None:
            raise ValueError("jocor needs a second network: TrainInfo.new_backbone")
        self.peer = info.new_backbone()

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        tau = forget_rate_at(epoch, self.hparams)  # reads forget_rate, num_gradual, exponent
        logits_1, logits_2 = self.backbone(batch.x).float(), self.peer(batch.x).float()
        joint = joint_loss(logits_1, logits_2, batch.y, self.hparams.co_lambda)
        loss = joint[small_loss(joint.detach(), tau)].mean()
        return StepOutput(loss=loss, logs={"forget_rate": tau}, scores=-joint.detach())
