"""``fer-bench data preview DATASET --out grid.png``: a labelled image grid."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fer_bench.commands.common import console, one_line_errors
from fer_bench.commands.data import data_app
from fer_bench.config import DataConfig


def register(app: typer.Typer) -> None:
    @data_app.command()
    @one_line_errors
    def preview(
        dataset: Annotated[str, typer.Argument(help="dataset name, or hf:PATH")] = "synthetic",
        out: Annotated[Path, typer.Option(help="PNG to write")] = Path("grid.png"),
        data_root: Annotated[str | None, typer.Option()] = None,
        label_mode: Annotated[str | None, typer.Option()] = None,
        split: Annotated[str, typer.Option(help="train | val | test")] = "train",
        per_class: Annotated[int, typer.Option(help="images per class")] = 8,
    ) -> None:
        """Write a grid of images, one row per class, titled with the label."""
        from fer_bench.data import load_dataset
        from fer_bench.data.preview import save_grid

        if split not in ("train", "val", "test"):
            raise ValueError(f"--split must be train, val or test (got {split!r})")
        bundle = load_dataset(DataConfig(name=dataset, root=data_root, label_mode=label_mode))
        console.print(f"wrote {save_grid(bundle, out, per_class, split)}")
