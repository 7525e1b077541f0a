"""Every registered method trains a few steps; each method's wiring of its loss."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from fer_bench.backbones import create_backbone
from fer_bench.config import RunConfig
from fer_bench.methods.base import FAMILIES, Batch, Method, TrainInfo, build_hparams
from fer_bench.methods.la import log_priors
from fer_bench.methods.nla import consistency, naw_weight, sigma_schedule
from fer_bench.methods.rul import native_map_shape, uncertainty
from fer_bench.registry import METHODS

K, N, B, EPOCHS = 7, 64, 16, 12
SIZE = 24  # image side: the facts below do not depend on it, the test time does
# The shipped methods (other test files register deliberately broken ones).
BUILTIN = [n for n in METHODS.names() if METHODS.get(n).__module__.startswith("fer_bench.methods")]


def make(name: str, seed: int = 0, **overrides: str) -> Method:
    torch.manual_seed(seed)
    cls = METHODS.get(name)
    backbone = create_backbone(RunConfig().backbone, num_classes=K, in_chans=1)
    labels = torch.arange(N) % K
    info = TrainInfo(
        K,
        N,
        labels,
        epochs=EPOCHS,
        steps_per_epoch=N // B,
        batch_size=B,
        new_backbone=lambda: create_backbone(RunConfig().backbone, num_classes=K, in_chans=1),
    )
    return cls(backbone, info, build_hparams(cls, overrides))


def batch_for(method: Method, seed: int = 1) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 1, SIZE, SIZE, generator=gen)
    index = torch.randperm(N, generator=gen)[:B]
    x2 = x.flip(-1) if method.second_view else None  # as the engine makes a mirror view
    return Batch(x=x, y=method.info.observed_labels[index], index=index, x2=x2)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_method_trains_and_predicts(name: str) -> None:
    method = make(name)
    groups = method.param_groups(1e-3)
    params = [p for g in groups for p in g["params"]]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(groups)
    for step, epoch in enumerate((0, 0, EPOCHS - 1)):  # the last epoch runs relabelling too
        batch = batch_for(method, seed=step)
        out = method.loss(batch, epoch)
        assert torch.isfinite(out.loss)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        with torch.no_grad():
            method.after_step(batch, epoch)
        if method.score_name:
            assert out.scores is not None and out.scores.shape == (B,)
            assert torch.isfinite(out.scores).all()
    unchanged = [
        i for i, (p, q) in enumerate(zip(params, before, strict=True)) if torch.equal(p, q)
    ]
    assert not unchanged, f"{name}: parameters {unchanged} never moved"
    method.eval()
    with torch.no_grad():
        assert method.predict(torch.randn(3, 1, SIZE, SIZE)).shape == (3, K)


def test_every_builtin_method_names_its_family() -> None:
    named = FAMILIES[:-1]  # all but "other", a plugin's until it names one
    assert [n for n in BUILTIN if METHODS.get(n).family not in named] == []


def test_second_views() -> None:
    assert make("nla").second_view == "mirror"
    assert make("eac").second_view == "mirror_aug"
    assert make("eac", independent_erasing="false").second_view == "mirror"
    assert make("mek").second_view == "mirror"
    assert make("ce").second_view is None


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("scn", "relabel_scope", "all"),
        ("nla", "jsd", "js"),
        ("nla", "jsd_reduction", "max"),
        ("gce", "q", "0"),
        ("sce", "log_floor", "0"),
        ("ls", "eps", "1"),
        ("ldam", "drw_start", "1.5"),
        ("ldam", "drw_beta", "1"),
        ("elr", "beta", "1"),
        ("apl", "alpha", "-1"),
        ("cb", "beta", "1"),
        ("cb", "loss_type", "ce"),
        ("coteach_plus", "init_epoch_fraction", "2"),
        ("jocor", "co_lambda", "1.5"),
        ("mek", "smoothing", "1"),
    ],
)
def test_unknown_options_are_refused_before_any_model_exists(
    name: str, key: str, value: str
) -> None:
    with pytest.raises(ValueError, match=key):
        build_hparams(METHODS.get(name), {key: value})


def nla_recomputed(
    method: Method, batch: Batch, epoch: int, constant_w: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official NLA loss written out, and its weight w (a constant if ``constant_w``)."""
    z1, z2 = method.backbone(batch.x), method.backbone(batch.x2)
    ce = F.cross_entropy(z1, batch.y, reduction="none")
    probs = z1.softmax(1).detach() if constant_w else z1.softmax(1)
    w = naw_weight(probs, batch.y, sigma_schedule(epoch, EPOCHS), method.hparams)
    return 0.5 * ce.mean() + 0.5 * (w * ce).mean() + 0.5 * consistency(z1, z2).sum(), w


def test_nla_loss_is_the_official_sum() -> None:
    method = make("nla").eval()  # eval: deterministic forward for the recomputation
    batch = batch_for(method)
    out = method.loss(batch, 5)
    expected, w = nla_recomputed(method, batch, 5)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(out.scores, w, atol=1e-6)


