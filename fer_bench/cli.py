"""The ``fer-bench`` command line. Each sub-command lives in fer_bench/commands/."""

from __future__ import annotations

import typer

from fer_bench.commands import register_all

app = typer.Typer(
    name="fer-bench",
    help="Facial expression recognition under label noise and class imbalance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
register_all(app)
