"""``fer-bench data``: inspect a dataset (``info``); other modules add sub-commands to
:data:`data_app`."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from fer_bench.commands.common import console, one_line_errors
from fer_bench.config import DataConfig

data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _print_summary(stats: dict[str, Any]) -> None:
    splits = list(stats["sizes"])
    table = Table(title=f"{stats['dataset']}: images per class")
    table.add_column("class")
    for s in splits:
        table.add_column(s, justify="right")
    for name in stats["class_names"]:
        table.add_row(name, *(str(stats["class_counts"][s][name]) for s in splits))
    table.add_row("[bold]total", *(f"[bold]{stats['sizes'][s]}" for s in splits))
    console.print(table)
    c, h, w = stats["image_shape"]
    console.print(f"image size: {h}x{w}, {c} channel(s)")
    ratio = stats["imbalance_ratio"]
    console.print(
        "imbalance ratio (train, largest/smallest class): "
        + ("n/a (a class has no image)" if ratio is None else f"{ratio:.1f}")
    )
    if "label_mode" in stats:
        console.print(f"label mode: {stats['label_mode']}")
    for split, rules in stats.get("dropped", {}).items():
        console.print(
            f"dropped from {split}: " + ", ".join(f"{rule} {n}" for rule, n in rules.items())
        )
    if "val_split" in stats:
        console.print(f"val: {stats['val_split']['source']}")
    if "vote_ambiguity" in stats:
        console.print(
            "vote ambiguity (top class under 70% of votes): "
            + ", ".join(f"{s} {_pct(v)}" for s, v in stats["vote_ambiguity"].items())
        )
    if "original_disagreement" in stats:
        console.print(
            "original label differs from the reference label: "
            + ", ".join(
                f"{s} {_pct(v)} of {stats['original_known'][s]}"
                for s, v in stats["original_disagreement"].items()
            )
        )


@data_app.command("info")
@one_line_errors
def info(
    dataset: str = typer.Argument(..., help="registered dataset name, or hf:NAME_OR_PATH"),
    data_root: str | None = typer.Option(None, "--data-root", help="the dataset's folder"),
    label_mode: str | None = typer.Option(
        None, "--label-mode", help="dataset-specific, e.g. majority or basic7"
    ),
    image_size: int = typer.Option(48, "--image-size", help="side of the square images"),
    channels: int = typer.Option(1, "--channels", help="1 (grayscale) or 3 (RGB)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Split sizes, class counts, imbalance and label quality of a dataset."""
    from fer_bench.data import load_dataset  # the loaders: not for --help
    from fer_bench.data.summary import summarize

    cfg = DataConfig(
        name=dataset,
        root=data_root,
        label_mode=label_mode,
        image_size=image_size,
        channels=channels,
    )
    stats = summarize(load_dataset(cfg))
    if as_json:
        typer.echo(json.dumps(stats))
    else:
        _print_summary(stats)


@data_app.command("cache")
@one_line_errors
def cache(
    dataset: str | None = typer.Option(None, "--dataset", help="only this dataset's entries"),
    clear: bool = typer.Option(False, "--clear", help="delete the entries listed"),
) -> None:
    """List the decoded-dataset cache ($FER_BENCH_CACHE); --clear deletes entries.

    Entries are keyed by their sources, so edited label files leave stale ones behind."""
    from fer_bench.data.cache import cache_dir, cache_entries, entry_size

    entries = cache_entries(dataset)
    total = sum(entry_size(p) for p in entries)
    table = Table(title=f"{cache_dir()}: {len(entries)} entries, {total / 2**20:.1f} MiB")
    for column in ("entry", "MiB", "written"):
        table.add_column(column)
    for path in entries:
        written = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        table.add_row(path.name, f"{entry_size(path) / 2**20:.1f}", written)
    console.print(table)
    if clear:
        for path in entries:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        console.print(f"deleted {len(entries)} entries ({total / 2**20:.1f} MiB)")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
