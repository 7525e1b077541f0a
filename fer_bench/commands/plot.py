"""``fer-bench plot DIR [DIR...] --out FIGDIR``: PNG figures of results directories, merged."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fer_bench.aggregate import METRICS
from fer_bench.commands.common import console, err_console, one_line_errors
from fer_bench.merge import scan_boards
from fer_bench.plots import plot_all, save_png, slug, tuning_spread
from fer_bench.results import RunState
from fer_bench.selection import SELECTIONS
from fer_bench.tune import apply_tuning

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
        done = [r for r in runset.runs if r.state is RunState.DONE]  # trials included
        labels, _ = apply_tuning(runset)
        written = plot_all(runset, out, metric, select, labels)
        one = len(runset.tuning) == 1
        for root, record in runset.tuning.items():
            trials = {r.name: r for r in done if r.path.parent == root}
            fig = tuning_spread(record, trials, metric)
            name = "tuning_spread" if one else f"tuning_spread_{_board_name(root)}"
            if fig is not None:
                written.append(save_png(fig, out / f"{name}.png"))
        problems = runset.problems + [p for run in runset.runs for p in run.problems]
        for problem in problems:
            err_console.print(
                f"[yellow]warning:[/] unreadable record {problem.describe()}", highlight=False
            )
        for path in written:
            console.print(str(path), highlight=False)


def _board_name(root: Path) -> str:
    """A board's name from its runs directory (results/NAME/runs) or a sweep's --out."""
    return slug(root.parent.name if root.name == "runs" else root.name)
