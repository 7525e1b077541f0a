"""One way to set any config value: dotted --cfg overrides validated by the config
merge, run as a one-job sweep, and hyperparameter lists joining a sweep's grid."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.commands.run import build_config
from fer_bench.profiles import dotted_overrides, load_profile
from fer_bench.records.identity import run_name
from fer_bench.sweeps.sweep import build_spec, expand


def test_a_dotted_override_sets_any_field_typed_by_it():
    cfg = build_config(
        "ce", cfg_pairs=["optim.lr=3e-3", "aug.erase_p=0", "aug.crop=40", "channels_last=false"]
    )
    assert cfg.optim.lr == 3e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.aug.erase_p == 0.0 and cfg.aug.crop == 40 and cfg.channels_last is False
    assert cfg.optim.weight_decay == load_profile().optim.weight_decay  # the rest untouched


def test_a_dotted_override_equals_its_named_option():
    assert run_name(build_config("ce", cfg_pairs=["optim.lr=3e-3"])) == run_name(
        build_config("ce", lr=3e-3)
    )
    assert build_config("nla", cfg_pairs=["protocol.noise_rate=0.3"]).protocol.noise_rate == 0.3


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("optim.lrr=1", "unknown config key 'lrr'; known: name, lr,"),
        ("optim=1", "a section, not a value"),
        ("epochs=ten", "--cfg epochs=ten: expected int"),
        ("hparams=1", "set with --set"),
        ("lr", "--cfg expects KEY=VALUE"),
    ],
)
def test_bad_dotted_overrides_are_one_line_errors(pair, message):
    with pytest.raises(ValueError, match=message):
        dotted_overrides([pair])


def test_a_value_set_twice_is_refused():
    with pytest.raises(ValueError, match="optim.lr is set twice"):
        build_config("ce", cfg_pairs=["optim.lr=3e-3"], lr=1e-3)


def test_run_validates_through_the_sweep():
    with pytest.raises(ValueError, match="--epochs must be at least 1"):
        build_config("ce", cfg_pairs=["epochs=0"])
    with pytest.raises(ValueError, match="no hyperparameter 'q'"):
        build_config("ce", sets=["q=0.7"])


def test_cli_run_and_sweep_take_cfg(tmp_path):
    result = CliRunner().invoke(
        app,
        ["sweep", "--methods", "ce", "--cfg", "optim.lr=0.01", "--out", str(tmp_path), "--dry-run"],
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["run", "ce", "--cfg", "optim.nope=1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown config key 'nope'" in result.output


def test_hyperparameter_lists_join_the_grid():
    file = {"hparams": {"nla": {"detach_weight": [True, False], "lam_c": [0.5, 1.0]}}}
    spec = build_spec(file, {"methods": ["ce", "nla"], "seeds": [0, 1]}, {"epochs": 1})
    jobs = expand(spec)
    assert len(jobs) == 2 * (1 + 4)  # per seed: ce once, nla for each combination
    nla = [j.hparams for j in jobs if j.method == "nla" and j.seed == 0]
    assert nla == [
        {"detach_weight": "true", "lam_c": "0.5"},
        {"detach_weight": "true", "lam_c": "1.0"},
        {"detach_weight": "false", "lam_c": "0.5"},
        {"detach_weight": "false", "lam_c": "1.0"},
    ]
    assert len({run_name(j) for j in jobs}) == len(jobs)


def test_an_empty_hyperparameter_list_is_an_empty_grid():
    spec = build_spec({"hparams": {"nla": {"lam_c": []}}}, {"methods": ["nla"]}, {})
    with pytest.raises(ValueError, match="empty grid: hparams.nla.lam_c is an empty list"):
        expand(spec)
