"""How much each paper's reporting convention moves a result against honest selection.

For every method and protocol of a board: the mean over seeds of (metric under a
rule) minus (metric under ``val``), for the conventions the FER codes use:
``oracle`` (best test epoch: NLA, RUL code), ``last5`` (EAC's author), ``last``
(RUL's author). Positive = the convention reports more than validation selection.
"""

from __future__ import annotations

from fer_bench.records.reading import RunSet
from fer_bench.records.selection import rule
from fer_bench.reports.aggregate import Leaderboard, build_leaderboard

CONVENTIONS = ("oracle", "last5", "last")
REFERENCE = "val"


def _shift(board: Leaderboard, ref: Leaderboard, row: str, col) -> str:
    cell, base = board.cells[row, col], ref.cells[row, col]
    shared = sorted(set(cell.values) & set(base.values))
    if not shared:
        return "–"
    diff = sum(cell.values[s] - base.values[s] for s in shared) / len(shared)
    return f"{diff * 100:+.2f}"


def selection_report(
    runset: RunSet, metric: str = "acc", labels: dict[str, str] | None = None
) -> str:
    """Markdown: one table per convention, points added to ``val`` per method and column
    (``labels``: row labels beyond the methods', e.g. tuned rows)."""
    ref = build_leaderboard(runset, metric, REFERENCE, labels)
    out = [
        f"## Selection report: {metric}, points each convention adds to `{REFERENCE}`",
        "",
        f"Reference: {rule(REFERENCE).description}. Mean over the seeds both rules have, "
        "in percentage points; positive = the convention reports more.",
        "",
    ]
    for name in CONVENTIONS:
        board = build_leaderboard(runset, metric, name, labels)
        out += [f"### {name}: {rule(name).description}", ""]
        out.append("| Method | " + " | ".join(c.label for c in ref.columns) + " |")
        out.append("| :-- | " + " | ".join("--:" for _ in ref.columns) + " |")
        for row in ref.rows:
            shifts = [_shift(board, ref, row, col) for col in ref.columns]
            out.append(f"| {row} | " + " | ".join(shifts) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
