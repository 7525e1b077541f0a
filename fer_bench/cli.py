"""The ``fer-bench`` command line. Each sub-command lives in fer_bench/commands/."""

from __future__ import annotations

import warnings

import typer

from fer_bench.commands import register_all


def _one_line_warning(message: Warning | str, category: type[Warning], *_: object) -> str:
    # A warning is a message for the user, not a pointer into fer_bench's source.
    return f"warning: {message}\n"


warnings.formatwarning = _one_line_warning

app = typer.Typer(
    name="fer-bench",
    help="Facial expression recognition under label noise and class imbalance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
register_all(app)
