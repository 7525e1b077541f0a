"""``fer-bench plot DIR [DIR...] --out FIGDIR``: PNG figures of results directories, merged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fer_bench.aggregate import METRICS
from fer_bench.commands.common import console, err_console, one_line_errors
from fer_bench.merge import scan_boards
from fer_bench.plots import plot_all, save_png, tuning_spread
from fer_bench.results import RunState
from fer_bench.selection import SELECTIONS
from fer_bench.tune import TUNING_FILE

Opt = typer.Option


def register(app: typer.Typer) -> None:
    @app.command()
    @one_line_errors
    def plot(
        directories: Annotated[
            list[Path],
            typer.Argument(help="results directories (a board, a sweep's --out), merged"),
        ],
        out: Annotated[Path, Opt(help="folder for the PNG files")],
        metric: Annotated[str, Opt(help=" | ".join(METRICS))] = "acc",
        select: Annotated[str, Opt(help=" | ".join(SELECTIONS))] = "val",
    ) -> None:
        """Accuracy vs noise, per-class accuracy, training curves, clean-vs-flipped scores."""
        if select not in SELECTIONS:
            raise ValueError(f"unknown selection rule {select!r}; known: {', '.join(SELECTIONS)}")
        runset = scan_boards(directories)
        written = plot_all(runset, out, metric, select)
        if len(directories) == 1 and (tuning := directories[0] / TUNING_FILE).is_file():
            runs = {r.name: r for r in runset.runs if r.state is RunState.DONE}
            fig = tuning_spread(json.loads(tuning.read_text()), runs, metric)
            if fig is not None:
                written.append(save_png(fig, out / "tuning_spread.png"))
        problems = runset.problems + [p for run in runset.runs for p in run.problems]
        for problem in problems:
            err_console.print(
                f"[yellow]warning:[/] unreadable record {problem.describe()}", highlight=False
            )
        for path in written:
            console.print(str(path), highlight=False)
