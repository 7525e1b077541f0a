"""Render leaderboards as Markdown, LaTeX (booktabs), CSV or HTML.

Every format carries the same facts: the selection rule, mean ± std with n,
best cell in bold, the significance marks, and footnotes for runs that are
missing, failed, incomplete or unreadable.
"""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fer_bench.reports.aggregate import ALPHA, MIN_PAIRED_SEEDS, Cell, Leaderboard

FORMATS = ("md", "latex", "csv", "html")
SUFFIX_FORMATS = {".md": "md", ".tex": "latex", ".csv": "csv", ".html": "html", ".htm": "html"}
MARKS = {"tie": "≈", "untested": "?"}


def legend(board: Leaderboard) -> str:
    # A column with no cell of two seeds bolds its best single seed (aggregate._mark_best).
    single = any(c.best and c.n < MIN_PAIRED_SEEDS for c in board.cells.values())
    among = " (in a column with none, among all cells)" if single else ""
    return (
        "Mean ± sample std over training seeds, n = seeds with a result (of those in the "
        f"directory). Bold: best mean in the column among cells with two or more seeds{among}. "
        "≈: not significantly different from the best (paired t-test over shared seeds, p ≥ "
        f"{ALPHA:g}). ?: untested (fewer than {MIN_PAIRED_SEEDS} seeds shared with the best)."
    )


def _number(cell: Cell) -> str:
    mean = f"{cell.mean * 100:.2f}"  # type: ignore[operator]
    return mean if cell.std is None else f"{mean} ± {cell.std * 100:.2f}"


def _count(cell: Cell) -> str:
    count = f"n={cell.n}" if cell.n == cell.n_expected else f"n={cell.n}/{cell.n_expected}"
    stale = f", {cell.stale} stale" if cell.stale else ""
    return count + stale + (f", {cell.collapsed} collapsed" if cell.collapsed else "")


def _setting_line(board: Leaderboard) -> str:
    parts = [f"{name} {value}" for name, value in board.setting]
    parts.append("seeds " + ", ".join(map(str, board.seeds)))
    if board.progress:
        done, planned = board.progress
        parts.append(f"{done} of {planned} planned runs done (n=k/N: seeds with a result)")
    return " · ".join(parts)


def sources_line(board: Leaderboard) -> str:
    """The directories a merged board read, or "" for one directory."""
    if not board.sources:
        return ""
    return (
        f"Runs from {len(board.sources)} directories, checked comparable (same dataset, "
        "label mode, recipe, epochs, protocol seed and precision asked for): "
        + "; ".join(board.sources)
        + "."
    )


def _header_texts(board: Leaderboard) -> list[str]:
    """Paragraphs under the setting line: the merged directories, then the preamble."""
    return [text for text in (sources_line(board), *board.preamble) if text]


def _problem_lines(board: Leaderboard, root: Path | None) -> list[str]:
    return [p.describe(root) for p in board.problems]


@dataclass(frozen=True)
class CellParts:
    text: str  # "71.20 ± 0.45", or the status of an empty cell (missing, failed, ...)
    bold: bool
    count: str  # "(n=3)", empty for an empty cell
    mark: str  # significance mark, or ""
    note: int | None


def cell_parts(cell: Cell) -> CellParts:
    if not cell.values:
        return CellParts(cell.status, False, "", "", cell.note)
    return CellParts(
        _number(cell),
        cell.best,
        f"({_count(cell)})",
        MARKS.get(cell.versus_best or "", ""),
        cell.note,
    )


def to_markdown(boards: list[Leaderboard], root: Path | None = None) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    def fmt(p: CellParts) -> str:
        words = [
            f"**{p.text}**" if p.bold else p.text,
            p.count,
            p.mark,
            f"[{p.note}]" if p.note else "",
        ]
        return esc(" ".join(w for w in words if w))

    out: list[str] = []
    for board in boards:
        out += [
            f"### {board.title}",
            "",
            f"Model selection: {board.selection_text}.",
            "",
            f"Setting: {_setting_line(board)}.",
            "",
            *[line for text in _header_texts(board) for line in (text, "")],
        ]
        out.append("| Method | " + " | ".join(esc(c.label) for c in board.columns) + " |")
        out.append("| :-- | " + " | ".join("--:" for _ in board.columns) + " |")
        for row in board.rows:
            cells = [fmt(cell_parts(board.cells[row, col])) for col in board.columns]
            out.append(f"| {esc(row)} | " + " | ".join(cells) + " |")
        out += ["", legend(board)]
        if board.notes:
            out += [""] + [f"- [{i}] {text}" for i, text in enumerate(board.notes, 1)]
        if board.problems:
            out += ["", "Unreadable records (left out):", ""]
            out += [f"- {line}" for line in _problem_lines(board, root)]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "≈": r"$\approx$",
    "≥": r"$\geq$",
    "·": r"$\cdot$",
}


def tex(s: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in s)


# The packages the LaTeX table needs, named on its first line (booktabs: the rules;
# graphicx: \resizebox, which narrows a table wider than the text, e.g. on a portrait page).
LATEX_PACKAGES = ("booktabs", "graphicx")
_LATEX_EMPTY = "--"  # a cell of the grid without a result (a cell outside it is left empty)


