"""``fer-bench plot DIR [DIR...] --out FIGDIR``: PNG figures of results directories, merged."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fer_bench.commands.common import (
    console,
    one_line_errors,
    read_rows,
    warn_unreadable,
)
from fer_bench.options import split_list
from fer_bench.records.layout import RUNS_DIR
from fer_bench.records.selection import SELECTIONS
from fer_bench.reports.aggregate import METRICS

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
        highlight: Annotated[
            str | None,
            Opt(
                help="comma list of rows drawn over the others, by label or method (default, "
                "for several directories: the rows of every directory after the first)"
            ),
        ] = None,
    ) -> None:
        """Accuracy vs noise, per-class accuracy, training curves, clean-vs-flipped scores."""
        from fer_bench.reports.plots import plot_all, save_png, tuning_spread  # matplotlib: slow

        if select not in SELECTIONS:
            raise ValueError(f"unknown selection rule {select!r}; known: {', '.join(SELECTIONS)}")
        runset, labels, _ = read_rows(directories)
        chosen = split_list(highlight, str, "--highlight")
        written = plot_all(runset, out, metric, select, labels, chosen)
        one = len(runset.tuning) == 1
        for root, record in runset.tuning.items():
            trials = {r.name: r for r in runset.trials if r.path.parent == root}
            fig = tuning_spread(record, trials, metric)
            name = "tuning_spread" if one else f"tuning_spread_{_board_name(root)}"
            if fig is not None:
                written.append(save_png(fig, out / f"{name}.png"))
        warn_unreadable([p for run in runset.runs + runset.trials for p in run.problems])
        for path in written:
            console.print(str(path), highlight=False)


def _board_name(root: Path) -> str:
    """A board's name from its runs directory (results/NAME/runs) or a sweep's --out."""
    from fer_bench.reports.plots import slug

    return slug(root.parent.name if root.name == RUNS_DIR else root.name)
