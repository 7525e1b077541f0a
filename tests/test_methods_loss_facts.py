"""Checkable facts of apl, cb and mek, each against its official code written out here."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_bench.backbones import create_backbone
from fer_bench.config import RunConfig
from fer_bench.methods.apl import normalized_ce
from fer_bench.methods.base import Batch, Method, TrainInfo, build_hparams
from fer_bench.methods.cb import class_balanced_loss
from fer_bench.methods.mek import rebalance_weights, rebalanced_consistency, rebalanced_smooth_ce
from fer_bench.registry import METHODS

TOL = 1e-5
B = 6


def make(name: str, labels: torch.Tensor, **overrides: str) -> Method:
    """The method on a small untrained backbone, in eval mode (deterministic forwards)."""
    torch.manual_seed(0)
    cls = METHODS.get(name)
    k = int(labels.max()) + 1
    backbone = create_backbone(RunConfig().backbone, num_classes=k, in_chans=1)
    info = TrainInfo(k, len(labels), labels, epochs=10, steps_per_epoch=1, batch_size=B)
    return cls(backbone, info, build_hparams(cls, overrides)).eval()


def batch_of(method: Method, index: list[int], mirror: bool = False) -> Batch:
    index_t = torch.tensor(index)
    # 32 px: a 2x2 last feature map, which the official flip grid needs (it divides by w - 1)
    x = torch.randn(len(index), 1, 32, 32, generator=torch.Generator().manual_seed(1))
    y = method.info.observed_labels[index_t]
    return Batch(x=x, y=y, index=index_t, x2=x.flip(-1) if mirror else None)


# ---- APL (HanxunH/Active-Passive-Losses loss.py) ----------------------------------------------


def official_nce_rce(pred: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float):
    """NCEandRCE.forward (loss.py:78-90, 43-57, 167-176), verbatim but for the device."""
    k = pred.shape[1]
    log_p = F.log_softmax(pred, dim=1)
    label_one_hot = F.one_hot(labels, k).float()
    nce = -1 * torch.sum(label_one_hot * log_p, dim=1) / (-log_p.sum(dim=1))
    p = torch.clamp(F.softmax(pred, dim=1), min=1e-7, max=1.0)
    rce = -1 * torch.sum(p * torch.log(torch.clamp(label_one_hot, min=1e-4, max=1.0)), dim=1)
    return alpha * nce.mean() + beta * rce.mean()


def test_apl_nce_of_a_hand_built_distribution() -> None:
    # p = (1/2, 1/4, 1/4): NCE(y=0) = ln 2 / (ln 2 + 2 * 2 ln 2) = 1/5, NCE(y=1) = 2/5
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    assert normalized_ce(logits, torch.tensor([0])).item() == pytest.approx(0.2, abs=TOL)
    assert normalized_ce(logits, torch.tensor([1])).item() == pytest.approx(0.4, abs=TOL)


def test_apl_nce_sums_to_one_over_the_labels() -> None:
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    total = sum(normalized_ce(logits, torch.full((4,), k)) for k in range(5))
    assert torch.allclose(total, torch.ones(4), atol=TOL)


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 1.0), (10.0, 0.1)])
def test_apl_loss_is_the_official_nce_plus_rce(alpha: float, beta: float) -> None:
    labels = torch.arange(12) % 3
    method = make("apl", labels, alpha=str(alpha), beta=str(beta))
    batch = batch_of(method, list(range(B)))
    expected = official_nce_rce(method.backbone(batch.x), batch.y, alpha, beta)
    assert method.loss(batch, 0).loss.item() == pytest.approx(expected.item(), rel=TOL)


# ---- class-balanced loss (richardaecn/class-balanced-loss src/cifar_main.py) ------------------


def official_weights(counts: list[int], beta: float) -> np.ndarray:
    """cifar_main.py:425-430, verbatim."""
    effective_num = 1.0 - np.power(beta, counts)
    weights = (1.0 - beta) / np.array(effective_num)
    return weights / np.sum(weights) * len(counts)


def official_cb_loss(logits, labels, weights, loss_type: str, gamma: float) -> float:
    """cifar_main.py:226-266 and 325-342 in numpy: tf.losses.softmax_cross_entropy's default
    reduction (SUM_BY_NONZERO_WEIGHTS), sigmoid_cross_entropy_with_logits' stable form."""
    z = logits.astype(np.float64)
    one_hot = np.eye(z.shape[1])[labels]
    w = np.tile((weights[None] * one_hot).sum(1, keepdims=True), (1, z.shape[1]))
    if loss_type == "softmax":
        log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
        ce = -(one_hot * log_p).sum(1)
        per_sample_w = w.mean(1)
        return float((per_sample_w * ce).sum() / np.count_nonzero(per_sample_w))
    bce = np.maximum(z, 0) - z * one_hot + np.log1p(np.exp(-np.abs(z)))
    if loss_type == "focal" and gamma:
        bce = np.exp(-gamma * one_hot * z - gamma * np.log1p(np.exp(-1.0 * z))) * bce
    return float((w * bce).sum() / one_hot.sum())


