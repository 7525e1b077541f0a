"""``fer-bench compare DIR [DIR...] METHOD``: one method against every other, beyond seed noise?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fer_bench.commands.common import (
    MetricsOption,
    emit,
    format_for,
    one_line_errors,
    parse_metrics,
    read_rows,
)
from fer_bench.records.selection import SELECTIONS
from fer_bench.reports.aggregate import build_leaderboard
from fer_bench.reports.compare import RENDERERS
from fer_bench.reports.compare import compare as compare_rows

Opt = typer.Option


def register(app: typer.Typer) -> None:
    @app.command()
    @one_line_errors
    def compare(
        directories: Annotated[
            list[Path],
            typer.Argument(help="results directories (a board, a sweep's --out), merged"),
        ],
        method: Annotated[str, typer.Argument(help='the row, e.g. nla or "nla (tuned)"')],
        metric: MetricsOption = None,
        select: Annotated[str, Opt(help=" | ".join(SELECTIONS))] = "val",
        format_: Annotated[
            str | None,
            Opt("--format", help="md | latex (default: from --out's suffix, else md)"),
        ] = None,
        out: Annotated[Path | None, Opt(help="write here instead of printing")] = None,
    ) -> None:
        """METHOD minus each other method per protocol: paired t-tests over seeds, BH-adjusted."""
        fmt = format_for(format_, out)
        if fmt not in RENDERERS:
            raise ValueError(f"unknown comparison format {fmt!r}; known: {', '.join(RENDERERS)}")
        runset, labels, _ = read_rows(directories)
        parts = []
        for name in parse_metrics(metric):
            board = build_leaderboard(runset, name, select, labels)
            parts.append(RENDERERS[fmt](board, method, compare_rows(board, method)))
        emit("\n".join(parts), out)
