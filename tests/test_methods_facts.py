"""The four methods' loss terms against their official code, one exact test each (tolerance 1e-5).

Each expected number is the official formula worked out by hand on a small input; the
comment above each section cites the formula's file and lines in the official
repository, at the commit that methods/<method>.py names.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fer_bench.methods.eac import class_activation_maps, flip_consistency
from fer_bench.methods.nla import NlaHparams, consistency, naw_weight, rotated_cov, sigma_schedule
from fer_bench.methods.relabel import relabel, relabel_gap
from fer_bench.methods.rul import add_up_loss, mix, uncertainty
from fer_bench.methods.scn import rank_loss

TOL = 1e-5
EPOCHS = 60
LAST = EPOCHS - 1  # the last of 60 epochs, 0-based as NLA's loop passes it (main_rafdb.py:119-120)


def probs_row(*values: float, k: int = 7) -> torch.Tensor:
    row = torch.zeros(1, k, dtype=torch.float64)
    row[0, : len(values)] = torch.tensor(values, dtype=torch.float64)
    return row


# ---- NLA ----------------------------------------------------------------------------------
# jungyu0413/NLA at b86f31f: the weight is the full bivariate normal density of NAW
# (src/loss.py:20-54), true case when the label holds the top probability; covariances
# from std and ratio (src/train.py:28-32; defaults main_rafdb.py:43-53), the true one's
# off-diagonal scaled by the schedule 1 - exp(slope e / E) (src/loss.py:11, 70-74, taken
# at the 0-based epoch, src/train.py:17); J = 0.5 sum over the batch of KL(r || p) +
# KL(r || p'), r = softmax of the mean logits (src/loss.py:61-66). The true case at its
# mean (0.5, 0.5), epoch 0: 1 / (2 pi 0.8) = 0.198944.


def nla_w(probs: torch.Tensor, epoch: int) -> float:
    sched = sigma_schedule(epoch, EPOCHS)
    return naw_weight(probs, torch.tensor([0]), sched, NlaHparams()).item()


def test_nla_schedule_is_zero_first_and_near_one_last() -> None:
    assert sigma_schedule(0, EPOCHS) == 0.0
    assert sigma_schedule(LAST, EPOCHS) == pytest.approx(1 - math.exp(-14.75), abs=1e-12)


def test_nla_covariances_match_the_official_numbers() -> None:
    true_cov = rotated_cov(0.8, 2.0, -1.0, scale=1.0)
    false_cov = rotated_cov(0.91, 6.0, 1.0)
    assert torch.allclose(true_cov, torch.tensor([[0.80, -0.48], [-0.48, 0.80]]), atol=TOL)
    expected = torch.tensor([[0.851103, 0.805097], [0.805097, 0.851103]])
    assert torch.allclose(false_cov, expected, atol=TOL)


@pytest.mark.parametrize(
    ("g", "n", "first", "last"),
    [
        (0.5, 0.5, 0.198944, 0.248680),
        (0.9, 0.05, 0.158612, 0.215530),
        (1.0, 0.0, 0.145550, 0.204558),
    ],
)
def test_nla_true_case_weight_first_and_last_epoch(
    g: float, n: float, first: float, last: float
) -> None:
    probs = probs_row(g, n, 1 - g - n)  # label 0 holds the largest probability
    assert nla_w(probs, 0) == pytest.approx(first, abs=TOL)
    assert nla_w(probs, LAST) == pytest.approx(last, abs=TOL)


@pytest.mark.parametrize(("g", "n", "w"), [(0.3, 0.6, 0.186072), (0.05, 0.9, 0.002424)])
@pytest.mark.parametrize("epoch", [0, 30, LAST])
def test_nla_false_case_weight_is_unscheduled(g: float, n: float, w: float, epoch: int) -> None:
    probs = probs_row(g, n, 1 - g - n)  # label 0 is not the argmax: n is the largest
    assert nla_w(probs, epoch) == pytest.approx(w, abs=TOL)


def test_nla_weight_carries_gradient() -> None:
    logits = torch.randn(4, 7, requires_grad=True)
    w = naw_weight(logits.softmax(1), torch.tensor([0, 1, 2, 3]), 0.5, NlaHparams())
    (grad,) = torch.autograd.grad(w.sum(), logits)
    assert grad.abs().sum() > 0


def test_nla_consistency_values() -> None:
    z = torch.tensor([[2.0, 0, 0, 0, 0, 0, 0]])
    z2 = torch.tensor([[0, 2.0, 0, 0, 0, 0, 0]])
    assert consistency(z, z2, "official").sum().item() == pytest.approx(0.249123, abs=TOL)
    assert consistency(z, z2, "textbook").sum().item() == pytest.approx(0.205395, abs=TOL)


@pytest.mark.parametrize("form", ["official", "textbook"])
def test_nla_consistency_zero_for_equal_and_shifted_logits(form: str) -> None:
    z = torch.randn(5, 7)
    assert consistency(z, z, form).abs().max().item() < TOL
    assert consistency(z, z + 3.0, form).abs().max().item() < TOL


# ---- SCN ----------------------------------------------------------------------------------
# kaiwang960112/Self-Cure-Network at 9f4c3ad: rank loss max(0, margin_1 - (mean of the
# int(B beta) largest alphas - mean of the rest)) (src/train.py:218-237); relabel when the
# top softmax probability of alpha * l beats the label's by more than margin_2
# (train.py:101-102, 250-258).


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [([0.5] * 10, 0.15), ([0.9] * 7 + [0.1] * 3, 0.0), ([0.6] * 7 + [0.5] * 3, 0.05)],
)
def test_scn_rank_loss(alpha: list[float], expected: float) -> None:
    loss = rank_loss(torch.tensor(alpha), beta=0.7, margin=0.15)
    assert loss.item() == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize(("alpha", "gap", "new_label"), [(1.0, 0.4772, 0), (0.5, 0.1971, 1)])
def test_scn_relabel_rule(alpha: float, gap: float, new_label: int) -> None:
    probs = (alpha * torch.tensor([[2.0, 0, 0, 0, 0, 0, 0]])).softmax(1)
    y = torch.tensor([1])
    assert round(relabel_gap(probs, y).item(), 4) == gap
    assert relabel(probs, y, margin=0.2).item() == new_label


# ---- EAC ----------------------------------------------------------------------------------
# zyh-uaiaaaa/Erasing-Attention-Consistency at 61efdfd: maps A_k = sum_c W_k,c F_c from the
# classifier's weight data, so no gradient reaches W (src/model.py:31-39); the logits are
# the pooled F through the same layer (model.py:25-29); the consistency is the mean
# squared error against the mirrored second map (src/loss.py:4-10).


def test_eac_consistency_is_zero_for_mirrored_maps() -> None:
    cam = torch.randn(2, 7, 3, 3)
    assert flip_consistency(cam, cam.flip(-1)).item() == 0.0
    assert flip_consistency(cam, cam).item() > 0  # an unmirrored pair is not consistent


def test_eac_cam_spatial_mean_plus_bias_is_the_logit() -> None:
    fmap = torch.randn(2, 16, 3, 3)
    fc = torch.nn.Linear(16, 7)
    cam = class_activation_maps(fmap, fc.weight)
    assert torch.allclose(cam.mean((2, 3)) + fc.bias, fc(fmap.mean((2, 3))), atol=TOL)


def test_eac_consistency_puts_no_gradient_on_the_classifier() -> None:
    fmap1 = torch.randn(2, 16, 3, 3, requires_grad=True)
    fmap2 = torch.randn(2, 16, 3, 3)
    fc = torch.nn.Linear(16, 7)
    loss = flip_consistency(
        class_activation_maps(fmap1, fc.weight), class_activation_maps(fmap2, fc.weight)
    )
    loss.backward()
    assert fc.weight.grad is None
    assert fmap1.grad is not None and fmap1.grad.abs().sum() > 0


# ---- RUL ----------------------------------------------------------------------------------
# zyh-uaiaaaa/Relative-Uncertainty-Learning at 63b73f2: u = mean of exp(log-variance)
# (src/rul.py:46); lambda_i = u_i / (u_i + u_pi(i)) and the mixed feature
# (src/utils.py:30-40); the add-up loss 0.5 CE(o, y) + 0.5 CE(o, y_pi) (utils.py:43-44).


def test_rul_uncertainty_is_the_mean_of_exponentials() -> None:
    assert uncertainty(torch.tensor([[0.0, math.log(3)]])).item() == pytest.approx(2.0, abs=TOL)


def test_rul_lambda() -> None:
    mu = torch.randn(2, 4)
    _, lam = mix(mu, torch.tensor([3.0, 1.0]), torch.tensor([1, 0]))
    assert lam.tolist() == pytest.approx([0.75, 0.25], abs=TOL)


def test_rul_identity_permutation_gives_mu() -> None:
    mu = torch.randn(5, 4)
    z, _ = mix(mu, torch.rand(5) + 0.1, torch.arange(5))
    assert torch.allclose(z, mu, atol=TOL)


def test_rul_same_labels_give_plain_ce() -> None:
    logits, y = torch.randn(6, 7), torch.tensor([2, 2, 2, 5, 5, 5])
    perm = torch.tensor([1, 2, 0, 4, 5, 3])  # pairs within equal labels
    assert add_up_loss(logits, y, perm).item() == pytest.approx(
        F.cross_entropy(logits, y).item(), abs=TOL
    )


def test_nla_weight_keeps_float32_under_bf16_autocast() -> None:
    probs = torch.rand(8, 7).softmax(1)
    y = torch.arange(8) % 7
    exact = naw_weight(probs, y, 0.7, NlaHparams())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = naw_weight(probs, y, 0.7, NlaHparams())
    assert mixed.dtype == torch.float32
    assert torch.allclose(mixed, exact, atol=1e-7)
