"""One declaration per option (fer_bench.options): run, sweep and tune take their config
options, profiles their keys and ``sweep --board`` its refusals from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fer_bench import options
from fer_bench.cli import app
from fer_bench.commands import run, sweep, tune
from fer_bench.config import RunConfig
from fer_bench.options import COMMANDS, OPTIONS, SWEEP, Option, for_command
from fer_bench.profiles import dotted_overrides, field_type, with_overrides
from fer_bench.records.identity import experiment
from fer_bench.records.ledger import neutral_fields

ROOT = Path(__file__).resolve().parents[1]
WIDE = CliRunner(env={"COLUMNS": "250"})


def _command(typer_app: typer.Typer, name: str):
    group = typer.main.get_command(typer_app)
    return group.commands[name]  # type: ignore[attr-defined]


def _flags(typer_app: typer.Typer, name: str) -> set[str]:
    return {flag for p in _command(typer_app, name).params for flag in p.opts}


def test_every_option_sets_a_config_value():
    for option in OPTIONS:
        assert field_type(option.key) in (bool, int, float, str), option.name
        assert dotted_overrides([f"{option.key}=1"])  # "1" reads as every field type
    assert len({o.name for o in OPTIONS}) == len(OPTIONS)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_takes_its_declared_options(command):
    declared = {o.cli_name(command) for o in for_command(command)}
    assert declared <= _flags(app, command)
    others = {o.cli_name(command) for o in OPTIONS} - declared
    assert not others & _flags(app, command)


def test_run_sweep_and_tune_take_the_same_base_config_options():
    def base(command: str) -> set[str]:
        return {o.name for o in for_command(command) if o.grid_in(command) is None}

    assert base("sweep") == base("tune")
    # run takes the sweep's grid options too, each as one value (--seed for --seeds).
    assert base("run") == base("sweep") | {o.name for o in for_command(SWEEP) if o.grid}


def test_board_takes_exactly_the_options_outside_a_runs_identity():
    identity = experiment(RunConfig())

    def in_identity(key: str) -> bool:
        table = identity
        *sections, name = key.split(".")
        for section in sections:
            table = table[section]
        return name in table or key in neutral_fields()

    for option in OPTIONS:
        assert option.where is not in_identity(option.key), option.name


def test_a_board_refuses_an_option_of_the_identity_it_did_not_before(tmp_path):
    args = ["sweep", "--board", str(ROOT / "results/synthetic"), "--methods", "ce"]
    args += ["--out", str(tmp_path / "out"), "--dry-run", "--sampler", "balanced"]
    result = WIDE.invoke(app, args)
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "--sampler would change them" in text
    assert "give --methods, --set, --data-root, --device, --channels-last, --compile" in text


def _app_with(monkeypatch, extra: Option) -> typer.Typer:
    """The three commands registered anew with ``extra`` declared beside the others."""
    monkeypatch.setattr(options, "OPTIONS", (*OPTIONS, extra))
    monkeypatch.setitem(options.BY_NAME, extra.name, extra)
    fresh = typer.Typer()
    for module in (run, sweep, tune):
        module.register(fresh)
    return fresh


def test_an_option_declared_once_reaches_every_command_and_the_config(monkeypatch, tmp_path):
    extra = Option("erase_p", "aug.erase_p", "a new setting, declared once")
    fresh = _app_with(monkeypatch, extra)
    for command in COMMANDS:
        help_text = " ".join(WIDE.invoke(fresh, [command, "--help"]).output.split())
        assert "--erase-p <float> a new setting, declared once" in help_text, command

    trained: list[RunConfig] = []

    def fake_train(cfg: RunConfig, root: Path, **_: object) -> dict:
        trained.append(cfg)
        return {"status": "done", "method": cfg.method, "dataset": cfg.data.name}

    monkeypatch.setattr(run, "_train", fake_train)
    result = WIDE.invoke(fresh, ["run", "ce", "--erase-p", "0.1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [cfg.aug.erase_p for cfg in trained] == [0.1]

    bases: list[dict] = []

    def stop_at_spec(file: dict, cli: dict, cli_base: dict):
        bases.append(cli_base)
        raise ValueError("stopped")

    monkeypatch.setattr(sweep, "build_spec", stop_at_spec)
    monkeypatch.setattr(tune, "build_spec", stop_at_spec)
    sweep_file = tmp_path / "grid.toml"
    sweep_file.write_text('methods = ["ce"]\n')
    WIDE.invoke(fresh, ["sweep", "--methods", "ce", "--erase-p", "0.2"])
    WIDE.invoke(fresh, ["tune", "-f", str(sweep_file), "--out", str(tmp_path), "--erase-p", "0.3"])
    assert [with_overrides(RunConfig(), b).aug.erase_p for b in bases] == [0.2, 0.3]
