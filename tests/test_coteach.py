"""Co-teaching's checkable facts, against bhanML/Co-teaching at 7c7fbe2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_bench.backbones import create_backbone
from fer_bench.config import RunConfig
from fer_bench.methods.base import Batch, TrainInfo, build_hparams
from fer_bench.methods.coteach import (
    CoteachHparams,
    CoTeaching,
    coteaching_losses,
    forget_rate_at,
    small_loss,
)


def official_rate_schedule(tau: float, num_gradual: int, exponent: float, n: int) -> np.ndarray:
    """main.py:134-135, verbatim."""
    rate_schedule = np.ones(n) * tau
    rate_schedule[:num_gradual] = np.linspace(0, tau**exponent, num_gradual)
    return rate_schedule


@pytest.mark.parametrize(("tau", "tk", "c"), [(0.2, 10, 1.0), (0.45, 5, 2.0), (0.3, 1, 0.5)])
def test_forget_rate_follows_the_official_schedule_shifted_by_its_untrained_epoch_0(tau, tk, c):
    hp = CoteachHparams(forget_rate=tau, num_gradual=tk, exponent=c)
    official = official_rate_schedule(tau, tk, c, 30)
    ours = [forget_rate_at(e, hp) for e in range(29)]
    np.testing.assert_allclose(ours, official[1:], rtol=0, atol=1e-12)


def test_small_loss_keeps_the_remembered_share_and_at_least_one():
    losses = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    assert small_loss(losses, 0.2).tolist() == [9, 1, 5, 3, 7, 2, 8, 4]  # int(0.8 * 10) = 8
    assert small_loss(losses, 0.25).tolist() == [9, 1, 5, 3, 7, 2, 8]  # int(7.5) = 7
    assert small_loss(losses, 0.99).tolist() == [9]


def test_each_network_learns_from_the_samples_its_peer_keeps():
    y = torch.tensor([0, 1, 2, 0])
    logits_1 = torch.tensor([[9.0, 0, 0], [0, 9, 0], [9, 0, 0], [0, 0, 9]], requires_grad=True)
    logits_2 = torch.tensor([[0.0, 0, 9], [0, 9, 0], [0, 0, 9], [9, 0, 0]], requires_grad=True)
    # network 1 finds samples 0, 1 easy; network 2 finds 1, 2, 3 easy (kept: int(0.5*4) = 2)
    loss_1, loss_2, per_sample = coteaching_losses(logits_1, logits_2, y, 0.5, False)
    (loss_1 + loss_2).backward()
    kept_by_2 = small_loss(F.cross_entropy(logits_2, y, reduction="none"), 0.5)
    assert set(kept_by_2.tolist()) <= {1, 2, 3}
    touched_1 = logits_1.grad.abs().sum(1) > 0
    touched_2 = logits_2.grad.abs().sum(1) > 0
    assert touched_1.nonzero().flatten().tolist() == sorted(kept_by_2.tolist())
    assert touched_2.nonzero().flatten().tolist() == [0, 1]  # what network 1 kept
    assert torch.allclose(loss_2, F.cross_entropy(logits_2[[0, 1]], y[[0, 1]]))
    assert torch.equal(per_sample, F.cross_entropy(logits_1, y, reduction="none").detach())


def test_official_loss_scale_divides_the_mean_by_the_kept_count():
    gen = torch.Generator().manual_seed(0)
    logits_1, logits_2 = torch.randn(2, 10, 7, generator=gen)
    y = torch.randint(0, 7, (10,), generator=gen)
    plain = coteaching_losses(logits_1, logits_2, y, 0.2, False)
    official = coteaching_losses(logits_1, logits_2, y, 0.2, True)
    assert torch.allclose(official[0], plain[0] / 8) and torch.allclose(official[1], plain[1] / 8)


def test_two_independent_networks_and_small_loss_scores():
    torch.manual_seed(0)

    def backbone():
        return create_backbone(RunConfig().backbone, num_classes=7, in_chans=1)

    labels = torch.arange(32) % 7
    info = TrainInfo(7, 32, labels, 2, 2, 16, new_backbone=backbone)
    method = CoTeaching(backbone(), info, build_hparams(CoTeaching, {"forget_rate": "0.25"}))
    first = next(method.backbone.parameters())
    assert first.shape == next(method.peer.parameters()).shape
    assert not torch.equal(first, next(method.peer.parameters()))
    x = torch.randn(16, 1, 48, 48)
    out = method.loss(Batch(x=x, y=labels[:16], index=torch.arange(16)), epoch=20)
    assert out.logs["forget_rate"] == 0.25
    expected = F.cross_entropy(method.backbone(x).float(), labels[:16], reduction="none")
    assert torch.allclose(out.scores, -expected.detach(), atol=1e-5)
    with pytest.raises(ValueError, match="forget_rate must be in"):
        CoteachHparams(forget_rate=1.0)
