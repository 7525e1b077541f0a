"""The command line: a real run, listing, and one-line errors on bad input."""

from __future__ import annotations

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from fer_bench.cli import app

runner = CliRunner()
FAST = ["--epochs", "1", "--quiet", "--set", "dummy=1"]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code != 0, result.output
    text = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in text, text


def test_list_methods_and_backbones():
    result = invoke("list", "methods")
    assert result.exit_code == 0 and "ce" in result.output
    result = invoke("list", "backbones")
    assert "fer_resnet10_w16" in result.output


def test_unknown_method_lists_names(tmp_path):
    _one_line_error(invoke("run", "nope", "--out", tmp_path), "unknown methods 'nope'", "ce")
    assert not any(tmp_path.iterdir())


def test_unknown_dataset_and_backbone(tmp_path):
    _one_line_error(
        invoke("run", "ce", "--dataset", "nope", "--out", tmp_path),
        "unknown datasets 'nope'",
        "synthetic",
    )
    _one_line_error(
        invoke("run", "ce", "--backbone", "nope", "--out", tmp_path),
        "unknown backbone 'nope'",
        "fer_resnet10_w16",
    )
    assert not any(tmp_path.iterdir())


def test_bad_numbers(tmp_path):
    _one_line_error(invoke("run", "ce", "--epochs", "0", "--out", tmp_path), "--epochs")
    _one_line_error(invoke("run", "ce", "--lr", "-0.1", "--out", tmp_path), "--lr must be positive")
    _one_line_error(invoke("run", "ce", "--noise", "1.2", "--out", tmp_path), "noise rate")


def test_unknown_hyperparameter(tmp_path):
    _one_line_error(
        invoke("run", "ce", "--set", "beta=1", "--out", tmp_path), "no hyperparameter 'beta'"
    )


def test_malformed_set(tmp_path):
    _one_line_error(
        invoke("run", "ce", "--set", "beta", "--out", tmp_path), "--set expects KEY=VALUE"
    )
    _one_line_error(
        invoke("sweep", "--methods", "ce", "--set", "=1", "--out", tmp_path, "--dry-run"),
        "--set expects [METHOD.]KEY=VALUE",
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    _one_line_error(invoke("run", "ce", "--out", locked / "sub"), "not writable")


def test_mismatched_checkpoint(tmp_path, micro_bundle, monkeypatch):
    monkeypatch.setattr("fer_bench.training.engine.load_dataset", lambda cfg: micro_bundle)
    ckpt = tmp_path / "w32.pt"
    torch.save(
        __import__("timm").create_model("fer_resnet10_w32", num_classes=7, in_chans=1).state_dict(),
        ckpt,
    )
    _one_line_error(
        invoke("run", "ce", "--pretrained", ckpt, "--out", tmp_path / "runs"),
        "does not match the backbone",
    )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_resume_with_different_config(tmp_path):
    run = tmp_path / "ce-123"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "ce", "epochs": 3, "hash": "x"}))
    _one_line_error(
        invoke("run", "ce", "--resume", run, "--epochs", "5"), "differs from the command", "epochs"
    )


def test_plugin_method_runs_end_to_end(tmp_path, tiny_bundle, monkeypatch):
    monkeypatch.setattr("fer_bench.training.engine.load_dataset", lambda cfg: tiny_bundle)
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import torch.nn.functional as F\n"
        "from dataclasses import dataclass\n"
        "from fer_bench.methods.base import Hparams, Method, StepOutput\n"
        "from fer_bench.registry import METHODS\n"
        "@dataclass\nclass HP(Hparams):\n    dummy: int = 0\n"
        "@METHODS.register('cli-plugin')\n"
        "class Mine(Method):\n    Hparams = HP\n"
        "    def loss(self, batch, epoch):\n"
        "        return StepOutput(loss=F.cross_entropy(self.backbone(batch.x), batch.y))\n"
    )
    result = invoke("run", "cli-plugin", "--plugin", plugin, "--out", tmp_path / "runs", *FAST)
    assert result.exit_code == 0, result.output
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]  # beside: its lock
    final = json.loads((run / "final.json").read_text())
    assert final["status"] == "done" and final["hparams"] == {"dummy": 1}
    assert 0.2 < final["selection"]["last"]["test"]["acc"] <= 1.0


def _nothing_written(root) -> None:
    assert not root.exists() or not any(root.iterdir()), list(root.rglob("*"))


def _one_line_exit(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    _one_line_error(result, *fragments)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_bad_run_input_is_one_line_and_writes_nothing(tmp_path, tiny_bundle, monkeypatch):
    monkeypatch.setattr("fer_bench.training.engine.load_dataset", lambda cfg: tiny_bundle)
    runs = tmp_path / "runs"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    cases = [
        (["--image-size", "0"], "--image-size must be at least 1"),
        (["--device", "cuda"], "--device cuda: no CUDA GPU is available"),
        (["--pretrained", junk], "not a readable PyTorch checkpoint"),
    ]
    for args, message in cases:
        _one_line_exit(invoke("run", "ce", "--out", runs, "--quiet", *args), 2, message)
        _nothing_written(runs)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def broken(:\n", ":1: syntax error"),
        ("raise ImportError('gone')\n", ":1: raised on import"),
    ],
)
def test_broken_plugin_is_one_line(tmp_path, source, fragment):
    plugin = tmp_path / "broken_plugin.py"
    plugin.write_text(source)
    result = invoke("run", "ce", "--plugin", plugin, "--out", tmp_path / "runs")
    _one_line_exit(result, 2, "broken_plugin.py", fragment)
    _nothing_written(tmp_path / "runs")


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs /sys, never writable")
def test_table_out_on_an_unwritable_path_is_one_line(tmp_path):
    board = os.path.join(os.path.dirname(__file__), "..", "results", "ferplus-cpu")
    result = invoke("table", board, "--out", "/sys/kernel/fer-bench-table.md")
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output and "error:" in result.output
    assert not os.path.exists("/sys/kernel/fer-bench-table.md.tmp")


WIDE = CliRunner(env={"COLUMNS": "250"})


def test_help_names_the_profile_defaults():
    text = " ".join(WIDE.invoke(app, ["run", "--help"]).output.split())
    assert "default: from the profile; ferplus-cpu: 30" in text and "synthetic-cpu: 12" in text


def test_list_methods_groups_them_by_family():
    from fer_bench.methods.base import FAMILIES

    lines = WIDE.invoke(app, ["list", "methods"]).output.splitlines()
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in lines]
    families = [row[-1] for row in cells if line_is_row(row)]
    assert families == sorted(families, key=FAMILIES.index)  # grouped, in FAMILIES order
    assert sum(line.startswith("├") for line in lines) == len(set(families)) - 1  # rules
    assert {"fer", "noise", "longtail", "baseline"} <= set(families)


def line_is_row(cells: list[str]) -> bool:
    """A table row that names a method (a wrapped description continues with no name)."""
    return len(cells) == 3 and cells[0] not in ("", "name")


def test_list_shows_whole_descriptions_and_profile_settings():
    methods = " ".join(WIDE.invoke(app, ["list", "methods"]).output.split())
    assert "after zyh-uaiaaaa/Erasing-Attention-Consistency" in methods
    profiles = " ".join(WIDE.invoke(app, ["list", "profiles"]).output.split())
    assert "Sets:" in profiles and "epochs=30" in profiles and "optim.lr=0.003" in profiles
