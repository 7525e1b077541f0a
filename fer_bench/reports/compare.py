"""One method against every other row of a leaderboard, protocol by protocol.

Answers "does METHOD beat baseline B under protocol P beyond seed noise?": for
each (P, B) the mean of METHOD - B over the training seeds both have, a paired
t-test over those seeds, and p-values adjusted with Benjamini-Hochberg over all
pairs of the table, because a table makes many comparisons at once.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from fer_bench.records.reading import ProtocolKey
from fer_bench.reports.aggregate import ALPHA, MIN_PAIRED_SEEDS, Leaderboard, paired_p
from fer_bench.reports.tables import sources_line, tex


@dataclass(frozen=True)
class Comparison:
    protocol: ProtocolKey
    other: str
    n: int  # training seeds both have a result for
    diff: float | None  # mean over those seeds of method - other (fraction)
    p: float | None  # paired t-test; None below 2 shared seeds
    q: float | None = None  # p adjusted over the table (Benjamini-Hochberg)

    @property
    def verdict(self) -> str:
        if self.diff is None:
            return "no shared seeds"
        if self.q is None:
            return "untested"
        if self.q >= ALPHA:
            return "no difference shown"
        return "better" if self.diff > 0 else "worse"


def compare(board: Leaderboard, method: str) -> list[Comparison]:
    """``method`` against every other row in every column of ``board``."""
    if method not in board.rows:
        raise ValueError(f"no row {method!r} in the table; rows: {', '.join(board.rows)}")
    if len(board.rows) < 2:
        raise ValueError(f"nothing to compare: {method!r} is the table's only row")
    out = []
    for col in board.columns:
        mine = board.cells[method, col].values
        for other in board.rows:
            if other == method:
                continue
            theirs = board.cells[other, col].values
            shared = sorted(set(mine) & set(theirs))
            diff = statistics.fmean(mine[s] - theirs[s] for s in shared) if shared else None
            out.append(Comparison(col, other, len(shared), diff, paired_p(mine, theirs)))
    tested = [c for c in out if c.p is not None]
    if tested:
        from scipy.stats import false_discovery_control  # slow to import: only when used

        adjusted = false_discovery_control([c.p for c in tested], method="bh")
        q_of = {id(c): float(q) for c, q in zip(tested, adjusted, strict=True)}
        out = [Comparison(c.protocol, c.other, c.n, c.diff, c.p, q_of.get(id(c))) for c in out]
    return out


def _cell(c: Comparison) -> str:
    if c.diff is None:
        return "–"
    text = f"{c.diff * 100:+.2f} (n={c.n}"
    text += f", q={c.q:.3f})" if c.q is not None else ")"
    return f"**{text}**" if c.verdict in ("better", "worse") else text


def _legend(method: str, comparisons: list[Comparison]) -> str:
    return (
        f"Points of {method} minus the row's method, mean over the training seeds both "
        "have (n). q: paired t-test p-value over those seeds, Benjamini-Hochberg adjusted "
        f"over the {sum(c.p is not None for c in comparisons)} tested pairs of this table. "
        f"Bold: q < {ALPHA:g}, a difference beyond seed noise. No q: fewer than "
        f"{MIN_PAIRED_SEEDS} shared seeds, untested."
    )


def _grid(board: Leaderboard, method: str, comparisons: list[Comparison]) -> list[list[Comparison]]:
    """Rows of the comparison: one per other method, one cell per protocol."""
    by_pair = {(c.other, c.protocol): c for c in comparisons}
    others = [r for r in board.rows if r != method]
    return [[by_pair[other, col] for col in board.columns] for other in others]


def to_markdown(board: Leaderboard, method: str, comparisons: list[Comparison]) -> str:
    lines = [
        f"### {method} minus each method: {board.title}",
        "",
        f"Model selection: {board.selection_text}.",
        "",
        *([sources_line(board), ""] if board.sources else []),
        "| Method | " + " | ".join(c.label for c in board.columns) + " |",
        "| :-- | " + " | ".join("--:" for _ in board.columns) + " |",
    ]
    for row in _grid(board, method, comparisons):
        lines.append(f"| {row[0].other} | " + " | ".join(map(_cell, row)) + " |")
    lines += ["", _legend(method, comparisons), ""]
    return "\n".join(lines)


def _latex_cell(c: Comparison) -> str:
    text = _cell(c)
    if text.startswith("**"):
        return rf"\textbf{{{tex(text.strip('*'))}}}"
    return tex(text)


def to_latex(board: Leaderboard, method: str, comparisons: list[Comparison]) -> str:
    """The comparison as a booktabs table, with the same facts as :func:`to_markdown`."""
    caption = f"{method} minus each method: {board.title}. Model selection: "
    caption += f"{board.selection_text}. " + (sources_line(board) + " " if board.sources else "")
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{tex(caption + _legend(method, comparisons))}}}",
        rf"\begin{{tabular}}{{l{'r' * len(board.columns)}}}",
        r"\toprule",
        "Method & " + " & ".join(tex(c.label) for c in board.columns) + r" \\",
        r"\midrule",
    ]
    for row in _grid(board, method, comparisons):
        lines.append(tex(row[0].other) + " & " + " & ".join(map(_latex_cell, row)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


RENDERERS = {"md": to_markdown, "latex": to_latex}
