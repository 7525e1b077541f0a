"""Co-teaching+ (xingruiyu/coteaching_plus at a68ed61) and JoCoR (hongxin001/JoCoR at
86db359): their losses against the official code, written out here on the CPU."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_bench.backbones import create_backbone
from fer_bench.config import RunConfig
from fer_bench.methods.base import Batch, Method, TrainInfo, build_hparams
from fer_bench.methods.coteach import coteaching_losses, forget_rate_at, small_loss
from fer_bench.methods.coteach_plus import CoteachPlusHparams, coteaching_plus_losses
from fer_bench.methods.jocor import JocorHparams, joint_loss, kl_per_sample
from fer_bench.registry import METHODS

TOL = 1e-5
K, N, B = 4, 32, 10


def official_loss_coteaching(y_1, y_2, t, forget_rate):
    """coteaching_plus loss.py:10-35 without the device moves and the purity diagnostics."""
    loss_1 = F.cross_entropy(y_1, t, reduction="none")
    ind_1_sorted = np.argsort(loss_1.data.numpy(), kind="stable")
    loss_2 = F.cross_entropy(y_2, t, reduction="none")
    ind_2_sorted = np.argsort(loss_2.data.numpy(), kind="stable")
    num_remember = int((1 - forget_rate) * len(ind_1_sorted))
    ind_1_update, ind_2_update = ind_1_sorted[:num_remember], ind_2_sorted[:num_remember]
    if len(ind_1_update) == 0:
        ind_1_update, ind_2_update = ind_1_sorted, ind_2_sorted
        num_remember = ind_1_update.shape[0]
    loss_1_update = F.cross_entropy(y_1[ind_2_update], t[ind_2_update])
    loss_2_update = F.cross_entropy(y_2[ind_1_update], t[ind_1_update])
    return torch.sum(loss_1_update) / num_remember, torch.sum(loss_2_update) / num_remember


def official_loss_coteaching_plus(logits, logits2, labels, forget_rate, step):
    """loss.py:37-82 (the same, without the dataset-index bookkeeping of loss.py:53-58)."""
    outputs, outputs2 = F.softmax(logits, dim=1), F.softmax(logits2, dim=1)
    pred1, pred2 = logits.data.argmax(1).numpy(), logits2.data.argmax(1).numpy()
    disagree_id = [idx for idx, p1 in enumerate(pred1) if p1 != pred2[idx]]
    logical_disagree_id = pred1 != pred2
    update_step = torch.from_numpy(
        np.logical_or(logical_disagree_id, step < 5000).astype(np.float32)
    )
    if len(disagree_id) > 0:
        return official_loss_coteaching(
            outputs[disagree_id], outputs2[disagree_id], labels[disagree_id], forget_rate
        )
    cross_entropy_1 = F.cross_entropy(outputs, labels)
    cross_entropy_2 = F.cross_entropy(outputs2, labels)
    loss_1 = torch.sum(update_step * cross_entropy_1) / labels.size()[0]
    loss_2 = torch.sum(update_step * cross_entropy_2) / labels.size()[0]
    return loss_1, loss_2


def logits_pair(seed: int, agree: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(B, K, generator=gen) * 3
    z2 = z1 + 0.01 if agree else torch.randn(B, K, generator=gen) * 3
    return z1, z2, torch.randint(0, K, (B,), generator=gen)


def make(name: str, epochs: int = 20, **overrides: str) -> Method:
    torch.manual_seed(0)
    cls = METHODS.get(name)

    def backbone():
        return create_backbone(RunConfig().backbone, num_classes=K, in_chans=1)

    labels = torch.arange(N) % K
    info = TrainInfo(K, N, labels, epochs, N // B, B, new_backbone=backbone)
    return cls(backbone(), info, build_hparams(cls, overrides)).eval()


def batch_for(method: Method) -> Batch:
    x = torch.randn(B, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    index = torch.arange(B)
    return Batch(x=x, y=method.info.observed_labels[index], index=index)


# ---- Co-teaching+ -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tau", [0.0, 0.2, 0.5, 0.9])
def test_coteach_plus_loss_is_the_official_one(seed: int, tau: float) -> None:
    z1, z2, y = logits_pair(seed)
    hp = CoteachPlusHparams()
    got = coteaching_plus_losses(z1, z2, y, tau, hp, full_batch=True)
    want = official_loss_coteaching_plus(z1, z2, y, tau, step=10**6)
    assert torch.allclose(torch.stack(got), torch.stack(want), rtol=TOL)


def test_coteach_plus_keeps_all_disagreements_when_the_share_rounds_to_none() -> None:
    # one disagreement, tau 0.5: int(0.5 * 1) = 0, so the official code keeps it (not none)
    z1 = torch.tensor([[3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    z2 = torch.tensor([[3.0, 0.0], [0.0, 3.0], [0.0, 3.0]])
    y = torch.tensor([0, 0, 1])
    loss_1, loss_2 = coteaching_plus_losses(z1, z2, y, 0.5, CoteachPlusHparams(), True)
    want = official_loss_coteaching_plus(z1, z2, y, 0.5, step=10**6)
    assert loss_1.item() == pytest.approx(want[0].item(), rel=TOL) and loss_1.item() > 0
    assert loss_2.item() == pytest.approx(want[1].item(), rel=TOL)


@pytest.mark.parametrize("full_batch", [True, False])
def test_coteach_plus_without_disagreement_trains_on_the_batch_then_on_nothing(full_batch) -> None:
    z1, z2, y = logits_pair(0, agree=True)
    z1.requires_grad_(True)
    loss_1, loss_2 = coteaching_plus_losses(z1, z2, y, 0.2, CoteachPlusHparams(), full_batch)
    want = official_loss_coteaching_plus(z1, z2, y, 0.2, step=4999 if full_batch else 5000)
    assert loss_1.item() == pytest.approx(want[0].item(), abs=TOL)
    assert (loss_1.item() > 0) == full_batch
    loss_1.backward()
    assert torch.isfinite(z1.grad).all() and (z1.grad.abs().sum() > 0) == full_batch


def test_coteach_plus_paper_reading_takes_the_logits() -> None:
    z1, z2, y = logits_pair(4)
    hp = CoteachPlusHparams(double_softmax=False)
    got = coteaching_plus_losses(z1, z2, y, 0.2, hp, True)
    disagree = z1.argmax(1) != z2.argmax(1)
    want = coteaching_losses(z1[disagree], z2[disagree], y[disagree], 0.2, True)[:2]
    assert torch.allclose(torch.stack(got), torch.stack(want), rtol=TOL)


def test_coteach_plus_is_coteaching_before_the_init_epoch_and_counts_official_steps() -> None:
    method = make("coteach_plus", epochs=50)  # init epoch round(0.1 * 50) = 5: epochs 0-3
    assert method.init_epoch == 5
    batch = batch_for(method)
    z1, z2 = method.backbone(batch.x), method.peer(batch.x)
    for epoch in (0, 3):
        tau = forget_rate_at(epoch, method.hparams)
        want = sum(coteaching_losses(z1, z2, batch.y, tau, True)[:2])
        assert method.loss(batch, epoch).loss.item() == pytest.approx(want.item(), rel=TOL)
    tau = forget_rate_at(4, method.hparams)
    want = sum(coteaching_plus_losses(z1, z2, batch.y, tau, method.hparams, True))
    assert method.loss(batch, 4).loss.item() == pytest.approx(want.item(), rel=TOL)
    method.on_epoch_start(9, None)
    for _ in range(3):
        method.after_step(batch, 9)
    assert method.batch_in_epoch == 3  # the official step is then 10 * 3
    method.on_epoch_start(10, None)
    assert method.batch_in_epoch == 0


# ---- JoCoR ------------------------------------------------------------------------------------


def official_loss_jocor(y_1, y_2, t, forget_rate, co_lambda):
    """JoCoR algorithm/loss.py:8-40 without the purity diagnostics."""

    def kl_loss_compute(pred, soft_targets):
        kl = F.kl_div(F.log_softmax(pred, dim=1), F.softmax(soft_targets, dim=1), reduction="none")
        return torch.sum(kl, 1)

    loss_pick_1 = F.cross_entropy(y_1, t, reduction="none") * (1 - co_lambda)
    loss_pick_2 = F.cross_entropy(y_2, t, reduction="none") * (1 - co_lambda)
    loss_pick = (
        loss_pick_1
        + loss_pick_2
        + co_lambda * kl_loss_compute(y_1, y_2)
        + co_lambda * kl_loss_compute(y_2, y_1)
    )
    ind_sorted = np.argsort(loss_pick.data.numpy(), kind="stable")
    num_remember = int((1 - forget_rate) * len(ind_sorted))
    return torch.mean(loss_pick[ind_sorted[:num_remember]])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("tau", "co_lambda"), [(0.2, 0.9), (0.5, 0.1), (0.0, 0.65), (0.8, 0.5)])
def test_jocor_joint_small_loss_is_the_official_one(seed: int, tau: float, co_lambda: float):
    z1, z2, y = logits_pair(seed)
    joint = joint_loss(z1, z2, y, co_lambda)
    ours = joint[small_loss(joint, tau)].mean()
    assert ours.item() == pytest.approx(
        official_loss_jocor(z1, z2, y, tau, co_lambda).item(), rel=TOL
    )


def test_jocor_keeps_one_sample_where_the_official_mean_of_none_is_nan() -> None:
    z1, z2, y = logits_pair(0)
    joint = joint_loss(z1, z2, y, 0.5)
    assert torch.isnan(official_loss_jocor(z1, z2, y, 0.9, 0.5))  # int(0.1 * 10) = 0
    assert joint[small_loss(joint, 0.9)].mean().item() == pytest.approx(joint.min().item())


def test_jocor_method_loss_is_the_official_one_at_the_full_forget_rate() -> None:
    method = make("jocor", co_lambda="0.65")
    batch = batch_for(method)
    z1, z2 = method.backbone(batch.x), method.peer(batch.x)
    want = official_loss_jocor(z1, z2, batch.y, 0.2, 0.65)  # epoch 9: the ramp is over
    assert method.loss(batch, 9).loss.item() == pytest.approx(want.item(), rel=TOL)


def test_jocor_co_regularisation_is_symmetric_and_trains_both_networks() -> None:
    z1, z2, y = logits_pair(1)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    assert torch.allclose(kl_per_sample(z1, z1), torch.zeros(B), atol=1e-6)
    pure_kl = joint_loss(z1, z2, y, 1.0)  # lambda 1: the co-regularisation alone
    assert torch.allclose(pure_kl, joint_loss(z2, z1, y, 1.0))
    pure_kl.sum().backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0


def test_jocor_schedule_is_the_official_rate_schedule() -> None:
    hp = JocorHparams(forget_rate=0.3, num_gradual=5, exponent=2.0)
    official = np.ones(30) * 0.3  # algorithm/jocor.py:41-42
    official[:5] = np.linspace(0, 0.3**2, 5)
    ours = [forget_rate_at(e, hp) for e in range(29)]  # 0-based e trains official epoch e + 1
    np.testing.assert_allclose(ours, official[1:], rtol=0, atol=1e-12)


def test_coteach_plus_and_jocor_defaults() -> None:
    def defaults(name: str) -> dict:
        return dataclasses.asdict(build_hparams(METHODS.get(name), {}))

    assert defaults("coteach_plus") == {
        "forget_rate": 0.2,
        "num_gradual": 10,
        "exponent": 1.0,
        "divide_by_kept": True,
        "init_epoch_fraction": 0.1,
        "double_softmax": True,
        "full_batch_steps": 5000,
    }
    assert defaults("jocor") == {
        "forget_rate": 0.2,
        "num_gradual": 10,
        "exponent": 1.0,
        "co_lambda": 0.9,
    }