def test_cb_weights_are_the_official_effective_number_weights() -> None:
    labels = torch.tensor([0] * 50 + [1] * 8 + [2] * 2)
    method = make("cb", labels, beta="0.99")
    expected = official_weights([50, 8, 2], 0.99)
    assert np.allclose(method.weights.numpy(), expected, atol=TOL)
    assert method.weights.sum().item() == pytest.approx(3.0, abs=TOL)
    assert torch.equal(make("cb", labels, beta="0").weights, torch.ones(3))


@pytest.mark.parametrize(
    ("loss_type", "gamma"),
    [("softmax", 1.0), ("sigmoid", 1.0), ("focal", 1.0), ("focal", 2.0), ("focal", 0.0)],
)
def test_cb_loss_is_the_official_reduction(loss_type: str, gamma: float) -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(B, 4, generator=gen) * 3
    y = torch.tensor([0, 1, 2, 3, 3, 0])
    weights = torch.tensor([0.2, 1.7, 0.9, 1.2])
    got = class_balanced_loss(logits, y, weights, loss_type, gamma)
    want = official_cb_loss(logits.numpy(), y.numpy(), weights.numpy(), loss_type, gamma)
    assert got.item() == pytest.approx(want, rel=TOL)


def test_cb_softmax_divides_by_the_batch_not_by_the_weights() -> None:
    logits, y = torch.zeros(2, 2), torch.tensor([0, 1])
    weights = torch.tensor([3.0, 1.0])  # CE = ln 2 each: (3 + 1) ln 2 / 2, not ln 2
    loss = class_balanced_loss(logits, y, weights, "softmax", 0.0)
    assert loss.item() == pytest.approx(2 * math.log(2), abs=TOL)


def test_cb_focal_modulator_is_one_minus_p_t_to_the_gamma() -> None:
    logits, y = torch.tensor([[2.0, -1.0]]), torch.tensor([0])
    p = torch.sigmoid(logits)[0]
    p_t = torch.stack([p[0], 1 - p[1]])  # the label's sigmoid, the other's complement
    expected = ((1 - p_t) ** 2 * -torch.log(p_t)).sum()
    loss = class_balanced_loss(logits, y, torch.ones(2), "focal", 2.0)
    assert loss.item() == pytest.approx(expected.item(), rel=TOL)


@pytest.mark.parametrize("loss_type", ["sigmoid", "focal"])
def test_cb_sigmoid_losses_start_every_sigmoid_at_one_over_k(loss_type: str) -> None:
    labels = torch.arange(12) % 4
    method = make("cb", labels, loss_type=loss_type)
    bias = method.backbone.classifier.bias
    assert torch.allclose(torch.sigmoid(bias), torch.full((4,), 0.25), atol=TOL)
    softmax_bias = make("cb", labels).backbone.classifier.bias  # the backbone's own init
    assert not torch.allclose(softmax_bias, bias)


def test_cb_method_loss_uses_the_observed_counts() -> None:
    labels = torch.tensor([0] * 9 + [1] * 2 + [2])
    method = make("cb", labels, beta="0.9")
    batch = batch_of(method, list(range(0, 12, 2)))
    expected = official_cb_loss(
        method.backbone(batch.x).detach().numpy(),
        batch.y.numpy(),
        official_weights([9, 2, 1], 0.9),
        "softmax",
        0.0,
    )
    assert method.loss(batch, 0).loss.item() == pytest.approx(expected, rel=TOL)


# ---- MEK (zyh-uaiaaaa/Mine-Extra-Knowledge code/train_exp.py) -------------------------------

# train_exp.py:81 and 239, and RAF-DB's training counts (code/dataset/list_patition_label.txt)
OFFICIAL_BALANCE = [
    0.95124031,
    4.36690391,
    1.71143654,
    0.25714585,
    0.6191221,
    1.74056738,
    0.48617274,
]
RAF_TRAIN_COUNTS = [1290, 281, 717, 4772, 1982, 705, 2524]


def official_lsr2(x: torch.Tensor, target: torch.Tensor, e: float, balance: list[float]):
    """LSR2.forward (train_exp.py:63-94) with its constant vector as an argument."""
    one_hot = torch.zeros(target.size(0), x.size(1))
    one_hot.scatter_add_(1, target.view(-1, 1), torch.Tensor(target.size(0), 1).fill_(1 - e))
    mask = one_hot == 0
    ex_weight = torch.tensor(balance).expand(one_hot.size(0), -1)
    resize_weight = ex_weight[mask].view(one_hot.size(0), -1)
    resize_weight /= resize_weight.sum(dim=1, keepdim=True)
    one_hot[mask] += (resize_weight * e).view(-1)
    return torch.mean(torch.sum(-F.log_softmax(x, dim=1) * one_hot, dim=1))