def _latex_cell(cell: Cell, usual_count: str) -> str:
    """The compact cell: the mean (bold for the best), the std in small type, the seed
    count only where it is not the table's usual one and no note explains it, the mark
    and the note."""
    if not cell.values:
        text = "" if cell.status == "not in grid" else _LATEX_EMPTY
        return text + (f"$^{{{cell.note}}}$" if cell.note else "")
    mean = f"{cell.mean * 100:.2f}"  # type: ignore[operator]
    words = [rf"\textbf{{{mean}}}" if cell.best else mean]
    if cell.std is not None:
        words[0] += rf"{{\scriptsize$\pm${cell.std * 100:.2f}}}"
    count = f"({_count(cell)})"
    if count != usual_count and not cell.note:  # a note says what the count would (stale, ...)
        words.append(rf"{{\scriptsize {tex(count)}}}")
    if mark := MARKS.get(cell.versus_best or "", ""):
        words.append(tex(mark))
    return " ".join(words) + (f"$^{{{cell.note}}}$" if cell.note else "")


def _usual_count(board: Leaderboard) -> str:
    counts = Counter(f"({_count(c)})" for c in board.cells.values() if c.values)
    return counts.most_common(1)[0][0] if counts else ""


def to_latex(boards: list[Leaderboard], root: Path | None = None) -> str:
    """One table environment per board, compact enough for a paper: narrowed to the text
    width where wider; select rows and columns with ``fer-bench table --methods/--columns``."""
    out = [
        rf"% fer-bench table: needs \usepackage{{{','.join(LATEX_PACKAGES)}}} in the preamble",
        "",
    ]
    for board in boards:
        usual = _usual_count(board)
        seeds = f" Cells without a count: {usual[1:-1]}." if usual else ""
        out += [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            rf"\caption{{{tex(board.title)}. Model selection: {tex(board.selection_text)}. "
            rf"{tex(_setting_line(board))}.{''.join(' ' + tex(t) for t in _header_texts(board))}}}",
            r"\setlength{\tabcolsep}{4pt}",
            r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
            rf"\begin{{tabular}}{{l{'r' * len(board.columns)}}}",
            r"\toprule",
            "Method & " + " & ".join(tex(c.label) for c in board.columns) + r" \\",
            r"\midrule",
        ]
        for row in board.rows:
            cells = [_latex_cell(board.cells[row, col], usual) for col in board.columns]
            out.append(tex(row) + " & " + " & ".join(cells) + r" \\")
        out += [
            r"\bottomrule",
            r"\end{tabular}}",
            "",
            r"\par\smallskip\raggedright\footnotesize "
            + tex(legend(board) + seeds)
            + rf" {_LATEX_EMPTY}: no result in a cell of the grid; empty: not in the grid.",
        ]
        out += [rf"\\ $^{{{i}}}$ {tex(text)}" for i, text in enumerate(board.notes, 1)]
        out += [
            rf"\\ Unreadable record (left out): {tex(line)}" for line in _problem_lines(board, root)
        ]
        out += [r"\end{table}", ""]
    return "\n".join(out)


CSV_COLUMNS = (
    "table",
    "selection",
    "method",
    "protocol",
    "mean",
    "std",
    "n",
    "n_expected",
    "best",
    "vs_best",
    "p_value",
    "status",
    "note",
)


def to_csv(boards: list[Leaderboard], root: Path | None = None) -> str:
    """One line per cell, numbers in percent; notes spelled out, not numbered."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for board in boards:
        for row in board.rows:
            for col in board.columns:
                c = board.cells[row, col]
                writer.writerow(
                    [
                        board.metric,
                        board.selection,
                        row,
                        col.label,
                        "" if c.mean is None else f"{c.mean * 100:.4f}",
                        "" if c.std is None else f"{c.std * 100:.4f}",
                        c.n,
                        c.n_expected,
                        int(c.best),
                        c.versus_best or "",
                        "" if c.p_value is None else f"{c.p_value:.4g}",
                        c.status,
                        board.notes[c.note - 1] if c.note else "",
                    ]
                )
    return buf.getvalue()


def to_html(boards: list[Leaderboard], root: Path | None = None) -> str:
    esc = html.escape

    def fmt(p: CellParts) -> str:
        words = [f"<b>{esc(p.text)}</b>" if p.bold else esc(p.text), esc(p.count), esc(p.mark)]
        return " ".join(w for w in words if w) + (f"<sup>{p.note}</sup>" if p.note else "")

    out: list[str] = []
    for board in boards:
        out += [
            '<section class="fer-bench-table">',
            f"<h3>{esc(board.title)}</h3>",
            f"<p>Model selection: {esc(board.selection_text)}.</p>",
            f"<p>Setting: {esc(_setting_line(board))}.</p>",
            *[f"<p>{esc(text)}</p>" for text in _header_texts(board)],
            "<table>",
            "<thead><tr><th>Method</th>"
            + "".join(f"<th>{esc(c.label)}</th>" for c in board.columns)
            + "</tr></thead>",
            "<tbody>",
        ]
        for row in board.rows:
            tds = "".join(
                f"<td>{fmt(cell_parts(board.cells[row, col]))}</td>" for col in board.columns
            )
            out.append(f"<tr><th>{esc(row)}</th>{tds}</tr>")
        out += ["</tbody>", "</table>", f"<p>{esc(legend(board))}</p>"]
        if board.notes:
            out.append("<ol>" + "".join(f"<li>{esc(t)}</li>" for t in board.notes) + "</ol>")
        if board.problems:
            out.append(
                "<p>Unreadable records (left out):</p><ul>"
                + "".join(f"<li>{esc(p)}</li>" for p in _problem_lines(board, root))
                + "</ul>"
            )
        out += ["</section>", ""]
    return "\n".join(out)


RENDERERS: dict[str, Callable[[list[Leaderboard], Path | None], str]] = {
    "md": to_markdown,
    "latex": to_latex,
    "csv": to_csv,
    "html": to_html,
}


def render(boards: list[Leaderboard], fmt: str, root: Path | None = None) -> str:
    if fmt not in RENDERERS:
        raise ValueError(f"unknown table format {fmt!r}; known: {', '.join(FORMATS)}")
    return RENDERERS[fmt](boards, root)
