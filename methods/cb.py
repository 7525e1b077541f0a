"""Class-balanced loss (Cui et al., CVPR 2019), after richardaecn/class-balanced-loss
at 1d78572 (TensorFlow; written here in PyTorch).

Each sample's loss is weighted by its class's inverse effective number of samples,
w_c = (1 - beta) / (1 - beta^n_c), normalised to sum to K (src/cifar_main.py:425-430;
the same weights as LDAM-DRW's, ``ldam.class_balanced_weights``). n_c counts the
observed (possibly noisy) training labels; a class absent from them is counted once,
where the official code would divide by zero. beta = 0 gives unit weights.

``loss_type`` (src/cifar_main.py:332-342), each as the official reduction:
* ``softmax`` (official default, cifar_main.py:661-666): softmax cross-entropy
  weighted per sample, ``tf.losses.softmax_cross_entropy`` with weights, i.e. the sum
  of w_y CE over the batch divided by the batch size (not by the sum of the weights,
  as PyTorch's ``cross_entropy(weight=...)`` would).
* ``sigmoid``: per-class binary cross-entropy against the one-hot label, every
  class's term weighted by the sample's w_y, summed, divided by the batch size.
* ``focal``: the sigmoid loss with the focal modulator (1 - p_t)^gamma per class,
  computed as exp(-gamma z y - gamma log(1 + e^-z)) (cifar_main.py:226-266; softplus
  here, the same value without overflow); gamma 1 as in cifar_im_trainval_cb.sh:15-17.
With ``sigmoid`` and ``focal`` the classifier's bias starts at -log(K - 1)
(src/model_base.py:192-197), so every sigmoid starts at 1/K.

Defaults: beta 0.9999, the repository's class-balanced script for long-tailed CIFAR
(cifar_im_trainval_cb.sh:7; the argparse default 0, cifar_main.py:673-677, is the
plain loss), which runs all three loss types (cifar_im_trainval_cb.sh:9-17),
``softmax`` first; softmax is also the argparse default.

Not reproduced: excluding the last layer's bias from weight decay with the sigmoid
losses (cifar_main.py:345-351), and the recipe (momentum SGD at lr 0.1, weight decay
2e-4, warm-up to epoch 5 and x0.01 / x1e-4 at epochs 160 / 180 of 200,
cifar_main.py:553-600, cifar_im_trainval_cb.sh:10). Predictions are the logits; with
the sigmoid losses the official probabilities are per-class sigmoids, while the
harness's calibration metrics read a softmax of the same logits (same argmax).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from fer_bench.backbones import Backbone
from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo
from fer_bench.methods.ldam import class_balanced_weights
from fer_bench.registry import METHODS
from fer_bench.search import Dist, Uniform

LOSS_TYPES = ("softmax", "sigmoid", "focal")


@dataclass
class CbHparams(Hparams):
    beta: float = 0.9999  # effective-number hyperparameter: 0 = no re-weighting
    loss_type: str = "softmax"  # softmax | sigmoid | focal
    gamma: float = 1.0  # focal modulator exponent (focal only)

    search_space: ClassVar[dict[str, Dist]] = {
        # 0.9999 official for long-tailed CIFAR; the paper's grid reaches down to 0.9, but
        # with a few hundred faces in the rarest class only 1 - beta >~ 1e-3 changes much
        "beta": Uniform(0.99, 0.9999),
    }

    def __post_init__(self) -> None:
        if not 0 <= self.beta < 1:
            raise ValueError(f"cb beta must be in [0, 1) (got {self.beta})")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"cb loss_type must be one of {', '.join(LOSS_TYPES)}")
        if self.gamma < 0:
            raise ValueError(f"cb gamma must be >= 0 (got {self.gamma})")


def class_balanced_loss(
    logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, loss_type: str, gamma: float
) -> torch.Tensor:
    """The official reductions: sum over the batch (and classes) divided by the batch size."""
    w = weights[y]
    if loss_type == "softmax":
        return (w * F.cross_entropy(logits, y, reduction="none")).mean()
    one_hot = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, one_hot, reduction="none")
    if loss_type == "focal" and gamma:
        loss = torch.exp(-gamma * one_hot * logits - gamma * F.softplus(-logits)) * loss
    return (w[:, None] * loss).sum() / len(y)


@METHODS.register("cb")
class ClassBalanced(Method):
    Hparams = CbHparams
    family = "longtail"

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: CbHparams) -> None:
        super().__init__(backbone, info, hparams)
        counts = torch.bincount(info.observed_labels.long(), minlength=info.num_classes)
        weights = class_balanced_weights(counts.clamp(min=1), hparams.beta)
        self.register_buffer("weights", weights, persistent=False)
        if hparams.loss_type != "softmax":
            with torch.no_grad():
                backbone.classifier.bias.fill_(-math.log(info.num_classes - 1))

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        logits = self.backbone(batch.x).float()
        hp = self.hparams
        return StepOutput(
            loss=class_balanced_loss(logits, batch.y, self.weights, hp.loss_type, hp.gamma)
        )
