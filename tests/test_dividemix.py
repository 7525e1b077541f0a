"""DivideMix's checkable facts, against LiJunnan1992/DivideMix at d9d3058 (Train_cifar.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from resume_helpers import crash_after_save, rows_without_times, same_method_state

import fer_bench.methods.dividemix as dividemix
import fer_bench.training.engine as engine
from fer_bench.backbones import create_backbone
from fer_bench.config import RunConfig
from fer_bench.gmm import low_component_posterior, two_means
from fer_bench.methods.base import Batch, TrainInfo, TrainingImages, build_hparams
from fer_bench.methods.dividemix import DivideMix, DividemixHparams, mix_coefficient, sharpen

K, N = 3, 12

# scikit-learn 1.9.1: GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4)
# fitted to HAND_LOSSES, predict_proba of the low-mean component (the same for
# random_state 0-4: every k-means++ draw ends in the same split).
HAND_LOSSES = [0.0, 0.05, 0.1, 0.12, 0.2, 0.3, 0.55, 0.8, 0.9, 1.0]
SKLEARN_POSTERIOR = [
    0.9999857740179693,
    0.999967910017827,
    0.9999148694850162,
    0.9998683912156331,
    0.9990261137243921,
    0.9790907292490729,
    0.0012182209274379395,
    5.507198950270005e-10,
    5.125001471898889e-13,
    2.492767944867067e-16,
]


def make(epochs: int = 10, **overrides: str) -> DivideMix:
    torch.manual_seed(0)

    def backbone():
        return create_backbone(RunConfig().backbone, num_classes=K, in_chans=1)

    labels = torch.arange(N) % K
    info = TrainInfo(K, N, labels, epochs, 2, 6, new_backbone=backbone)
    return DivideMix(backbone(), info, build_hparams(DivideMix, overrides))


def batch_of(method: DivideMix, index: list[int]) -> Batch:
    gen = torch.Generator().manual_seed(1)
    x, x2 = torch.randn(2, len(index), 1, 16, 16, generator=gen)
    index_t = torch.tensor(index)
    return Batch(x=x, y=method.info.observed_labels[index_t], index=index_t, x2=x2)


def test_mixture_matches_scikit_learn_on_a_hand_case():
    losses = torch.tensor(HAND_LOSSES, dtype=torch.float64)
    posterior = low_component_posterior(losses, max_iter=10, tol=1e-2, reg_covar=5e-4)
    assert torch.allclose(posterior, torch.tensor(SKLEARN_POSTERIOR, dtype=torch.float64))
    assert two_means(losses).tolist() == [False] * 6 + [True] * 4
    # min-max normalisation first: the same posterior for the losses scaled and shifted
    scaled = dividemix.clean_probability(3 * losses.float() + 2)
    assert torch.allclose(scaled, posterior, atol=1e-5)


def test_sharpening_and_the_mixing_coefficient():
    p = torch.tensor([[0.6, 0.4], [0.5, 0.5]])
    assert torch.allclose(sharpen(p, 0.5), torch.tensor([[0.36 / 0.52, 0.16 / 0.52], [0.5, 0.5]]))
    assert torch.equal(sharpen(torch.tensor([[0.0, 1.0, 0.0]]), 0.5), torch.tensor([[0, 1.0, 0]]))
    torch.manual_seed(0)
    draws = [mix_coefficient(4.0) for _ in range(200)]
    assert min(draws) >= 0.5 and max(draws) < 1
    assert min(draws) < 0.55 and max(draws) > 0.8  # Beta(4, 4) folded, not a constant


def test_warm_up_is_plain_cross_entropy_net_1_on_view_1_net_2_on_view_2():
    method = make().eval()  # eval: deterministic forwards for the recomputation
    batch = batch_of(method, [0, 1, 2, 3, 4, 5])
    out = method.loss(batch, epoch=0)
    ce_1 = F.cross_entropy(method.backbone(batch.x), batch.y)
    ce_2 = F.cross_entropy(method.peer(batch.x2), batch.y)
    assert torch.allclose(out.loss, ce_1 + ce_2, atol=1e-6)
    penalised = make(conf_penalty="true").eval().loss(batch, epoch=0)
    p_1, p_2 = method.backbone(batch.x).softmax(1), method.peer(batch.x2).softmax(1)
    neg_entropy = (p_1 * p_1.log()).sum(1).mean() + (p_2 * p_2.log()).sum(1).mean()
    assert torch.allclose(penalised.loss, ce_1 + ce_2 + neg_entropy, atol=1e-6)


def test_each_network_trains_on_its_peers_division(monkeypatch):
    method = make()
    index = [0, 1, 2, 3, 4, 5]
    method.clean_prob[0, index] = torch.tensor([1.0, 0.7, 0.2, 0.0, 0.9, 0.4])  # network 1's
    method.clean_prob[1, index] = torch.tensor([0.1, 0.3, 1.0, 0.8, 0.6, 0.2])  # network 2's
    batch = batch_of(method, index)
    calls = []

    def spy(logits, targets, n_labelled, lambda_u):
        calls.append((targets, n_labelled))
        return real(logits, targets, n_labelled, lambda_u)

    real = dividemix.semi_loss
    monkeypatch.setattr(dividemix, "semi_loss", spy)
    monkeypatch.setattr(dividemix, "mix_coefficient", lambda alpha: 1.0)  # no mixing
    out = method.loss(batch, epoch=5)
    assert torch.equal(out.scores, method.clean_prob[0, index])
    with torch.no_grad():  # the nets in training mode, as in the step
        probs = [[net(v).softmax(1) for v in (batch.x, batch.x2)] for net in method.nets]
    guessed = sharpen(sum(probs[0] + probs[1]) / 4, 0.5)
    one_hot = F.one_hot(batch.y, K).float()
    # network 1 learns what network 2 finds clean (> 0.5: 2, 3, 4), and the reverse
    divisions = [([2, 3, 4], method.clean_prob[1]), ([0, 1, 4], method.clean_prob[0])]
    for k, (labelled, peer_prob) in enumerate(divisions):
        targets, n_labelled = calls[k]
        unlabelled = [i for i in index if i not in labelled]
        assert n_labelled == 2 * len(labelled)
        w = peer_prob[labelled][:, None]
        own = (probs[k][0] + probs[k][1])[labelled] / 2
        refined = sharpen(w * one_hot[labelled] + (1 - w) * own, 0.5)
        expected = torch.cat([refined, refined, guessed[unlabelled], guessed[unlabelled]])
        assert torch.allclose(targets, expected, atol=1e-6)
    assert torch.equal(calls[0][0][0], one_hot[2])  # w = 1: the observed label itself


def test_lambda_u_ramps_from_the_end_of_the_warm_up():
    method = make(epochs=30)  # warm-up round(30 / 30) = 1 epoch, ramp 30 * 16 / 300 = 1.6
    batch = batch_of(method, [0, 1, 2, 3, 4, 5])
    assert method.warmup_epochs == 1
    assert method.loss(batch, epoch=1).logs["lambda_u"] == 0.0
    method.after_step(batch, 1)  # step 1 of 2: epoch 1.5
    assert method.loss(batch, epoch=1).logs["lambda_u"] == pytest.approx(25 * 0.5 / 1.6)
    assert method.loss(batch, epoch=5).logs["lambda_u"] == 25.0


def test_epoch_start_fits_each_networks_losses_and_prediction_averages_logits():
    method = make()
    x = torch.randn(N, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    images = TrainingImages(
        method.info.observed_labels, lambda bs: ((i, x[i]) for i in torch.arange(N).split(bs)), 5
    )
    method.step_in_epoch = 3
    with torch.no_grad():
        method.on_epoch_start(1, images)
        assert method.step_in_epoch == 0
        for k, net in enumerate(method.nets):  # still in eval mode
            # in the method's batches of 5: one batch of 12 rounds differently on some CPUs
            logits = torch.cat([net(part) for part in x.split(5)])
            losses = F.cross_entropy(logits, method.info.observed_labels, reduction="none")
            assert torch.allclose(method.clean_prob[k], dividemix.clean_probability(losses).float())
        logits = (method.backbone(x) + method.peer(x)) / 2
        assert torch.allclose(method.predict(x), logits)


def test_a_warm_up_leaving_no_epoch_and_bad_options_are_refused():
    with pytest.raises(ValueError, match="leaves none of the 1"):
        make(epochs=1)
    with pytest.raises(ValueError, match="warmup must be in"):
        DividemixHparams(warmup=1.0)
    with pytest.raises(ValueError, match="T and alpha"):
        DividemixHparams(T=0.0)


@pytest.mark.slow
def test_a_run_resumed_after_a_kill_is_bit_identical(
    micro_bundle, micro_config, tmp_path, monkeypatch
):
    cfg = replace(micro_config, method="dividemix", epochs=3)
    cfg.protocol.noise_rate = 0.3
    engine.train(cfg, tmp_path / "full", progress=False, bundle=micro_bundle)
    crash_after_save(monkeypatch, at=2)  # after the first DivideMix epoch
    with pytest.raises(KeyboardInterrupt):
        engine.train(cfg, tmp_path / "cut", progress=False, bundle=micro_bundle)
    engine.train(cfg, tmp_path / "cut", progress=False, bundle=micro_bundle)
    full, cut = (engine.run_dir(cfg, tmp_path / d) for d in ("full", "cut"))
    assert "clean_prob" in same_method_state(full, cut)
    rows = [rows_without_times(d) for d in (full, cut)]
    assert rows[0] == rows[1]
    assert all(r["noise"]["score_name"] == "clean_prob" for r in rows[0])
    assert rows[0][-1]["train"]["labelled_1"] < 1  # the mixture divided the data
