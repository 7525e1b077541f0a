"""RUL - Relative Uncertainty Learning (Zhang et al., NeurIPS 2021), after
zyh-uaiaaaa/Relative-Uncertainty-Learning.

Two heads on the last feature map X (no pooling), each BN2d (no affine) ->
Dropout 0.4 -> flatten -> Linear -> BN1d(64), give a feature mu and a
log-variance s. Per batch: u_i = mean_d exp(s_i,d); a random permutation pi
pairs samples; lambda_i = u_i / (u_i + u_pi(i)); z_i = lambda_i mu_i +
(1 - lambda_i) mu_pi(i); loss = mean_i 0.5 CE(g(z_i), y_i) + 0.5 CE(g(z_i), y_pi(i)).
Inference: g(mu(X)). The classifier g trains at ``classifier_lr_ratio`` times
the shared lr (official: 2e-3 vs 2e-4). The backbone's own classifier is unused.

Choices:
* ``relabel=False`` (official release): no relabelling. The author states the
  noisy-label results also used SCN's relabelling, which the release lacks;
  ``relabel=True`` applies SCN's rule (methods/relabel.py) from
  ``relabel_epoch`` with ``relabel_margin``, to softmax(g(mu_i)), the sample's
  own un-mixed prediction from the same forward pass; an index repeated in a batch
  (``--sampler balanced``) takes its last relabelled occurrence's label.
* The heads flatten the map at the grid the backbone gives at its native input
  size (timm ``pretrained_cfg``; 7x7 for ResNet-18 at 224, as official). Maps of
  other sizes are adaptive-average-pooled to that grid (identity when equal).
Score: 1 / u, so higher = more certain (believed cleaner).

Official recipe (``--recipe official``; zyh-uaiaaaa/Relative-Uncertainty-Learning at 63b73f2):
* Adam, backbone and heads lr 2e-4, classifier g lr 2e-3 (``classifier_lr_ratio``
  10), weight decay 1e-4; ExponentialLR gamma 0.9 (src/main.py:77-80), stepped once
  per epoch (main.py:114).
* batch 64, 60 epochs, feature dimension 64 (main.py:28-30); head dropout 0.4
  (src/rul.py:12, heads rul.py:25-37).
* Augmentation: with probability 0.5 one of {mirror, Gaussian noise of variance 30}
  (src/dataset.py:47-49, src/utils.py:7-15), each p 0.25, never both; resize to 224,
  ImageNet normalisation, RandomErasing(scale=(0.02, 0.25)) at p 0.5 (main.py:40-47).
* No relabelling in the release (``relabel=False``).
* Backbone: ResNet-18 pretrained on MS-Celeb-1M, ``resnet18_msceleb.pth`` under the
  key ``state_dict`` (main.py:25, rul.py:16-19); the script keeps the best test epoch
  (main.py:151-153).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.backbones import Backbone
from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo
from fer_bench.methods.relabel import LabelTable
from fer_bench.recipes import (
    COMMON_NOT_REPRODUCED,
    MIRROR_OR_NOISE,
    Recipe,
    adam_exponential,
)
from fer_bench.registry import METHODS
from fer_bench.search import Dist, LogUniform


@dataclass
class RulHparams(Hparams):
    feature_dim: int = 64
    dropout: float = 0.4
    classifier_lr_ratio: float = 10.0
    relabel: bool = False
    relabel_epoch: int = 10  # 1-based, as SCN
    relabel_margin: float = 0.2

    search_space: ClassVar[dict[str, Dist]] = {
        # classifier lr over the shared lr (searched itself): 10 official, 3-30 around it
        "classifier_lr_ratio": LogUniform(3.0, 30.0),
    }


def uncertainty(log_var: torch.Tensor) -> torch.Tensor:
    """u_i = mean_d exp(s_i,d): the mean of exponentials, as the official code."""
    return log_var.exp().mean(1)


def mix(mu: torch.Tensor, u: torch.Tensor, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z_i = lambda_i mu_i + (1 - lambda_i) mu_perm(i), lambda_i = u_i / (u_i + u_perm(i))."""
    lam = u / (u + u[perm])
    return lam.unsqueeze(1) * mu + (1 - lam.unsqueeze(1)) * mu[perm], lam


