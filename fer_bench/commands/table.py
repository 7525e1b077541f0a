"""``fer-bench table DIR [DIR...]``: the leaderboard of results directories, merged."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fer_bench.aggregate import build_leaderboard
from fer_bench.commands.common import (
    MetricsOption,
    emit,
    format_for,
    one_line_errors,
    parse_metrics,
    read_rows,
)
from fer_bench.selection import SELECTIONS
from fer_bench.selection_report import selection_report as report
from fer_bench.sweep import build_spec, expand, planned_runs, read_sweep_file
from fer_bench.tables import FORMATS, render
from fer_bench.tuning_report import tuning_report

Opt = typer.Option


def register(app: typer.Typer) -> None:
    @app.command()
    @one_line_errors
    def table(
        directories: Annotated[
            list[Path],
            typer.Argument(help="results directories (a board, a sweep's --out), merged"),
        ],
        metric: MetricsOption = None,
        select: Annotated[str, Opt(help=" | ".join(SELECTIONS))] = "val",
        format_: Annotated[
            str | None,
            Opt("--format", help=f"{' | '.join(FORMATS)} (default: from --out's suffix, else md)"),
        ] = None,
        out: Annotated[Path | None, Opt(help="write here instead of printing")] = None,
        sweep: Annotated[
            list[Path] | None,
            Opt(
                help="a sweep file that filled DIRECTORY (repeat for several): its cells not "
                "run yet are shown too, and cells of no file's grid say so"
            ),
        ] = None,
        selection_report: Annotated[
            bool,
            Opt(help="instead: points each paper's selection convention adds to val selection"),
        ] = False,
        tuning: Annotated[
            bool,
            Opt(
                "--tuning-report",
                help="instead: what equal tuning moved, per method (merge the untuned board in)",
            ),
        ] = False,
    ) -> None:
        """Methods x protocols, mean ± std over seeds, best in bold, ties marked."""
        if selection_report and tuning:
            raise ValueError("--selection-report and --tuning-report are two reports: give one")
        metrics = parse_metrics(metric)
        fmt = format_for(format_, out)
        if fmt not in FORMATS:
            raise ValueError(f"unknown table format {fmt!r}; known: {', '.join(FORMATS)}")
        sweeps = sweep or []
        if sweeps and len(directories) > 1:
            raise ValueError("--sweep shows one directory's grid: give one directory with it")
        runset, labels, preamble = read_rows(directories)
        for file in sweeps:  # grids may share jobs: each is planned once
            spec = build_spec(read_sweep_file(file), {}, {})
            known = {run.path for run in runset.runs}
            planned = planned_runs(expand(spec), runset.root)
            runset.runs += [run for run in planned if run.path not in known]
        if selection_report:
            emit("\n".join(report(runset, m, labels) for m in metrics), out)
            return
        if tuning:
            emit("\n".join(tuning_report(runset, m, labels, select) for m in metrics), out)
            return
        boards = [build_leaderboard(runset, m, select, labels, bool(sweeps)) for m in metrics]
        for board in boards:
            board.preamble = preamble
        emit(render(boards, fmt, directories[0]), out)
