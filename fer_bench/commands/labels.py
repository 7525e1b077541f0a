"""``fer-bench labels``: what a protocol does to the labels, without training."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from fer_bench.atomic import write_text_atomic
from fer_bench.commands.common import console, one_line_errors
from fer_bench.config import DataConfig, ProtocolConfig

if TYPE_CHECKING:  # the data layer and protocols: imported when labels are built
    from fer_bench.training.labels import LabelSet

Opt = typer.Option


def _save(path: Path, labels: LabelSet, names: list[str] | None, classes: tuple[str, ...]) -> None:
    """CSV artifact (index,observed,clean,flipped), or a RAF-DB list for a .txt path."""
    from fer_bench.protocols.labelfile import format_raf_list

    if path.suffix != ".txt":
        labels.save(path)
        return
    if names is None:
        raise ValueError(f"--save {path}: the dataset has no image names for a RAF-DB list")
    text = format_raf_list([names[i] for i in labels.index], labels.observed, classes)
    write_text_atomic(path, text)


def _tables(summary: dict[str, Any], title: str) -> tuple[Table, Table]:
    classes = summary["class_names"]
    counts = Table(title=title)
    for col in ("class", "source", "used", "flipped", "rate", "observed"):
        counts.add_column(col, justify="left" if col == "class" else "right")
    for c, row in enumerate(summary["per_class"]):
        counts.add_row(
            row["class"],
            str(summary["counts_source"][c]),
            str(row["n"]),
            str(row["flipped"]),
            f"{row['rate']:.3f}",
            str(summary["counts_observed"][c]),
        )
    matrix = Table(title="realised transition (row: clean, column: observed)")
    matrix.add_column("clean")
    for name in classes:
        matrix.add_column(name[:5], justify="right")
    for name, row in zip(classes, summary["transition"], strict=True):
        matrix.add_row(name, *(f"{x:.3f}" if x else "." for x in row))
    return counts, matrix


def register(app: typer.Typer) -> None:
    @app.command()
    @one_line_errors
    def labels(
        dataset: Annotated[str, Opt(help="dataset name, or hf:PATH")] = DataConfig.name,
        data_root: Annotated[str | None, Opt(help="dataset folder")] = None,
        label_mode: Annotated[str | None, Opt(help="dataset label rule, e.g. majority")] = None,
        noise: Annotated[float, Opt(help="noise rate in [0, 1)")] = 0.0,
        noise_type: Annotated[str, Opt(help="noise protocol, or file:PATH")] = "symmetric",
        noise_seed: Annotated[int, Opt(help="protocol seed")] = 0,
        imbalance: Annotated[float, Opt(help="imbalance factor n_max/n_min")] = 1.0,
        imbalance_type: Annotated[str, Opt(help="exp | step")] = "exp",
        split: Annotated[str, Opt(help="train | val")] = "train",
        save: Annotated[Path | None, Opt(help="write labels: .csv, or .txt RAF-DB list")] = None,
        as_json: Annotated[bool, Opt("--json", help="one JSON object instead of tables")] = False,
    ) -> None:
        """Show the realised noise rate, transition matrix and class counts of a protocol."""
        from fer_bench.data import load_dataset
        from fer_bench.training.diagnostics import label_summary
        from fer_bench.training.labels import build_split_labels

        if split not in ("train", "val"):
            raise ValueError(f"--split must be train or val (got {split!r}); test labels are clean")
        protocol = ProtocolConfig(
            noise=noise_type,
            noise_rate=noise,
            noise_seed=noise_seed,
            imbalance=imbalance,
            imbalance_type=imbalance_type,
        )
        bundle = load_dataset(DataConfig(name=dataset, root=data_root, label_mode=label_mode))
        source = getattr(bundle, split)
        label_set = build_split_labels(bundle, protocol, split)
        summary = label_summary(label_set, source.labels, bundle.class_names)
        if save is not None:
            _save(save, label_set, source.names, bundle.class_names)
        if as_json:
            record = {
                "dataset": bundle.name,
                "split": split,
                "protocol": dataclasses.asdict(protocol),
                **summary,
            }
            typer.echo(json.dumps(record))
            return
        title = (
            f"{bundle.name} {split}: {noise_type} {noise:g}, seed {noise_seed}, "
            f"imbalance {imbalance:g} ({imbalance_type})"
        )
        for table in _tables(summary, title):
            console.print(table)
        console.print(
            f"realised noise rate {summary['noise_rate']:.4f} on {summary['n_used']} of "
            f"{summary['n_source']} images; labels sha256 {summary['sha256']}"
        )
