"""Imports point one way (issue 49): pyproject's import-linter contracts hold, and they
see a plugin importing upward; fer_bench/ keeps few top-level modules."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parent.parent
MAX_TOP_LEVEL_MODULES = 16


def _lint(monkeypatch) -> int:
    monkeypatch.chdir(REPO)  # lint-imports reads pyproject.toml and imports tests/ from here
    return lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True)


def test_contracts_are_kept(monkeypatch, capsys) -> None:
    assert _lint(monkeypatch) == 0, capsys.readouterr().out


def test_a_plugin_importing_upward_breaks_the_layers(tmp_path, monkeypatch, capsys) -> None:
    """A copy of methods/ with one module importing the engine, as a method must not."""
    methods = tmp_path / "methods"
    shutil.copytree(REPO / "methods", methods, ignore=shutil.ignore_patterns("__pycache__"))
    (methods / "upward.py").write_text("from fer_bench.training.engine import train\n")
    monkeypatch.syspath_prepend(str(REPO))
    contracts = importlib.import_module("tests.import_contracts")  # the one lint-imports uses
    folders = {**contracts.plugin_folders(), "fer_bench.methods": methods}
    monkeypatch.setattr(contracts, "plugin_folders", lambda: folders)
    assert _lint(monkeypatch) == 1
    out = capsys.readouterr().out
    assert "fer_bench.methods.upward -> fer_bench.training.engine (l.1)" in out


def test_few_top_level_modules() -> None:
    """What does not fit in a subpackage's role stays at the top; few things do."""
    modules = sorted(p.name for p in (REPO / "fer_bench").glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules
