"""What an equal tuning budget changed, on a board that holds tuned rows.

Per protocol column with a tuned row, per method: its shared-recipe row (untuned),
its tuned row and its official-recipe row, the points tuning moved it and the
points its official recipe gives against the tuned shared one (paired over the
seeds both rows have, with the paired t-test's p), and its rank among those
methods before and after tuning. Merge the untuned board in to get the first
column: ``fer-bench table FAIR_BOARD UNTUNED_BOARD --tuning-report``.
"""

from __future__ import annotations

from collections import defaultdict

from fer_bench.recipes import is_official
from fer_bench.records.reading import ProtocolKey, RunSet
from fer_bench.records.selection import rule
from fer_bench.reports.aggregate import Cell, Leaderboard, build_leaderboard, paired_p
from fer_bench.reports.tables import cell_parts

KINDS = ("shared", "tuned", "official")


def row_kinds(
    board: Leaderboard, runset: RunSet, tuned: set[str]
) -> dict[str, dict[str, list[str]]]:
    """Method -> kind -> its row labels on ``board``. Tuned rows hold the runs ``tuned``
    names (the tuning view's); official ones ran their method's official recipe; the
    rest, shared-recipe."""
    kinds: dict[str, dict[str, list[str]]] = defaultdict(lambda: {k: [] for k in KINDS})
    for run in runset.runs:
        row = board.row_of[run.name]
        if run.name in tuned:
            kind = "tuned"
        elif is_official(run.config):
            kind = "official"
        else:
            kind = "shared"
        if row not in kinds[run.method][kind]:
            kinds[run.method][kind].append(row)
    return kinds


def _mean(cell: Cell | None) -> str:
    """The table's figure and count, so a row of stale or collapsed runs says so here too."""
    if cell is None or not cell.values:
        return "–"
    parts = cell_parts(cell)
    return f"{parts.text} {parts.count}"


def _shift(cell: Cell | None, base: Cell | None) -> str:
    """Mean over shared seeds of cell - base, in points, and the paired p."""
    if cell is None or base is None:
        return "–"
    seeds = sorted(set(cell.values) & set(base.values))
    if not seeds:
        return "–"
    diff = sum(cell.values[s] - base.values[s] for s in seeds) / len(seeds)
    p = paired_p(cell.values, base.values)
    return f"{diff * 100:+.2f}" + (f" (p={p:.3f})" if p is not None else " (untested)")


def ranks(means: dict[str, float]) -> dict[str, int]:
    """1 = best; equal means share the better rank."""
    return {m: 1 + sum(other > v for other in means.values()) for m, v in means.items()}


def _column(board: Leaderboard, col: ProtocolKey, kinds: dict) -> list[str] | None:
    def cell(method: str, kind: str) -> Cell | None:
        rows = kinds[method][kind]  # several rows of one kind: no single figure to report
        found = board.cells.get((rows[0], col)) if len(rows) == 1 else None
        return found if found is not None and found.values else None

    tuned = {m: c for m in sorted(kinds) if (c := cell(m, "tuned")) is not None}
    if not tuned:
        return None
    # both ranks among the same methods: those with a shared-recipe row as well
    shared = {m: c for m in tuned if (c := cell(m, "shared")) is not None}
    before = ranks({m: c.mean for m, c in shared.items()})
    after = ranks({m: tuned[m].mean for m in shared})
    out = [
        f"### {col.label}",
        "",
        "| Method | shared recipe | tuned | tuning moved | official recipe "
        "| official - tuned | rank: shared → tuned |",
        "| :-- | --: | --: | --: | --: | --: | :-: |",
    ]
    for m, picked in tuned.items():
        untuned, official = shared.get(m), cell(m, "official")
        rank = f"{before[m]} → {after[m]}" if m in shared else "–"
        out.append(
            f"| {m} | {_mean(untuned)} | {_mean(picked)} | {_shift(picked, untuned)} "
            f"| {_mean(official)} | {_shift(official, picked)} | {rank} |"
        )
    return out + [""]


def tuning_report(
    runset: RunSet, metric: str = "acc", labels: dict[str, str] | None = None, select: str = "val"
) -> str:
    """Markdown: per column with tuned rows, what tuning and the official recipes moved."""
    labels = labels or {}
    board = build_leaderboard(runset, metric, select, labels)
    kinds = row_kinds(board, runset, set(labels))
    out = [
        f"## Tuning report: {metric}, {rule(select).description}",
        "",
        "Means over seeds in %; moves are paired over the seeds both rows have, in points "
        "(paired t-test p); ranks are among the methods with both a shared-recipe and a "
        "tuned row (1 = best).",
        "",
    ]
    columns = [part for col in board.columns if (part := _column(board, col, kinds))]
    if not columns:
        raise ValueError(f"no tuned rows in {runset.root}: the report needs a tuning.json")
    for part in columns:
        out += part
    several = [
        f"{m}: {len(rows)} {kind}-recipe rows ({'; '.join(rows)}), so no single figure"
        for m, by_kind in sorted(kinds.items())
        for kind, rows in by_kind.items()
        if len(rows) > 1
    ]
    return "\n".join(out + several).rstrip() + "\n"
