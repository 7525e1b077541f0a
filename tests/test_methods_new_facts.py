"""Checkable facts of sce, ls, bsoftmax, ldam and elr, each an exact test (tolerance 1e-5)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from fer_bench.backbones import create_backbone
from fer_bench.config import RunConfig
from fer_bench.methods.base import Batch, Method, TrainInfo, build_hparams
from fer_bench.methods.elr import elr_regulariser
from fer_bench.methods.la import logit_adjusted_ce
from fer_bench.methods.ldam import class_balanced_weights
from fer_bench.methods.sce import reverse_ce
from fer_bench.registry import METHODS

TOL = 1e-5
K, B = 3, 4
A = math.log(1e-4)  # SCE's log of a zero one-hot entry


def make(name: str, labels: torch.Tensor, epochs: int = 10, **overrides: str) -> Method:
    """The method on a small untrained backbone, in eval mode (deterministic forwards)."""
    torch.manual_seed(0)
    cls = METHODS.get(name)
    k = int(labels.max()) + 1
    backbone = create_backbone(RunConfig().backbone, num_classes=k, in_chans=1)
    info = TrainInfo(k, len(labels), labels, epochs=epochs, steps_per_epoch=1, batch_size=B)
    return cls(backbone, info, build_hparams(cls, overrides)).eval()


def batch_of(method: Method, index: list[int]) -> Batch:
    index_t = torch.tensor(index)
    x = torch.randn(len(index), 1, 16, 16, generator=torch.Generator().manual_seed(1))
    return Batch(x=x, y=method.info.observed_labels[index_t], index=index_t)


# ---- SCE ----------------------------------------------------------------------------------


def test_sce_rce_is_minus_a_times_the_mass_off_the_label() -> None:
    # p = (3/5, 1/5, 1/5): RCE = -A (1 - 3/5), no clamp active.
    logits = torch.tensor([[math.log(3.0), 0.0, 0.0]])
    assert reverse_ce(logits, torch.tensor([0])).item() == pytest.approx(-A * 0.4, abs=TOL)


def test_sce_rce_is_symmetric_its_sum_over_labels_is_constant() -> None:
    # The paper's noise-tolerance condition: sum_y RCE(z, y) = -A (K - 1) for every z.
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    total = sum(reverse_ce(logits, torch.full((5,), y)) for y in range(7))
    assert torch.allclose(total, torch.full((5,), -A * 6), atol=1e-4)


def test_sce_loss_is_alpha_ce_plus_beta_rce() -> None:
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    method = make("sce", labels)
    batch = batch_of(method, [0, 1, 2, 3])
    logits = method.backbone(batch.x)
    p_y = logits.softmax(1).gather(1, batch.y[:, None]).squeeze(1)
    want = 0.1 * F.cross_entropy(logits, batch.y) + (-A * (1 - p_y)).mean()
    assert method.loss(batch, 0).loss.item() == pytest.approx(want.item(), abs=TOL)
    only_ce = make("sce", labels, alpha="1", beta="0").loss(batch, 0).loss
    assert only_ce.item() == pytest.approx(F.cross_entropy(logits, batch.y).item(), abs=TOL)


# ---- label smoothing ----------------------------------------------------------------------


def test_ls_loss_is_ce_against_the_smoothed_target() -> None:
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    method = make("ls", labels, eps="0.3")
    batch = batch_of(method, [0, 1, 2, 3])
    log_p = method.backbone(batch.x).log_softmax(1)
    target = 0.7 * F.one_hot(batch.y, K).float() + 0.3 / K
    want = -(target * log_p).sum(1).mean()
    assert method.loss(batch, 0).loss.item() == pytest.approx(want.item(), abs=TOL)
    plain = make("ls", labels, eps="0").loss(batch, 0).loss
    assert plain.item() == pytest.approx(F.nll_loss(log_p, batch.y).item(), abs=TOL)


def test_ls_is_minimised_at_the_smoothed_target() -> None:
    # d loss / d z = p - q': zero where softmax(z) = q' = (0.9 + 0.1/3, 0.1/3, 0.1/3).
    target = torch.tensor([[0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3]], dtype=torch.float64)
    logits = target.log().requires_grad_()
    loss = F.cross_entropy(logits, torch.tensor([0]), label_smoothing=0.1)
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad.abs().max().item() < 1e-12


# ---- Balanced Softmax ---------------------------------------------------------------------

IMBALANCED = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 2])  # counts 6, 3, 1


def test_bsoftmax_shifts_the_logits_by_the_log_observed_counts() -> None:
    method = make("bsoftmax", IMBALANCED)
    assert torch.allclose(method.adjust, torch.tensor([6.0, 3.0, 1.0]).log(), atol=TOL)
    batch = batch_of(method, [0, 6, 9, 1])
    logits = method.backbone(batch.x)
    shifted = logits + torch.tensor([math.log(6), math.log(3), 0.0])
    want = F.cross_entropy(shifted, batch.y)
    assert method.loss(batch, 0).loss.item() == pytest.approx(want.item(), abs=TOL)
    assert torch.equal(method.predict(batch.x), logits)  # raw logits at evaluation


def test_bsoftmax_equals_logit_adjustment_at_tau_one() -> None:
    batch = batch_of(make("ce", IMBALANCED), [0, 6, 9, 1])
    balanced = make("bsoftmax", IMBALANCED).loss(batch, 0).loss
    adjusted = make("la", IMBALANCED, tau="1").loss(batch, 0).loss
    assert balanced.item() == pytest.approx(adjusted.item(), abs=TOL)


def test_bsoftmax_class_absent_from_observed_labels_gets_no_gradient() -> None:
    labels = torch.tensor([0, 0, 1, 1, 3])  # class 2 never observed: log 0 = -inf
    method = make("bsoftmax", labels)
    assert method.adjust[2].item() == -math.inf
    logits = torch.randn(5, 4, requires_grad=True)
    loss = logit_adjusted_ce(logits, labels, method.adjust)  # what BalancedSoftmax.loss calls
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert torch.equal(grad[:, 2], torch.zeros(5))


# ---- LDAM-DRW -----------------------------------------------------------------------------


def test_ldam_margins_follow_the_quarter_power_of_observed_counts() -> None:
    method = make("ldam", IMBALANCED)  # counts 6, 3, 1: the rarest class gets max_m
    want = 0.5 * torch.tensor([6.0, 3.0, 1.0]).pow(-0.25)
    assert torch.allclose(method.margins, want, atol=TOL)


def test_ldam_drw_weights_are_class_balanced_and_sum_to_k() -> None:
    counts = torch.tensor([6.0, 3.0, 1.0], dtype=torch.float64)
    raw = (1 - 0.9999) / (1 - 0.9999**counts)
    method = make("ldam", IMBALANCED)
    assert torch.allclose(method.drw_weights.double(), raw / raw.sum() * 3, atol=TOL)
    assert method.drw_weights.sum().item() == pytest.approx(3.0, abs=TOL)
    assert torch.equal(class_balanced_weights(counts, 0.0), torch.ones(3))


def test_ldam_loss_value_before_and_after_the_drw_epoch() -> None:
    method = make("ldam", IMBALANCED, epochs=10)  # DRW from 0-based epoch round(0.8 * 10) = 8
    batch = batch_of(method, [0, 6, 9, 1])
    cos = method.head(method.backbone.pool(method.backbone.feature_map(batch.x)))
    assert cos.abs().max().item() <= 1 + TOL
    shifted = cos.clone()
    shifted[torch.arange(4), batch.y] -= method.margins[batch.y]
    before = F.cross_entropy(30 * shifted, batch.y)
    w = method.drw_weights[batch.y]
    per_sample = F.cross_entropy(30 * shifted, batch.y, reduction="none")
    after = (w * per_sample).sum() / w.sum()
    assert method.loss(batch, 7).loss.item() == pytest.approx(before.item(), abs=1e-4)
    assert method.loss(batch, 8).loss.item() == pytest.approx(after.item(), abs=1e-4)
    assert torch.allclose(method.predict(batch.x), 30 * cos, atol=1e-4)


def test_ldam_is_scaled_ce_at_zero_margin_without_drw() -> None:
    method = make("ldam", IMBALANCED, max_m="0", drw_start="1", normed="false", s="1")
    batch = batch_of(method, [0, 6, 9, 1])
    want = F.cross_entropy(method.backbone(batch.x), batch.y)
    assert method.loss(batch, 9).loss.item() == pytest.approx(want.item(), abs=TOL)


def test_ldam_cosine_head_replaces_the_backbone_classifier_in_training() -> None:
    normed = make("ldam", IMBALANCED)
    trained = {id(p) for g in normed.param_groups(1e-3) for p in g["params"]}
    assert not trained & {id(p) for p in normed.backbone.classifier.parameters()}
    assert id(normed.head.weight) in trained
    plain = make("ldam", IMBALANCED, normed="false")
    assert plain.head is None
    assert len(plain.param_groups(1e-3)[0]["params"]) == len(list(plain.parameters()))


# ---- ELR ----------------------------------------------------------------------------------


def clamped_probs(method: Method, batch: Batch) -> torch.Tensor:
    probs = method.backbone(batch.x).softmax(1).clamp(1e-4, 1 - 1e-4)
    return probs / probs.sum(1, keepdim=True)


def test_elr_first_step_value_and_target() -> None:
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    method = make("elr", labels)
    batch = batch_of(method, [4, 0, 2, 3])
    logits = method.backbone(batch.x)
    p = logits.softmax(1).clamp(1e-4, 1 - 1e-4)
    target = 0.3 * p / p.sum(1, keepdim=True)  # from zero: (1 - beta) p
    want = F.cross_entropy(logits, batch.y) + 3 * torch.log(1 - (target * p).sum(1)).mean()
    out = method.loss(batch, 0)
    assert out.loss.item() == pytest.approx(want.item(), abs=TOL)
    assert torch.allclose(method.target[batch.index], target, atol=1e-6)
    assert torch.equal(method.target[[1, 5]], torch.zeros(2, K))  # unvisited samples
    assert torch.allclose(out.scores, target.gather(1, batch.y[:, None]).squeeze(1), atol=1e-6)


def test_elr_target_is_a_momentum_average_across_steps() -> None:
    method = make("elr", torch.tensor([0, 1, 2, 0, 1, 2]), beta="0.6")
    batch = batch_of(method, [0, 1, 2, 3])
    p = clamped_probs(method, batch)  # eval mode, no update between: the same p both steps
    method.loss(batch, 0)
    method.loss(batch, 0)
    assert torch.allclose(method.target[batch.index], 0.6 * 0.4 * p + 0.4 * p, atol=1e-6)


def test_elr_is_ce_at_lam_zero() -> None:
    method = make("elr", torch.tensor([0, 1, 2, 0, 1, 2]), lam="0")
    batch = batch_of(method, [0, 1, 2, 3])
    want = F.cross_entropy(method.backbone(batch.x), batch.y)
    assert method.loss(batch, 0).loss.item() == pytest.approx(want.item(), abs=TOL)


def test_elr_gradient_pulls_the_prediction_towards_the_target() -> None:
    # d/dz_k log(1 - <t, p>) = -p_k (t_k - <t, p>) / (1 - <t, p>): descent raises the
    # logits of the classes the target holds above the current agreement.
    logits = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0.1, 0.8, 0.1]], dtype=torch.float64)
    (grad,) = torch.autograd.grad(elr_regulariser(target, logits.softmax(1)), logits)
    p = logits.detach().softmax(1)
    agree = (target * p).sum()
    assert torch.allclose(grad, -p * (target - agree) / (1 - agree), atol=1e-12)
    assert grad[0, 1] < 0 < grad[0, 0]


def test_elr_targets_are_saved_and_restored_with_the_state() -> None:
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    method = make("elr", labels)
    batch = batch_of(method, [0, 1, 2, 3])
    method.loss(batch, 0)
    state = method.state_dict()
    assert torch.equal(state["target"], method.target)
    restored = make("elr", labels)
    restored.load_state_dict(state)
    assert torch.equal(restored.target, method.target)
    assert restored.loss(batch, 1).loss.item() == pytest.approx(method.loss(batch, 1).loss.item())


# ---- defaults and refused values ------------------------------------------------------------


def test_new_methods_have_the_official_defaults() -> None:
    def defaults(name: str) -> dict:
        return dataclasses.asdict(build_hparams(METHODS.get(name), {}))

    assert defaults("sce") == {"alpha": 0.1, "beta": 1.0, "log_floor": 1e-4}
    assert defaults("ls") == {"eps": 0.1}
    assert defaults("bsoftmax") == {}
    assert defaults("ldam") == {
        "max_m": 0.5,
        "s": 30.0,
        "drw_start": 0.8,
        "drw_beta": 0.9999,
        "normed": True,
    }
    assert defaults("elr") == {"beta": 0.7, "lam": 3.0}
