"""``fer-bench compare DIR METHOD``: one method against every other, beyond seed noise?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fer_bench.aggregate import build_leaderboard
from fer_bench.commands.common import MetricsOption, emit, one_line_errors, parse_metrics
from fer_bench.compare import compare as compare_rows
from fer_bench.compare import to_markdown
from fer_bench.results import scan_runs
from fer_bench.selection import SELECTIONS

Opt = typer.Option


def register(app: typer.Typer) -> None:
    @app.command()
    @one_line_errors
    def compare(
        directory: Annotated[Path, typer.Argument(help="results directory (a sweep's --out)")],
        method: Annotated[str, typer.Argument(help="the row to compare, e.g. nla")],
        metric: MetricsOption = None,
        select: Annotated[str, Opt(help=" | ".join(SELECTIONS))] = "val",
        out: Annotated[Path | None, Opt(help="write Markdown here instead of printing")] = None,
    ) -> None:
        """METHOD minus each other method per protocol: paired t-tests over seeds, BH-adjusted."""
        runset = scan_runs(directory)
        parts = []
        for name in parse_metrics(metric):
            board = build_leaderboard(runset, name, select)
            parts.append(to_markdown(board, method, compare_rows(board, method)))
        emit("\n".join(parts), out)
