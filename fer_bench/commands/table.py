"""``fer-bench table DIR``: the leaderboard of a results directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fer_bench.aggregate import build_leaderboard
from fer_bench.commands.common import (
    MetricsOption,
    emit,
    err_console,
    one_line_errors,
    parse_metrics,
)
from fer_bench.results import RunSet, scan_runs
from fer_bench.selection import SELECTIONS
from fer_bench.selection_report import selection_report as report
from fer_bench.sweep import build_spec, expand, planned_runs, read_sweep_file
from fer_bench.tables import FORMATS, SUFFIX_FORMATS, render
from fer_bench.tune import TUNING_FILE, tuned_view

Opt = typer.Option


def _format_for(fmt: str | None, out: Path | None) -> str:
    if fmt:
        return fmt
    if out is not None and out.suffix in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[out.suffix]
    return "md"


def register(app: typer.Typer) -> None:
    @app.command()
    @one_line_errors
    def table(
        directory: Annotated[Path, typer.Argument(help="results directory (a sweep's --out)")],
        metric: MetricsOption = None,
        select: Annotated[str, Opt(help=" | ".join(SELECTIONS))] = "val",
        format_: Annotated[
            str | None,
            Opt("--format", help=f"{' | '.join(FORMATS)} (default: from --out's suffix, else md)"),
        ] = None,
        out: Annotated[Path | None, Opt(help="write here instead of printing")] = None,
        sweep: Annotated[
            Path | None,
            Opt(help="the sweep file that filled DIRECTORY: its cells not run yet are shown too"),
        ] = None,
        selection_report: Annotated[
            bool,
            Opt(help="instead: points each paper's selection convention adds to val selection"),
        ] = False,
    ) -> None:
        """Methods x protocols, mean ± std over seeds, best in bold, ties marked."""
        metrics = parse_metrics(metric)
        fmt = _format_for(format_, out)
        if fmt not in FORMATS:
            raise ValueError(f"unknown table format {fmt!r}; known: {', '.join(FORMATS)}")
        runset = scan_runs(directory)
        if sweep is not None:
            spec = build_spec(read_sweep_file(sweep), {}, {})
            runset.runs += planned_runs(expand(spec), runset.root)
        for problem in runset.problems:
            err_console.print(
                f"[yellow]warning:[/] unreadable record {problem.describe()}", highlight=False
            )
        if selection_report:
            emit("\n".join(report(runset, m) for m in metrics), out)
            return
        labels, preamble = _tuned(runset, runset.root)
        boards = [build_leaderboard(runset, m, select, labels) for m in metrics]
        for board in boards:
            board.preamble = preamble
        emit(render(boards, fmt, directory), out)


def _tuned(runset: RunSet, directory: Path) -> tuple[dict[str, str], list[str]]:
    """With a tuning.json: the table shows the confirming runs as tuned rows and leaves
    the search's trials out (a trial is one configuration on one seed, not a result)."""
    path = directory / TUNING_FILE
    if not path.is_file():
        return {}, []
    finals, labels, preamble = tuned_view(json.loads(path.read_text()))
    runset.runs = [r for r in runset.runs if r.name in finals]
    return labels, preamble
