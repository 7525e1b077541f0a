"""``fer-bench table DIR [DIR...]``: the leaderboard of results directories, merged."""

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
from fer_bench.options import split_list
from fer_bench.records.reading import RunSet
from fer_bench.records.selection import SELECTIONS
from fer_bench.reports.aggregate import build_leaderboard, select_rows_columns
from fer_bench.reports.selection_report import selection_report as report
from fer_bench.reports.tables import FORMATS, render
from fer_bench.reports.tuning_report import tuning_report
from fer_bench.sweeps.sweep import build_spec, expand, planned_runs, read_sweep_file

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
        methods: Annotated[
            str | None,
            Opt(help="comma list of rows to show, by label or method (nla: nla (tuned) too)"),
        ] = None,
        columns: Annotated[
            str | None, Opt(help='comma list of columns to show, by label, e.g. "clean,sym 30%"')
        ] = None,
        dataset: Annotated[
            str | None,
            Opt(help="only the runs on this dataset (default: one table per dataset)"),
        ] = None,
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
        rows, cols = split_list(methods, str, "--methods"), split_list(columns, str, "--columns")
        if rows or cols:
            runset, labels = select_rows_columns(runset, labels, rows, cols)
        groups = _by_dataset(runset, dataset, fmt)
        parts = []
        for group in groups:
            boards = [build_leaderboard(group, m, select, labels, bool(sweeps)) for m in metrics]
            for board in boards:
                board.preamble = preamble
            heading = f"## {group.datasets[0]} ({_runs(len(group.runs))})\n\n"
            parts.append((heading if len(groups) > 1 else "") + render(boards, fmt, directories[0]))
        emit("\n".join(parts), out)


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _by_dataset(runset: RunSet, dataset: str | None, fmt: str) -> list[RunSet]:
    """The runs of each dataset apart: a table compares runs on one dataset, and a folder
    of one's own runs may hold several; --dataset picks one."""
    if dataset is not None:
        return [runset.of_dataset(dataset)]
    if len(runset.datasets) <= 1:
        return [runset]
    if fmt != "md":
        raise ValueError(
            f"{runset.root} holds runs on {len(runset.datasets)} datasets "
            f"({', '.join(runset.datasets)}): give --dataset NAME for a {fmt} table of one, "
            "or --format md for one table per dataset"
        )
    return [runset.of_dataset(name) for name in runset.datasets]
