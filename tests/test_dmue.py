"""DMUE's checkable facts, against JDAI-CV/FaceX-Zoo at 16b793a (addition_module/DMUE)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from resume_helpers import crash_after_save, rows_without_times, same_method_state

import fer_bench.training.engine as engine
from fer_bench.backbones import create_backbone
from fer_bench.config import RunConfig
from fer_bench.methods.base import Batch, TrainInfo, build_hparams
from fer_bench.methods.dmue import (
    DMUE,
    DmueHparams,
    aux_loss,
    class_similarity,
    latent_distribution,
    pairwise_loss,
    ramp_down,
    ramp_up,
)

K = 3


def make(labels: torch.Tensor, **overrides: str) -> DMUE:
    torch.manual_seed(0)
    backbone = create_backbone(RunConfig().backbone, num_classes=K, in_chans=1)
    info = TrainInfo(K, len(labels), labels, epochs=4, steps_per_epoch=1, batch_size=len(labels))
    return DMUE(backbone, info, build_hparams(DMUE, overrides))


def test_defaults_are_the_official_config():
    assert dataclasses.asdict(DmueHparams()) == {  # config.py:27-29, train.py:55-57
        "w": 0.5,
        "T": 1.2,
        "gamma": 1000.0,
        "ramp_a": 6,
        "train_uncertainty_head": False,
    }


def test_ramps_follow_the_official_formulas():
    assert ramp_up(0, 6) == pytest.approx(math.exp(-5))
    assert ramp_up(3, 6) == pytest.approx(math.exp(-1.25))
    assert ramp_up(6, 6) == ramp_up(7, 6) == 1.0
    assert ramp_down(5, 6) == ramp_down(6, 6) == 1.0
    assert ramp_down(12, 6) == pytest.approx(math.exp(-0.25))


def test_branch_c_learns_only_from_samples_not_labelled_c_with_classes_shifted():
    y = torch.tensor([0, 1, 2, 0])
    logits = torch.randn(K, 4, K - 1, generator=torch.Generator().manual_seed(0))
    logits.requires_grad_(True)
    loss = aux_loss(logits, y)
    loss.backward()
    touched = (logits.grad.abs().sum(2) > 0).tolist()
    assert touched == [
        [False, True, True, False],
        [True, False, True, True],
        [True, True, False, True],
    ]
    expected = (
        F.cross_entropy(logits[0, [1, 2]], torch.tensor([0, 1]))  # classes 1, 2 -> 0, 1
        + F.cross_entropy(logits[1, [0, 2, 3]], torch.tensor([0, 1, 0]))  # 0, 2 -> 0, 1
        + F.cross_entropy(logits[2, [0, 1, 3]], torch.tensor([0, 1, 0]))  # 0, 1 stay
    ) / K
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_branch_without_samples_gives_a_zero_term_that_keeps_the_graph():
    logits = torch.randn(K, 2, K - 1, requires_grad=True)
    loss = aux_loss(logits, torch.tensor([1, 1]))
    assert loss.requires_grad
    expected = (
        F.cross_entropy(logits[0], torch.zeros(2).long())
        + F.cross_entropy(logits[2], torch.ones(2).long())
    ) / K
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_latent_distribution_is_the_sharpened_softmax_of_the_branch_blind_to_the_label():
    y = torch.tensor([0, 2])
    logits = torch.zeros(K, 2, K - 1)
    logits[0, 0] = torch.tensor([0.0, math.log(3)])  # branch 0 on sample 0: [0.25, 0.75]
    logits[1] = 9.0  # branch 1 sees neither sample's label class: unused
    sharp = latent_distribution(logits, y, T=0.5)  # p^2 renormalised: 1/16, 9/16 -> 0.1, 0.9
    torch.testing.assert_close(sharp, torch.tensor([[0.0, 0.1, 0.9], [0.5, 0.5, 0.0]]))
    p = torch.tensor([0.25, 0.75]) ** (1 / 1.2)  # train.py:99-101 at the default T
    official = latent_distribution(logits, y, T=1.2)
    torch.testing.assert_close(official[0], torch.cat([torch.zeros(1), p / p.sum()]))


def test_class_similarity_is_the_scaled_mean_cosine_per_class_absent_classes_zero():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 1.0]])
    onehot = F.one_hot(torch.tensor([0, 0, 1, 2]), 4).float()  # class 3 absent
    # row 0: cosines [1, 0, 1, 0]: class means 0.5, 1, 0 -> scaled 0.5, 1, 0
    expected = torch.tensor([[0.5, 1, 0, 0], [0.5, 0, 1, 0], [0.5, 1, 0, 0], [0.5, 0, 1, 0]])
    torch.testing.assert_close(class_similarity(feats, onehot), expected)
    flat = class_similarity(feats, F.one_hot(torch.zeros(4).long(), 4).float())
    assert torch.equal(flat, torch.zeros(4, 4))  # one class present: no NaN


def test_pairwise_loss_compares_row_normalised_gram_matrices_without_the_branch_class():
    y = torch.tensor([0, 1, 1])
    feats = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # rows 1, 2: I
    # branch logits over K - 1 = 2 classes; branch 2 (no sample labelled 2) keeps all rows
    aux = torch.stack(
        [
            torch.tensor([[5.0, 5.0], [1.0, 0.0], [1.0, 0.0]]),
            torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]]),
            torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
        ]
    )
    # branch 0 (rows 1, 2): all-ones Gram -> rows (a, a), a = 1/sqrt 2, vs identity: 2 (1 - a)^2
    # + 2 a^2 = 4 - 4a over 4 entries; branch 1 (row 0): 1x1 matrices, both 1; branch 2: the
    # target's whole Gram [[1, 1, 0], [1, 1, 0], [0, 0, 1]] on both sides
    a = 1 / math.sqrt(2)
    expected = ((4 - 4 * a) / 4 + 0 + 0) / 3
    assert pairwise_loss(aux, feats, y).item() == pytest.approx(expected, rel=1e-6)


def test_pairwise_loss_matches_numpy_by_hand():
    gen = torch.Generator().manual_seed(5)
    y = torch.tensor([0, 2, 1, 2, 0])
    aux, feats = torch.randn(K, 5, K - 1, generator=gen), torch.randn(5, 4, generator=gen)
    a64, f64, labels = aux.double().numpy(), feats.double().numpy(), y.numpy()
    terms = []
    for c in range(K):
        rows = np.flatnonzero(labels != c)
        own, tgt = a64[c, rows] @ a64[c, rows].T, f64[rows] @ f64[rows].T
        own /= np.linalg.norm(own, axis=1, keepdims=True)
        tgt /= np.linalg.norm(tgt, axis=1, keepdims=True)
        terms.append(((own - tgt) ** 2).mean())
    assert pairwise_loss(aux, feats, y).item() == pytest.approx(np.mean(terms), rel=1e-5)


def official_pairwise(aux: torch.Tensor, feats: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """make_model.py:141-147 + SP_KD_Loss.py:10-11 on the subsets not labelled c."""
    gram = feats @ feats.T
    terms = []
    for c in range(len(aux)):
        ind = (y != c).nonzero()[:, 0]
        own = F.normalize(aux[c][ind] @ aux[c][ind].T, p=2, dim=1)
        terms.append(F.mse_loss(own, F.normalize(gram[ind][:, ind], p=2, dim=1)))
    return sum(terms) / len(terms)


def test_masked_pairwise_loss_equals_the_official_loop_over_subsets():
    gen = torch.Generator().manual_seed(3)
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0])  # class 2 absent: branch 2 keeps every sample
    aux, feats = torch.randn(K, 7, 5, generator=gen), torch.randn(7, 5, generator=gen)
    ours = pairwise_loss(aux, feats, y)
    assert ours.item() == pytest.approx(official_pairwise(aux, feats, y).item(), rel=1e-5)


def test_class_similarity_matches_numpy_by_hand():
    gen = torch.Generator().manual_seed(6)
    feats, y = torch.randn(6, 4, generator=gen), torch.tensor([0, 1, 1, 2, 2, 2])
    f = feats.double().numpy()
    unit = f / np.linalg.norm(f, axis=1, keepdims=True)
    cos = unit @ unit.T
    mean = np.stack([cos[:, y.numpy() == c].mean(1) for c in range(K)], 1)
    low, high = mean.min(1, keepdims=True), mean.max(1, keepdims=True)
    expected = torch.from_numpy((mean - low) / (high - low)).float()
    torch.testing.assert_close(class_similarity(feats, F.one_hot(y, K).float()), expected)


def test_similarity_and_gram_products_run_in_float32_under_bf16_autocast():
    gen = torch.Generator().manual_seed(7)
    feats, aux = torch.randn(16, 32, generator=gen), torch.randn(K, 16, K - 1, generator=gen)
    y = torch.arange(16) % K
    onehot = F.one_hot(y, K).float()
    fp32 = class_similarity(feats, onehot), pairwise_loss(aux, feats, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (feats @ feats.T).dtype == torch.bfloat16  # what a bare product would do
        bf16 = class_similarity(feats, onehot), pairwise_loss(aux, feats, y)
    assert all(t.dtype == torch.float32 for t in bf16)
    torch.testing.assert_close(bf16, fp32, rtol=0, atol=0)


def test_sp_term_reads_the_auxiliary_logits_not_the_branch_features():
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    method = make(y).eval()  # eval: a deterministic forward
    x = torch.randn(6, 1, 24, 24, generator=torch.Generator().manual_seed(4))
    out = method.loss(Batch(x=x, y=y, index=torch.arange(6)), epoch=0)
    trunk, last = method.backbone.split_last_stage()
    shared = trunk(x)
    feats = method.backbone.pool(last(shared))
    branch_feats = torch.stack([method.backbone.pool(b(shared)) for b in method.branches])
    logits = torch.stack([head(f) for head, f in zip(method.heads, branch_feats, strict=True)])
    torch.testing.assert_close(out.logs["sp"], pairwise_loss(logits, feats, y).detach())
    assert not torch.isclose(out.logs["sp"], pairwise_loss(branch_feats, feats, y)).item()


def test_branches_never_learn_from_their_own_class_and_the_head_stays_official():
    method = make(torch.zeros(8).long())
    assert not any(p.requires_grad for p in method.uncertainty.parameters())
    in_optimiser = {id(p) for g in method.param_groups(1e-3) for p in g["params"]}
    assert not in_optimiser & {id(p) for p in method.uncertainty.parameters()}
    x = torch.randn(8, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    method.loss(Batch(x=x, y=torch.zeros(8).long(), index=torch.arange(8)), epoch=7).loss.backward()
    own = [p.grad for m in (method.branches[0], method.heads[0]) for p in m.parameters()]
    assert all(g is None or not g.any() for g in own)  # every sample is class 0
    assert method.heads[1].weight.grad.abs().sum() > 0


def test_scores_are_the_confidence_and_prediction_the_target_branch_alone():
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    method = make(y, train_uncertainty_head="true").eval()  # eval: a deterministic forward
    assert all(p.requires_grad for p in method.uncertainty.parameters())
    x = torch.randn(6, 1, 24, 24, generator=torch.Generator().manual_seed(2))
    out = method.loss(Batch(x=x, y=y, index=torch.arange(6)), epoch=0)
    feats = method.backbone.pool(method.backbone.feature_map(x))
    onehot = F.one_hot(y, K).float()
    stats = torch.cat([class_similarity(feats, onehot), onehot], 1)
    expected = torch.sigmoid(method.uncertainty(stats)).squeeze(1).detach()
    torch.testing.assert_close(out.scores, expected)
    assert torch.equal(method.predict(x), method.backbone(x))
    with pytest.raises(ValueError, match="T > 0"):
        DmueHparams(T=0)


@pytest.mark.slow
def test_resume_is_bit_identical(micro_bundle, micro_config, tmp_path, monkeypatch):
    cfg = replace(micro_config, method="dmue", epochs=2)
    cfg.protocol.noise_rate = 0.3
    engine.train(cfg, tmp_path / "full", progress=False, bundle=micro_bundle)
    crash_after_save(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        engine.train(cfg, tmp_path / "cut", progress=False, bundle=micro_bundle)
    engine.train(cfg, tmp_path / "cut", progress=False, bundle=micro_bundle)
    full, cut = (engine.run_dir(cfg, tmp_path / d) for d in ("full", "cut"))
    assert any(k.startswith("branches.") for k in same_method_state(full, cut))
    rows = [rows_without_times(d) for d in (full, cut)]
    assert rows[0] == rows[1] and rows[0][-1]["noise"]["score_name"] == "confidence"
