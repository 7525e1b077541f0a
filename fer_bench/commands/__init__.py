"""Sub-commands. Each module defines ``register(app)`` and owns its commands.

The top layer but ``cli``: may import every other part; nothing but ``cli`` imports it.
A command imports torch only where it trains (pyproject's import-linter contracts)."""

from __future__ import annotations

import typer

from fer_bench.commands import (
    compare,
    data,
    labels,
    listing,
    plot,
    preview,
    run,
    sweep,
    table,
    tune,
)

# `data` before `preview`: preview adds itself to the `data` sub-app.
COMMAND_MODULES = (run, listing, data, preview, labels, sweep, tune, table, compare, plot)


def register_all(app: typer.Typer) -> None:
    for module in COMMAND_MODULES:
        module.register(app)
