"""DivideMix (Li, Socher, Hoi, ICLR 2020), after LiJunnan1992/DivideMix at d9d3058.

Two networks (``TrainInfo.new_backbone``) are first warmed up with plain
cross-entropy (Train_cifar.py:124-138, 253-258). At the start of every later epoch
each network scores the training set (evaluation view, eval mode): its per-sample
losses, min-max normalised, are fitted by a two-component Gaussian mixture
(``max_iter=10, tol=1e-2, reg_covar=5e-4``) and a sample's clean probability is its
posterior under the low-mean component (eval_train, :165-190; ``fer_bench.gmm``
replaces scikit-learn). Each network then trains on its *peer's* division
(co-divide, :261-273): labelled = peer's probability > ``p_threshold``. Labelled
targets are co-refined, ``w y + (1 - w) p_own`` with w the peer's probability and
p_own the own network's softmax averaged over two views; unlabelled targets are
co-guessed, the softmax of both networks on both views averaged (:62-84); both are
sharpened at temperature ``T``. MixMatch mixes the two views of every sample with a
random permutation of them by ``l = max(l, 1 - l)``, ``l ~ Beta(alpha, alpha)``
(:86-103); the loss is ``Lx + lambda_u(t) Lu + penalty``: soft-target CE on the
labelled, MSE on the unlabelled, lambda_u ramping linearly from the end of the
warm-up (:192-203), and the prior term ``KL(uniform || mean prediction)`` (:107-113).

Defaults are Train_cifar.py's (alpha 4, lambda_u 25, p_threshold 0.5, T 0.5). The
paper sets lambda_u per noise level, which a method never knows, so it is in the
search space, as is the warm-up's share, which the official code sets per dataset.
Adaptations to the harness, each stated:
* Schedule in shares of the run: the warm-up is ``round(warmup * epochs)`` epochs, at
  least 1 (official 10 of 300 on CIFAR-10, :219), and the lambda_u ramp lasts
  ``rampup * epochs`` (official 16 epochs of 300, :192). A warm-up that leaves no
  DivideMix epoch is an error.
* One batch per step instead of separate labelled and unlabelled loaders: each
  network splits the batch by its peer's division, and both networks train in the
  same step (the official trains network 1's epoch, then network 2's). One
  optimiser over both stands for the two identical SGD optimisers (:232-233). The
  guesses are made with both networks in training mode (the official puts the peer
  in eval mode, :43), since both are being trained.
* Warm-up: network 1 trains on view 1 and network 2 on view 2 of the run's batch (the
  official gives each its own shuffle of twice the batch, dataloader_cifar.py:171);
  ``conf_penalty`` adds the negative entropy the official uses for asymmetric noise
  (:132-134), off by default as for symmetric noise.
* The mixture is also fitted during the warm-up, for the noise diagnostics only.
* Prediction: the mean of the two networks' logits (the official test sums them,
  :153-156: the same argmax, a single network's scale for the probabilities).
* Not reproduced: averaging the losses over the last 5 epochs, which the official
  does only at 90 % noise (:178-180).

Cost: 5.21x a CE epoch (``bench/speed.py``), as the step's passes predict: four no-grad
forwards of the batch (both networks on both views) and, per network, a forward and
backward of twice the batch (its mixed views), 4 + 2 x 3 x 2 = 16 batch forwards against
CE's 3. It is the method's own cost: an official step of one network makes six no-grad
forwards (:62-77) and a forward and backward of four batches (:90-101).

Noise diagnostics: ``scores`` are network 1's clean probabilities (the division that
network 2 trains on), kept with network 2's as a registered buffer. The MixMatch draws
use the global torch streams, which the checkpoint saves, so a resume is bit-identical.

Repeated indices (``--sampler balanced`` draws with replacement): the per-sample clean
probabilities (SFA's and TABASCO's too) are written only by the epoch-start division
pass, which reads every image once; a step only reads them, so an index repeated in a
batch reads the same value at each occurrence, each occurrence a sample of the batch. No
update is lost; nothing to order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from fer_bench.backbones import Backbone
from fer_bench.gmm import low_component_posterior
from fer_bench.methods.base import Batch, Hparams, Method, StepOutput, TrainInfo, TrainingImages
from fer_bench.registry import METHODS
from fer_bench.search import Dist, Uniform


@dataclass
class DividemixHparams(Hparams):
    warmup: float = 1 / 30  # share of the epochs spent warming up (official 10 of 300)
    rampup: float = 16 / 300  # share of the epochs over which lambda_u rises (16 of 300)
    lambda_u: float = 25.0  # weight of the unlabelled loss (:21)
    p_threshold: float = 0.5  # clean probability above which a sample is labelled (:22)
    T: float = 0.5  # sharpening temperature (:23)
    alpha: float = 4.0  # Beta(alpha, alpha) of the MixMatch coefficient (:20)
    conf_penalty: bool = False  # warm-up negative entropy (official for asymmetric noise)

    search_space: ClassVar[dict[str, Dist]] = {
        "lambda_u": Uniform(0.0, 50.0),  # official default 25; the paper sets it per noise
        "p_threshold": Uniform(0.5, 0.7),  # official 0.5 and stricter divisions
        # The official warm-up is set per dataset: 10 or 30 of 300 epochs (CIFAR-10, -100,
        # Train_cifar.py:218-221), 1 of 80 (Clothing1M :244, WebVision :212).
        "warmup": Uniform(1 / 80, 1 / 10),
    }

    def __post_init__(self) -> None:
        if not 0 < self.warmup < 1 or self.rampup <= 0:
            raise ValueError("dividemix warmup must be in (0, 1) and rampup above 0")
        if self.T <= 0 or self.alpha <= 0:
            raise ValueError("dividemix T and alpha must be above 0")


def sharpen(p: torch.Tensor, temperature: float) -> torch.Tensor:
    sharp = p ** (1 / temperature)
    return sharp / sharp.sum(1, keepdim=True)


def mix_coefficient(alpha: float) -> float:
    """max(l, 1 - l), l ~ Beta(alpha, alpha), from the global torch stream (checkpointed)."""
    draw = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha)).sample().item()
    return max(draw, 1 - draw)


def clean_probability(losses: torch.Tensor) -> torch.Tensor:
    """eval_train: min-max normalised losses, the mixture's low-loss posterior."""
    span = (losses.max() - losses.min()).clamp_min(1e-12)  # all equal: no division by 0
    scaled = (losses - losses.min()) / span
    return low_component_posterior(scaled, max_iter=10, tol=1e-2, reg_covar=5e-4)


