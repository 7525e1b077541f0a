"""Sub-commands. Each module defines ``register(app)`` and owns its commands."""

from __future__ import annotations

import importlib

import typer

# Modules are imported lazily by name so a missing optional one never breaks the CLI.
COMMAND_MODULES = ("run", "listing", "data", "preview", "labels", "sweep", "table", "plot")


def register_all(app: typer.Typer) -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"fer_bench.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"fer_bench.commands.{name}":
                raise
            continue
        module.register(app)