def add_up_loss(logits: torch.Tensor, y: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    return 0.5 * F.cross_entropy(logits, y) + 0.5 * F.cross_entropy(logits, y[perm])


def native_map_shape(backbone: Backbone) -> tuple[int, int, int]:
    """(C, h, w) of the feature map at the backbone's native input size."""
    size = backbone.model.pretrained_cfg["input_size"][1:]
    in_chans = next(m for m in backbone.modules() if isinstance(m, nn.Conv2d)).in_channels
    was_training = backbone.training
    backbone.eval()  # the probe must not move BatchNorm statistics
    with torch.no_grad():
        probe = torch.zeros(1, in_chans, *size, device=next(backbone.parameters()).device)
        shape = backbone.feature_map(probe).shape[1:]
    backbone.train(was_training)
    return tuple(shape)  # type: ignore[return-value]


def _head(shape: tuple[int, int, int], dim: int, dropout: float) -> nn.Sequential:
    c, h, w = shape
    return nn.Sequential(
        nn.AdaptiveAvgPool2d((h, w)),
        nn.BatchNorm2d(c, eps=2e-5, affine=False),
        nn.Dropout(dropout),
        nn.Flatten(),
        nn.Linear(c * h * w, dim),
        nn.BatchNorm1d(dim, eps=2e-5),
    )


@METHODS.register("rul")
class RUL(Method):
    family = "fer"
    Hparams = RulHparams
    score_name = "inverse_uncertainty"
    official_recipe = Recipe(
        overrides=adam_exponential(
            lr=2e-4,
            batch_size=64,
            epochs=60,
            **MIRROR_OR_NOISE,
        ),
        hparams={
            "feature_dim": "64",
            "dropout": "0.4",
            "classifier_lr_ratio": "10",
            "relabel": "false",
        },
        source=(
            "zyh-uaiaaaa/Relative-Uncertainty-Learning@63b73f2: src/main.py:28-30 (batch 64, "
            "60 epochs, feature dim 64), main.py:40-47 (224 px, RandomErasing 0.02-0.25), "
            "main.py:77-80 (Adam lr 2e-4, classifier 2e-3, weight decay 1e-4, ExponentialLR "
            "0.9), main.py:114 (stepped per epoch), src/dataset.py:47-49 + src/utils.py:7-15 "
            "(one of mirror / noise var 30 at p 0.5), src/rul.py:12 (dropout 0.4)"
        ),
        not_reproduced=(
            "ResNet-18 pretrained on MS-Celeb-1M (resnet18_msceleb.pth, main.py:25, "
            "rul.py:16-19): only with --backbone resnet18 --pretrained PATH; the config's "
            "backbone is used otherwise",
            "ImageNet normalisation statistics: the training set's own mean and std are used",
            "best-test-epoch selection (main.py:151-153): fer-bench reports its declared "
            "selection rules (the test-epoch one as 'oracle')",
            *COMMON_NOT_REPRODUCED,
        ),
    )

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: RulHparams) -> None:
        super().__init__(backbone, info, hparams)
        shape = native_map_shape(backbone)
        self.mu = _head(shape, hparams.feature_dim, hparams.dropout)
        self.log_var = _head(shape, hparams.feature_dim, hparams.dropout)
        self.fc = nn.Linear(hparams.feature_dim, info.num_classes)
        self.table = LabelTable(info.observed_labels) if hparams.relabel else None
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        fmap = self.backbone.feature_map(batch.x)
        mu, u = self.mu(fmap).float(), uncertainty(self.log_var(fmap).float())
        perm = torch.randperm(mu.shape[0], device=mu.device)
        z, lam = mix(mu, u, perm)
        y = batch.y if self.table is None else self.table.lookup(batch.index)
        loss = add_up_loss(self.fc(z).float(), y, perm)
        logs = {"u": u.mean().detach(), "lambda_abs_dev": (lam - 0.5).abs().mean().detach()}
        if self.table is not None:
            logs["relabelled"] = self.table.changed_fraction()
            if epoch + 1 >= self.hparams.relabel_epoch:
                with torch.no_grad():
                    self._pending = (batch.index, self.fc(mu).float().softmax(1))
        return StepOutput(loss=loss, logs=logs, scores=1.0 / u.detach())

    def after_step(self, batch: Batch, epoch: int) -> None:
        if self._pending is not None and self.table is not None:
            self.table.update(*self._pending, self.hparams.relabel_margin)
            self._pending = None

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.mu(self.backbone.feature_map(x)))

    def param_groups(self, lr: float) -> list[dict]:
        # The backbone's own classifier is unused; g gets its own group.
        skip = {id(p) for m in (self.backbone.classifier, self.fc) for p in m.parameters()}
        rest = [p for p in self.parameters() if id(p) not in skip and p.requires_grad]
        fc_lr = lr * self.hparams.classifier_lr_ratio
        return [{"params": rest, "lr": lr}, {"params": list(self.fc.parameters()), "lr": fc_lr}]