def semi_loss(
    logits: torch.Tensor, targets: torch.Tensor, n_labelled: int, lambda_u: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Lx + lambda_u Lu + prior penalty, Lx, Lu); an empty part counts 0."""
    lx_rows = -(F.log_softmax(logits[:n_labelled], 1) * targets[:n_labelled]).sum()
    lx = lx_rows / max(n_labelled, 1)
    lu_terms = (logits[n_labelled:].softmax(1) - targets[n_labelled:]) ** 2
    lu = lu_terms.sum() / max(lu_terms.numel(), 1)
    prior = torch.full((logits.shape[1],), 1 / logits.shape[1], device=logits.device)
    penalty = (prior * (prior / logits.softmax(1).mean(0)).log()).sum()
    return lx + lambda_u * lu + penalty, lx, lu


@METHODS.register("dividemix")
class DivideMix(Method):
    family = "noise"
    Hparams = DividemixHparams
    second_view = "independent"
    score_name = "clean_prob"  # network 1's mixture posterior of the low-loss component

    def __init__(self, backbone: Backbone, info: TrainInfo, hparams: DividemixHparams) -> None:
        super().__init__(backbone, info, hparams)
        if info.new_backbone is None:
            raise ValueError("dividemix needs a second network: TrainInfo.new_backbone")
        self.peer = info.new_backbone()
        self.warmup_epochs = max(1, round(hparams.warmup * info.epochs))
        if self.warmup_epochs >= info.epochs:
            raise ValueError(
                f"dividemix warm-up of {self.warmup_epochs} epochs leaves none of the "
                f"{info.epochs} for DivideMix"
            )
        # Row k: network k's clean probability of each training sample (1 until fitted).
        self.register_buffer("clean_prob", torch.ones(2, info.num_train))
        self.step_in_epoch = 0

    @property
    def nets(self) -> tuple[Backbone, Backbone]:
        return self.backbone, self.peer

    def on_epoch_start(self, epoch: int, images: TrainingImages) -> None:
        self.step_in_epoch = 0
        self.eval()
        losses = torch.zeros_like(self.clean_prob)
        for batch in images.batches():
            for k, net in enumerate(self.nets):
                per_sample = F.cross_entropy(net(batch.x).float(), batch.y, reduction="none")
                losses[k, batch.index] = per_sample
        for k in range(2):
            self.clean_prob[k] = clean_probability(losses[k].cpu()).to(self.clean_prob)

    def after_step(self, batch: Batch, epoch: int) -> None:
        self.step_in_epoch += 1

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        scores = self.clean_prob[0, batch.index]
        if epoch < self.warmup_epochs:
            return self._warmup_loss(batch, scores)
        hp = self.hparams
        with torch.no_grad():
            views = [[net(v).float().softmax(1) for v in (batch.x, batch.x2)] for net in self.nets]
            guessed = sharpen(sum(views[0] + views[1]) / 4, hp.T)  # co-guessing (:64-72)
        now = epoch + self.step_in_epoch / self.info.steps_per_epoch
        ramp = min(max((now - self.warmup_epochs) / (hp.rampup * self.info.epochs), 0.0), 1.0)
        lambda_u = hp.lambda_u * ramp
        total, logs = 0.0, {"lambda_u": lambda_u}
        for k, net in enumerate(self.nets):
            w = self.clean_prob[1 - k, batch.index]  # co-divide: the peer's division
            loss, net_logs = self._mixmatch_loss(net, batch, w, views[k], guessed, lambda_u)
            total = total + loss
            logs |= {f"{key}_{k + 1}": value for key, value in net_logs.items()}
        return StepOutput(loss=total, logs=logs, scores=scores)

    def _mixmatch_loss(
        self,
        net: Backbone,
        batch: Batch,
        w: torch.Tensor,
        own_views: list[torch.Tensor],
        guessed: torch.Tensor,
        lambda_u: float,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One network's loss: co-refined labelled and co-guessed unlabelled targets,
        both views of each sample, mixed with a permutation of them (:76-113)."""
        hp = self.hparams
        own = (own_views[0] + own_views[1]) / 2
        one_hot = F.one_hot(batch.y, own.shape[1]).float()
        refined = sharpen(w[:, None] * one_hot + (1 - w[:, None]) * own, hp.T)
        lab = w > hp.p_threshold
        x = torch.cat([batch.x[lab], batch.x2[lab], batch.x[~lab], batch.x2[~lab]])
        t = torch.cat([refined[lab], refined[lab], guessed[~lab], guessed[~lab]])
        mix, perm = mix_coefficient(hp.alpha), torch.randperm(len(x), device=x.device)
        logits = net(mix * x + (1 - mix) * x[perm]).float()
        n_labelled = 2 * int(lab.sum())
        loss, lx, lu = semi_loss(logits, mix * t + (1 - mix) * t[perm], n_labelled, lambda_u)
        return loss, {"lx": lx.detach(), "lu": lu.detach(), "labelled": lab.float().mean()}

    def _warmup_loss(self, batch: Batch, scores: torch.Tensor) -> StepOutput:
        total, logs = 0.0, {}
        for k, (net, x) in enumerate(zip(self.nets, (batch.x, batch.x2), strict=True)):
            logits = net(x).float()
            ce = F.cross_entropy(logits, batch.y)
            logs[f"ce_{k + 1}"] = ce.detach()
            if self.hparams.conf_penalty:  # NegEntropy (:205-208)
                probs = logits.softmax(1)
                ce = ce + (probs.log() * probs).sum(1).mean()
            total = total + ce
        return StepOutput(loss=total, logs=logs, scores=scores)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return (self.backbone(x) + self.peer(x)) / 2
