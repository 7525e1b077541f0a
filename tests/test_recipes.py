"""Official recipes (values from the official code, cited by file and line in methods/*.py),
apply_recipe / recipe_record, SCN/RUL's exclusive mirror-or-noise, search spaces."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fer_bench.backbones import create_backbone
from fer_bench.config import AugConfig, RunConfig
from fer_bench.methods.base import Hparams, Method, TrainInfo, build_hparams
from fer_bench.profiles import load_profile, with_overrides
from fer_bench.recipes import Recipe, apply_recipe, official_recipe, recipe_record
from fer_bench.registry import METHODS
from fer_bench.search import Choice, LogUniform, Uniform, draw, trial_rng
from fer_bench.training.augment import BatchAugmenter
from fer_bench.training.optim import LrFactor

WITH_RECIPE = ["eac", "nla", "rul", "scn"]


def _official(method: str, profile: str = "synthetic-cpu", **hparams: str) -> RunConfig:
    cfg = with_overrides(load_profile(profile), {"method": method, "recipe": "official"})
    cfg.hparams = dict(hparams)
    return apply_recipe(cfg)


def _resolved(cfg: RunConfig):
    return build_hparams(METHODS.get(cfg.method), cfg.hparams)


def _assert_shared_optim(cfg: RunConfig, lr: float) -> None:
    # Adam, weight decay 1e-4, ExponentialLR(0.9) stepped per epoch: all four repos.
    o = cfg.optim
    assert (o.name, o.lr, o.weight_decay, o.schedule, o.gamma) == (
        "adam",
        lr,
        1e-4,
        "exponential",
        0.9,
    )
    factor = LrFactor(o, cfg.epochs, steps_per_epoch=10)
    assert factor(0) == factor(9) == 1.0 and factor(10) == pytest.approx(0.9)
    assert factor(25) == pytest.approx(0.81)


def _assert_no_crop_no_tta(cfg: RunConfig) -> None:
    # Official pipelines only resize: no translation, no crop, no test-time flip.
    assert cfg.aug.pad == 0 and not cfg.aug.crop and not cfg.aug.tta_flip
    aug = BatchAugmenter(cfg.aug, torch.tensor([0.5]), torch.tensor([0.25]), 48, torch.Generator())
    assert aug.crop == 48


def _assert_mirror_or_noise(cfg):
    """SCN's augmentation, which RUL's code copies."""
    a = cfg.aug
    assert (a.erase_p, a.erase_max, a.noise_var) == (0.5, 0.25, 30.0)
    # with p 0.5 one of {mirror, noise}: each 0.25, never both
    assert (a.flip, a.flip_p, a.noise_p, a.flip_noise_exclusive) == (True, 0.25, 0.25, True)
    _assert_no_crop_no_tta(cfg)


@pytest.mark.parametrize("profile", ["synthetic-cpu", "ferplus-cpu", "ferplus-gpu"])
def test_scn_official_recipe(profile):
    cfg = _official("scn", profile)
    _assert_shared_optim(cfg, 1e-3)
    assert (cfg.batch_size, cfg.epochs) == (64, 70)
    _assert_mirror_or_noise(cfg)
    hp = _resolved(cfg)
    assert (hp.beta, hp.margin_1, hp.margin_2, hp.relabel_epoch) == (0.7, 0.07, 0.2, 10)
    assert hp.relabel_scope == "batch"
    assert cfg.recipe == "official" and cfg.method == "scn"


def test_rul_official_recipe():
    cfg = _official("rul")
    _assert_shared_optim(cfg, 2e-4)
    assert (cfg.batch_size, cfg.epochs) == (64, 60)
    _assert_mirror_or_noise(cfg)
    hp = _resolved(cfg)
    assert (hp.feature_dim, hp.dropout, hp.classifier_lr_ratio, hp.relabel) == (
        64,
        0.4,
        10.0,
        False,
    )
    # The effective learning rates: 2e-4 for backbone and heads, 2e-3 for the classifier.
    info = TrainInfo(7, 8, torch.zeros(8, dtype=torch.long), cfg.epochs, 1, cfg.batch_size)
    method = METHODS.get("rul")(create_backbone("fer_resnet10_w16", 7, 1), info, hp)
    lrs = [g["lr"] for g in method.param_groups(cfg.optim.lr)]
    assert lrs == [pytest.approx(2e-4), pytest.approx(2e-3)]


def test_eac_official_recipe():
    cfg = _official("eac")
    _assert_shared_optim(cfg, 2e-4)  # the author's ResNet-18 lr (ResNet-50: 1e-4)
    assert (cfg.batch_size, cfg.epochs) == (32, 60)
    a = cfg.aug
    assert (a.erase_p, a.erase_max, a.noise_p, a.noise_var) == (0.5, 0.25, 0.5, 30.0)
    # view 1 never mirrored; the noisy second view gets no Gaussian noise
    assert a.flip is False and a.second_view_noise is False and not a.flip_noise_exclusive
    _assert_no_crop_no_tta(cfg)
    hp = _resolved(cfg)
    assert (hp.lam, hp.independent_erasing) == (5.0, True)
    assert any("1e-4" in line for line in official_recipe("eac").not_reproduced)


def test_nla_official_recipe():
    cfg = _official("nla")
    _assert_shared_optim(cfg, 1e-4)
    assert (cfg.batch_size, cfg.epochs) == (32, 60)
    a = cfg.aug
    assert (a.erase_p, a.erase_max, a.flip, a.flip_p) == (0.5, 0.30, True, 0.5)
    assert (a.noise_p, a.noise_var, a.flip_noise_exclusive) == (0.5, 30.0, False)
    _assert_no_crop_no_tta(cfg)
    hp = _resolved(cfg)
    assert (hp.lam_a, hp.lam_b, hp.lam_c, hp.slope, hp.t_lambda) == (0.5, 0.5, 0.5, -15.0, 1.0)
    assert (hp.mu_x_t, hp.mu_y_t, hp.mu_x_f, hp.mu_y_f) == (0.5, 0.5, 0.30, 0.15)
    assert (hp.t_std_major, hp.t_std_ratio, hp.f_std_major, hp.f_std_ratio) == (
        0.8,
        2.0,
        0.91,
        6.0,
    )
    assert (hp.jsd, hp.jsd_reduction, hp.detach_weight) == ("official", "sum", False)


@pytest.mark.parametrize("method", WITH_RECIPE)
def test_recipe_declares_source_and_gaps(method):
    recipe = METHODS.get(method).official_recipe
    assert isinstance(recipe, Recipe)
    repo = {
        "scn": "kaiwang960112/Self-Cure-Network",
        "rul": "zyh-uaiaaaa/Relative-Uncertainty-Learning",
        "eac": "zyh-uaiaaaa/Erasing-Attention-Consistency",
        "nla": "jungyu0413/NLA",
    }[method]
    assert recipe.source.startswith(repo) and ".py:" in recipe.source
    assert any("pretrained" in line for line in recipe.not_reproduced)
    assert any("224 px" in line for line in recipe.not_reproduced)
    # every recipe hyperparameter is a real one of the method
    fields = {f.name for f in dataclasses.fields(METHODS.get(method).Hparams)}
    assert set(recipe.hparams) <= fields


def test_user_set_beats_recipe_hparams():
    cfg = _official("scn", margin_1="0.15", relabel_scope="low")
    assert cfg.hparams["margin_1"] == "0.15" and cfg.hparams["relabel_scope"] == "low"
    assert cfg.hparams["margin_2"] == "0.2"  # the recipe's where the user gave nothing
    hp = _resolved(cfg)
    assert (hp.margin_1, hp.relabel_scope, hp.beta) == (0.15, "low", 0.7)
    nla = _official("nla", detach_weight="true")
    assert _resolved(nla).detach_weight is True and nla.hparams["lam_c"] == "0.5"


def test_apply_recipe_copies_and_keeps_recipe_name():
    base = with_overrides(load_profile(), {"method": "nla", "recipe": "official"})
    base.hparams = {"lam_c": "0.1"}
    before = base.to_dict()
    first, second = apply_recipe(base), apply_recipe(base)
    assert base.to_dict() == before  # the input is not modified
    assert first is not base and first.to_dict() == second.to_dict()
    assert first.recipe == "official" and first.optim.lr == 1e-4
    assert METHODS.get("nla").official_recipe.hparams["lam_c"] == "0.5"  # nor the recipe
    # what the recipe does not name stays the config's
    assert (first.backbone, first.data.name, first.seed) == (base.backbone, "synthetic", 0)


def test_shared_recipe_is_unchanged():
    cfg = with_overrides(load_profile("ferplus-cpu"), {"method": "scn"})
    assert cfg.recipe == "shared"
    assert apply_recipe(cfg) is cfg
    assert recipe_record(cfg) is None


def test_unknown_recipe_is_an_error():
    cfg = RunConfig(method="nla", recipe="paper")
    with pytest.raises(ValueError, match=r"unknown recipe 'paper'; known: shared, official"):
        apply_recipe(cfg)
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe_record(cfg)


@pytest.mark.parametrize("method", ["ce", "gce", "la"])
def test_method_without_official_recipe_is_an_error(method):
    assert METHODS.get(method).official_recipe is None
    cfg = RunConfig(method=method, recipe="official")
    with pytest.raises(ValueError) as err:
        apply_recipe(cfg)
    message = str(err.value)
    assert "\n" not in message and f"{method!r} has no official recipe" in message
    assert "eac, nla, rul, scn" in message
    with pytest.raises(ValueError, match="has no official recipe"):
        recipe_record(cfg)


def test_base_method_has_no_recipe():
    assert Method.official_recipe is None and Hparams.search_space == {}


@pytest.mark.parametrize("method", WITH_RECIPE)
def test_recipe_record(method):
    record = recipe_record(RunConfig(method=method, recipe="official"))
    recipe = METHODS.get(method).official_recipe
    assert record == {
        "name": "official",
        "source": recipe.source,
        "not_reproduced": list(recipe.not_reproduced),
    }


# --- SCN/RUL's "one of {mirror, noise}" and EAC's noise-free second view --------------


def _asymmetric(n: int) -> torch.Tensor:
    img = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    img[..., 2:] = 200  # left half 0, right half 200: a mirror shows, noise shows
    return img


def _flip_and_noise(cfg: AugConfig, n: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    aug = BatchAugmenter(cfg, torch.tensor([0.0]), torch.tensor([1.0]), 4, torch.Generator())
    x, _ = aug.train_views(_asymmetric(n), None)
    flipped = x[:, 0, 0, 0] > x[:, 0, 0, -1]
    clean = (x == 0) | (x == torch.tensor(200.0) / 255)
    noised = ~clean.flatten(1).all(1)
    return flipped, noised


def test_exclusive_mirror_or_noise():
    cfg = _official("scn").aug
    cfg = dataclasses.replace(cfg, erase_p=0.0)
    flipped, noised = _flip_and_noise(cfg)
    assert not (flipped & noised).any()
    assert flipped.float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert noised.float().mean().item() == pytest.approx(0.25, abs=0.03)
    # the default draws them independently: both at once a quarter of the time
    flipped, noised = _flip_and_noise(AugConfig(pad=0, erase_p=0.0))
    assert (flipped & noised).float().mean().item() == pytest.approx(0.25, abs=0.03)


def test_flip_p():
    flipped, _ = _flip_and_noise(AugConfig(pad=0, erase_p=0.0, noise_p=0.0, flip_p=0.1))
    assert flipped.float().mean().item() == pytest.approx(0.1, abs=0.02)


def test_exclusive_probabilities_must_fit():
    with pytest.raises(ValueError, match="flip_p \\+ noise_p <= 1"):
        BatchAugmenter(
            AugConfig(flip_noise_exclusive=True, flip_p=0.6, noise_p=0.5),
            torch.tensor([0.0]),
            torch.tensor([1.0]),
            4,
            torch.Generator(),
        )


def test_second_view_without_noise():
    imgs = torch.randint(0, 256, (64, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    imgs = imgs.to(torch.uint8)

    def views(second_view_noise: bool):
        cfg = AugConfig(
            pad=0, flip=False, erase_p=0.0, noise_p=1.0, second_view_noise=second_view_noise
        )
        aug = BatchAugmenter(cfg, torch.tensor([0.0]), torch.tensor([1.0]), 8, torch.Generator())
        return aug.train_views(imgs, "mirror_aug")

    raw_mirror = imgs.float().div(255).flip(-1)
    x1, x2 = views(False)
    assert torch.equal(x2, raw_mirror) and not torch.equal(x1, imgs.float().div(255))
    _, x2 = views(True)
    assert not torch.equal(x2, raw_mirror)


def test_new_aug_fields_default_to_the_old_behaviour():
    a = AugConfig()
    assert (a.flip_p, a.flip_noise_exclusive, a.second_view_noise) == (0.5, False, True)


# --- search spaces ---------------------------------------------------------------------

EXPECTED_SPACES = {
    "ce": set(),
    "gce": {"q"},
    "la": {"tau"},
    "scn": {"beta", "margin_1", "margin_2"},
    "rul": {"classifier_lr_ratio"},
    "eac": {"lam"},
    "nla": {"lam_c"},
    "sce": {"alpha"},
    "ls": {"eps"},
    "bsoftmax": set(),
    "ldam": {"max_m", "s"},
    "elr": {"beta", "lam"},
    "coteach": {"forget_rate"},
    "dmue": {"w", "gamma"},
    "dividemix": {"lambda_u", "p_threshold", "warmup"},
    "apl": {"alpha"},
    "cb": {"beta"},
    "coteach_plus": {"forget_rate"},
    "jocor": {"forget_rate", "co_lambda"},
    "mek": {"lam", "smoothing"},
}
VARIANTS = {
    "detach_weight",
    "jsd",
    "jsd_reduction",
    "relabel",
    "relabel_scope",
    "normed",
    "loss_type",
    "double_softmax",
}


@pytest.mark.parametrize("method", sorted(EXPECTED_SPACES))
def test_search_space(method):
    cls = METHODS.get(method)
    space = cls.Hparams.search_space
    assert set(space) == EXPECTED_SPACES[method]
    fields = {f.name: f for f in dataclasses.fields(cls.Hparams)}
    assert "search_space" not in fields  # a ClassVar, not a hyperparameter
    assert not set(space) & (VARIANTS | {"independent_erasing"})
    defaults = cls.Hparams()
    recipe = cls.official_recipe
    for key, dist in space.items():
        assert key in fields and fields[key].type in ("float", float), key
        assert isinstance(dist, Uniform | LogUniform) and not isinstance(dist, Choice)
        assert dist.low <= getattr(defaults, key) <= dist.high, key  # the default is searched
        if recipe is not None and key in recipe.hparams:
            assert dist.low <= float(recipe.hparams[key]) <= dist.high, key
    for trial in range(5):
        values = draw(space, trial_rng(0, method, trial))
        hp = build_hparams(cls, {k: str(v) for k, v in values.items()})
        for key, value in values.items():
            assert getattr(hp, key) == value
            assert space[key].low <= value <= space[key].high


def test_search_space_fields_unchanged():
    names = {m: [f.name for f in dataclasses.fields(METHODS.get(m).Hparams)] for m in METHODS}
    assert names["scn"] == ["beta", "margin_1", "margin_2", "relabel_epoch", "relabel_scope"]
    assert names["gce"] == ["q"] and names["la"] == ["tau"] and names["ce"] == []
    assert names["eac"] == ["lam", "independent_erasing"]
