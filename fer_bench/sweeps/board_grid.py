"""A committed board's grid for new methods: ``fer-bench sweep --board results/NAME``.

The board's sweep file (``results/NAME/sweep.toml``) gives the grid (protocols,
seeds, protocol seed) and the recipe; the board's run records are the check.
The new methods' jobs must cover exactly the board's (protocol, seed) cells
with the settings its runs have (:mod:`fer_bench.reports.comparable`), so a sweep file
or a profile that drifted from what the board ran is an error, not a new
table. Other methods' hyperparameter variants (``[hparams.nla]``) are not part
of the grid; values the file gives every method (``[hparams."*"]``) are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fer_bench.config import RunConfig
from fer_bench.records.identity import experiment
from fer_bench.records.layout import RUNS_DIR, SWEEP_FILE
from fer_bench.records.reading import ProtocolKey, RunSet, scan_runs
from fer_bench.reports import comparable
from fer_bench.sweeps.sweep import ALL_METHODS, SweepSpec, build_spec, read_sweep_file


def board_home(board: Path) -> Path:
    """The board directory (results/NAME) of ``board``, which may name its runs/."""
    if board.name == RUNS_DIR and not (board / SWEEP_FILE).is_file():
        return board.parent
    return board


def board_spec(
    board: Path, methods: list[str], hparams: dict[str, dict[str, str]] | None, base: dict
) -> SweepSpec:
    """The board's grid and recipe for ``methods``; ``base``: where and how to run
    (--data-root, --device, --plugin), which no run's identity holds."""
    path = board_home(board) / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no {SWEEP_FILE} in {board_home(board)}: a board's grid is read from it"
        )
    values = read_sweep_file(path)
    values.pop("out", None)
    shared = {m: v for m, v in values.get("hparams", {}).items() if m == ALL_METHODS}
    values["hparams"] = shared
    return build_spec(values, {"methods": methods, "hparams": hparams}, base)


def _cell(identity: dict[str, Any]) -> tuple[str, int]:
    protocol = {k: v for k, v in identity["protocol"].items() if k != "noise_seed"}
    return json.dumps(protocol, sort_keys=True), int(identity["seed"])


def _describe(cells: set[tuple[str, int]]) -> str:
    shown = sorted(
        f"{ProtocolKey.from_config({'protocol': json.loads(p)}).label} seed {seed}"
        for p, seed in cells
    )
    return ", ".join(shown[:4]) + (f" and {len(shown) - 4} more" if len(shown) > 4 else "")


def check_grid(board: Path, jobs: list[RunConfig]) -> RunSet:
    """Refuse jobs that are not the board's grid: other (protocol, seed) cells, or
    other settings than its runs'. Returns the board's runs."""
    board_runs = scan_runs(board)
    if not board_runs.runs:
        raise ValueError(f"no readable run records in {board_runs.root}")
    planned = [experiment(cfg) for cfg in jobs]
    recorded = {_cell(r.identity) for r in board_runs.runs}
    cells = {_cell(identity) for identity in planned}
    if cells != recorded:
        gaps = [
            f"{what}: {_describe(found)}"
            for what, found in (
                ("planned, not on the board", cells - recorded),
                ("on the board, not planned", recorded - cells),
            )
            if found
        ]
        raise ValueError(
            f"{board_home(board) / SWEEP_FILE} does not reproduce the board's runs ("
            + "; ".join(gaps)
            + ")"
        )
    comparable.check(
        [
            (str(board_runs.root), [comparable.settings(r.identity) for r in board_runs.runs]),
            (f"the jobs {SWEEP_FILE} plans", [comparable.settings(i) for i in planned]),
        ]
    )
    return board_runs


def check_out(out: Path, board: Path) -> None:
    """New runs go beside the board, never into it: ``table`` merges the two."""
    home = board_home(board).resolve()
    if out.resolve() in (home, home / RUNS_DIR):
        raise ValueError(
            f"--out {out} is the board's own directory: write the new runs elsewhere, e.g. "
            f"--out my-runs (`fer-bench table {board} my-runs` merges them)"
        )