def official_flip_loss(hm: torch.Tensor, hm1: torch.Tensor, balance: list[float]):
    """generate_flip_grid, ACLoss and the weighting (train_exp.py:43-61, 234-240)."""
    n, k, h, w = hm.shape
    x_ = torch.arange(w).view(1, -1).expand(h, -1)
    y_ = torch.arange(h).view(-1, 1).expand(-1, w)
    grid = torch.stack([x_, y_], dim=0).float().unsqueeze(0).expand(1, -1, -1, -1).clone()
    grid[:, 0, :, :] = 2 * grid[:, 0, :, :] / (w - 1) - 1
    grid[:, 1, :, :] = 2 * grid[:, 1, :, :] / (h - 1) - 1
    grid[:, 0, :, :] = -grid[:, 0, :, :]
    grid = grid.expand(n, -1, -1, -1).permute(0, 2, 3, 1)
    flipped = F.grid_sample(hm1, grid, mode="bilinear", padding_mode="border", align_corners=True)
    flip_loss = F.mse_loss(hm, flipped, reduction="none").mean(dim=-1).mean(dim=-1)
    return torch.mm(flip_loss, torch.tensor(balance).view(k, 1)).squeeze().mean()


def test_mek_weights_reproduce_the_official_constants_from_raf_db_counts() -> None:
    labels = torch.repeat_interleave(torch.arange(7), torch.tensor(RAF_TRAIN_COUNTS))
    weights = rebalance_weights(labels, 7)
    assert np.allclose(weights.numpy(), OFFICIAL_BALANCE, rtol=1e-7, atol=0)


def test_mek_smooth_labels_are_the_official_lsr2() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, generator=gen)
    y = torch.tensor([0, 1, 3, 6, 3])
    got = rebalanced_smooth_ce(logits, y, torch.tensor(OFFICIAL_BALANCE), 0.3)
    assert got.item() == pytest.approx(
        official_lsr2(logits, y, 0.3, OFFICIAL_BALANCE).item(), rel=TOL
    )


def test_mek_smoothing_spreads_its_mass_in_proportion_to_the_weights() -> None:
    # at equal logits the gradient is 1/K - target: the target is 0.7 on the label and
    # 0.3 split 4:1 between the rarer class 1 and class 2
    logits = torch.zeros(1, 3, requires_grad=True)
    rebalanced_smooth_ce(logits, torch.tensor([0]), torch.tensor([1.0, 4.0, 1.0]), 0.3).backward()
    target = 1 / 3 - logits.grad[0]
    assert torch.allclose(target, torch.tensor([0.7, 0.24, 0.06]), atol=TOL)


def test_mek_consistency_is_the_official_weighted_flip_loss() -> None:
    gen = torch.Generator().manual_seed(2)
    hm, hm1 = torch.randn(3, 7, 7, 7, generator=gen), torch.randn(3, 7, 7, 7, generator=gen)
    got = rebalanced_consistency(hm, hm1, torch.tensor(OFFICIAL_BALANCE))
    expected = official_flip_loss(hm, hm1, OFFICIAL_BALANCE)
    assert got.item() == pytest.approx(expected.item(), rel=TOL)
    assert rebalanced_consistency(hm, hm.flip(-1), torch.ones(7)).item() == 0.0


def test_mek_loss_is_smooth_ce_plus_lam_consistency_of_the_backbone_cams() -> None:
    labels = torch.tensor([0] * 6 + [1] * 3 + [2] * 3)
    method = make("mek", labels, lam="0.5")
    assert method.second_view == "mirror"
    batch = batch_of(method, list(range(0, 12, 2)), mirror=True)
    bb = method.backbone
    weights = [12 / 60, 12 / 30, 12 / 30]  # N / (10 n_c)
    w = bb.classifier.weight
    cam1 = torch.einsum("bchw,kc->bkhw", bb.feature_map(batch.x), w)
    cam2 = torch.einsum("bchw,kc->bkhw", bb.feature_map(batch.x2), w)
    expected = official_lsr2(bb(batch.x), batch.y, 0.3, weights) + 0.5 * official_flip_loss(
        cam1, cam2, weights
    )
    assert method.loss(batch, 0).loss.item() == pytest.approx(expected.item(), rel=TOL)


# ---- defaults --------------------------------------------------------------------------------


def test_apl_cb_mek_have_the_official_defaults() -> None:
    def defaults(name: str) -> dict:
        return dataclasses.asdict(build_hparams(METHODS.get(name), {}))

    assert defaults("apl") == {"alpha": 1.0, "beta": 1.0}
    assert defaults("cb") == {"beta": 0.9999, "loss_type": "softmax", "gamma": 1.0}
    assert defaults("mek") == {"smoothing": 0.3, "lam": 0.1}