@pytest.mark.parametrize("detach", [False, True])
def test_nla_loss_detaches_its_weight_when_asked(detach: bool) -> None:
    # The gradient of NLA.loss must equal the recomputed loss's with w a constant iff detached.
    method = make("nla", detach_weight=str(detach).lower()).eval()
    batch = batch_for(method)
    params = [p for p in method.parameters() if p.requires_grad]
    got = torch.autograd.grad(method.loss(batch, 5).loss, params)
    want = torch.autograd.grad(nla_recomputed(method, batch, 5, constant_w=True)[0], params)
    same = all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, want, strict=True))
    assert same == detach


def test_scn_relabels_from_the_set_epoch_and_keeps_labels_in_its_state() -> None:
    method = make("scn", margin_2="-1").eval()  # eval: predict repeats the loss's forward
    observed = method.table.labels.clone()
    batch = batch_for(method)
    for epoch in (8, 9):  # 1-based epochs 9 (before relabel_epoch 10) and 10
        method.loss(batch, epoch)
        method.after_step(batch, epoch)
        if epoch == 8:
            assert torch.equal(method.table.labels, observed)
    relabelled = method.table.lookup(batch.index)  # margin -1: every sample takes its prediction
    assert torch.equal(relabelled, method.predict(batch.x).argmax(1))
    assert not torch.equal(relabelled, batch.y)
    state = method.state_dict()
    assert torch.equal(state["table.labels"], method.table.labels)
    restored = make("scn", seed=3)
    restored.load_state_dict(state)
    assert torch.equal(restored.table.lookup(batch.index), relabelled)


def test_scn_low_scope_relabels_only_the_low_importance_group() -> None:
    method = make("scn", margin_2="-1", relabel_scope="low").eval()
    batch = batch_for(method)
    out = method.loss(batch, EPOCHS - 1)
    method.after_step(batch, EPOCHS - 1)
    high = torch.zeros(B, dtype=torch.bool)
    high[out.scores.topk(int(0.7 * B)).indices] = True
    labels = method.table.lookup(batch.index)
    assert torch.equal(labels[high], batch.y[high])
    assert torch.equal(labels[~high], method.predict(batch.x).argmax(1)[~high])


def test_rul_param_groups_and_probe() -> None:
    method = make("rul")
    groups = method.param_groups(2e-4)
    assert [g["lr"] for g in groups] == pytest.approx([2e-4, 2e-3])
    assert groups[1]["params"] == list(method.fc.parameters())
    used = {id(p) for g in groups for p in g["params"]}
    assert not used & {id(p) for p in method.backbone.classifier.parameters()}
    bn = next(m for m in method.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    stats = bn.running_mean.clone()
    assert native_map_shape(method.backbone)[0] == method.backbone.num_features
    assert torch.equal(bn.running_mean, stats)
    assert method.table is None and make("rul", relabel="true").table is not None


def test_rul_scores_are_inverse_uncertainty() -> None:
    method = make("rul").eval()  # eval: no dropout, so the recomputation sees the same u
    batch = batch_for(method)
    out = method.loss(batch, 0)
    with torch.no_grad():
        u = uncertainty(method.log_var(method.backbone.feature_map(batch.x)).float())
    assert torch.allclose(out.scores, 1.0 / u, rtol=1e-5)
    assert out.logs["u"] == pytest.approx(u.mean().item(), rel=1e-5)


def test_la_adjusts_by_the_observed_priors() -> None:
    labels = torch.tensor([0, 0, 0, 1])
    assert torch.allclose(log_priors(labels, 3, 1.0)[:2], torch.log(torch.tensor([0.75, 0.25])))
    method = make("la")  # balanced observed labels
    batch = batch_for(method)
    logits = method.backbone.eval()(batch.x)
    method.eval()
    adjusted = F.cross_entropy(logits + method.adjust, batch.y)
    assert method.loss(batch, 0).loss.item() == pytest.approx(adjusted.item(), rel=1e-6)


def test_gce_value() -> None:
    method = make("gce", q="1.0")  # q = 1: mean absolute error on the label probability
    method.eval()
    batch = batch_for(method)
    p = method.backbone(batch.x).softmax(1).gather(1, batch.y.view(-1, 1))
    assert method.loss(batch, 0).loss.item() == pytest.approx((1 - p).mean().item(), rel=1e-5)


def test_hparams_have_the_official_defaults() -> None:
    def defaults(name: str) -> dict:
        return dataclasses.asdict(build_hparams(METHODS.get(name), {}))

    assert defaults("scn") == {
        "beta": 0.7,
        "margin_1": 0.15,
        "margin_2": 0.2,
        "relabel_epoch": 10,
        "relabel_scope": "batch",
    }
    assert defaults("eac") == {"lam": 5.0, "independent_erasing": True}
    nla = defaults("nla")
    assert (nla["jsd"], nla["jsd_reduction"], nla["detach_weight"]) == ("official", "sum", False)
    assert (nla["lam_a"], nla["lam_b"], nla["lam_c"], nla["slope"]) == (0.5, 0.5, 0.5, -15.0)
    rul = defaults("rul")
    assert (rul["relabel"], rul["classifier_lr_ratio"], rul["dropout"]) == (False, 10.0, 0.4)
    assert defaults("la") == {"tau": 1.0} and defaults("gce") == {"q": 0.7}
