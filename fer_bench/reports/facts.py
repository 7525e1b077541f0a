"""Figures a board's README states in prose, recomputed from the board's run records.

A README marks a figure with an HTML comment right after it (invisible when rendered)
holding an expression over the board's records::

    LS (68.75<!-- = acc("ls", "fer2013") --> %) is level with CE
    (+0.57<!-- = minus("ls", "ce", "fer2013") -->)

:func:`check` evaluates each expression and compares it with the figure as written,
rounded to the figure's own decimals (a figure written without a sign is positive).
Between ``<!-- facts: checked -->`` and ``<!-- facts: end -->`` every decimal figure must
carry an expression, so a region's prose cannot state a number no test recomputes.
tests/test_readme_facts.py checks every board's README; after a board is retrained,
``python -m fer_bench.reports.facts results/NAME/README.md --write`` rewrites its marked
figures from the records and lists those that changed.

Expressions see these functions (percentages and points, as the tables print them;
``col`` a column label as the tables write it, e.g. ``"fer2013"``, ``"sym 30%"``;
``row`` a row label, e.g. ``"ce"``, ``"nla (tuned)"``), and min, max, abs:

- ``acc(row, col, metric="acc", select="val")``, ``sd(...)``: a cell's mean and sample std;
- ``value(row, col, seed, metric="acc", select="val")``: one seed's run; ``values(row, col,
  metric="acc", select="val")`` every seed's, ``seeds(row, col)`` the cell's seeds;
- ``minus(a, b, col, metric="acc")``: mean over shared seeds of a - b (``fer-bench compare``);
- ``q(ref, other, col, metric="acc")``: the Benjamini-Hochberg q of ``fer-bench compare
  RUNS ref`` (over all of that comparison's tested pairs) for ``other`` in ``col``;
- ``shift(rule, row, col, metric="acc")``: points a selection rule adds to ``val``
  (``selection_report.md``); ``shifts(rule, *cols)``: every row's shift in those columns;
- ``auroc(row, col, seed, epoch)``: the noise score's AUROC at a 1-based epoch (-1: last);
  ``aurocs(row, col, seed)``: every epoch's;
- ``hparam(row, col, seed, name)``: a run's resolved hyperparameter; ``final(row, col,
  seed)``: its final.json (``final(...)["time_s"]``); ``epochs(row, col, seed)``: its
  metrics.jsonl records;
- ``at(row, col, seed, epoch)``: that epoch's metrics.jsonl record; ``picked(row, col, seed,
  select="val")``: the record a single-epoch rule picks (e.g. ``picked(...)["epoch"]``);
- ``class_acc(row, col, name, select="val")``: a class's test accuracy, mean over seeds;
  ``clean_score(row, col, seed, name, epoch=-1)``: the mean score of a class's unflipped
  training samples (``score_clean_by_class``);
- ``p(a, b, col, metric="acc")``: the paired t-test p of two cells (``tuning_report.md``);
- ``tuning(method, col)``: the method's search in the board's ``tuning.json`` (its
  ``"best"`` trial's ``"values"``, its ``"trials"``);
- ``merged(*boards)``: these functions over several boards' runs merged, named as in
  ``results/`` (``merged("ferplus-cpu-fair", "ferplus-cpu").minus(...)``, the tuning
  report's view), ``merged("ferplus-cpu")`` alone another board's;
- ``all_runs()``: every run and search trial of the board (``run.final``, ``run.epochs``,
  ``run.config``, ``run.method``), with ``label(run)`` and ``column(run)`` its row and
  column (a trial: its method's row), for totals such as
  ``sum(r.final["time_s"] for r in all_runs()) / 3600``; ``picked_run(name, select="val")``:
  the record a rule picks of the run (or trial) of that directory name;
- ``mean(values)``, ``median(values)``, ``sum``, ``len``.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fer_bench.atomic import write_text_atomic
from fer_bench.records.layout import RUNS_DIR
from fer_bench.records.reading import Run, RunSet
from fer_bench.records.selection import rule
from fer_bench.reports.aggregate import Leaderboard, build_leaderboard, paired_p, row_labels
from fer_bench.reports.compare import compare
from fer_bench.reports.merge import scan_boards
from fer_bench.reports.tuned import apply_tuning

NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?"
FACT = re.compile(rf"(?P<number>{NUMBER})(?P<gap> ?%?)<!-- = (?P<expr>.+?) -->")
REGION = re.compile(r"<!-- facts: checked -->(?P<body>.*?)<!-- facts: end -->", re.S)
# A decimal figure in prose (integers are counts, epochs, years and seeds: not required).
DECIMAL = re.compile(r"(?<![\w.])[-+]?\d[\d,]*\.\d+(?![\w.])")
# What the required-figure rule skips in a region: inline code, link targets, the comments.
_SKIPPED = re.compile(r"`[^`]*`|\]\([^)]*\)|<!--.*?-->", re.S)


@dataclass
class Problem:
    line: int
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.text}"


@dataclass
class Board:
    """A board's records, as ``bench/refresh_board.sh`` tables them (tuned rows applied)."""

    runset: RunSet
    labels: dict[str, str]
    results: Path | None = None  # the results/ folder holding the board, for merged()
    _boards: dict[tuple[str, str], Leaderboard] = field(default_factory=dict)

    @classmethod
    def read(cls, *runs: Path) -> Board:
        runset = scan_boards(list(runs))
        labels, _ = apply_tuning(runset)
        board = cls(runset, row_labels(runset.runs, labels))
        board.results = runs[0].resolve().parent.parent
        return board

    def board(self, metric: str, select: str) -> Leaderboard:
        if (metric, select) not in self._boards:
            self._boards[metric, select] = build_leaderboard(
                self.runset, metric, select, self.labels
            )
        return self._boards[metric, select]

    def column(self, board: Leaderboard, label: str) -> Any:
        for col in board.columns:
            if col.label == label:
                return col
        known = ", ".join(c.label for c in board.columns)
        raise ValueError(f"no column {label!r}; columns: {known}")

    def cell_values(self, row: str, col: str, metric: str, select: str) -> dict[int, float]:
        board = self.board(metric, select)
        if row not in board.rows:
            raise ValueError(f"no row {row!r}; rows: {', '.join(board.rows)}")
        return board.cells[row, self.column(board, col)].values

    def run(self, row: str, col: str, seed: int) -> Run:
        board = self.board("acc", "val")
        key = self.column(board, col)
        for run in self.runset.runs:
            if self.labels[run.name] == row and run.protocol == key and run.seed == seed:
                return run
        raise ValueError(f"no run of {row!r} / {col!r} seed {seed}")

    def functions(self) -> dict[str, Callable[..., Any]]:
        def acc(row: str, col: str, metric: str = "acc", select: str = "val") -> float:
            values = self.cell_values(row, col, metric, select)
            return 100 * sum(values.values()) / len(values)

        def sd(row: str, col: str, metric: str = "acc", select: str = "val") -> float:
            values = list(self.cell_values(row, col, metric, select).values())
            mean = sum(values) / len(values)
            return 100 * math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))

        def value(row: str, col: str, seed: int, metric: str = "acc", select: str = "val"):
            return 100 * self.cell_values(row, col, metric, select)[seed]

        def values(row: str, col: str, metric: str = "acc", select: str = "val") -> list[float]:
            return [100 * v for v in self.cell_values(row, col, metric, select).values()]

        def seeds(row: str, col: str) -> list[int]:
            return sorted(self.cell_values(row, col, "acc", "val"))

        @cache
        def comparison(ref: str, metric: str) -> dict[tuple[str, str], Any]:
            return {(c.other, c.protocol.label): c for c in compare(self.board(metric, "val"), ref)}

        def minus(a: str, b: str, col: str, metric: str = "acc") -> float:
            return 100 * comparison(a, metric)[b, col].diff

        def q(ref: str, other: str, col: str, metric: str = "acc") -> float:
            return comparison(ref, metric)[other, col].q

        def shift(rule: str, row: str, col: str, metric: str = "acc") -> float | None:
            mine = self.cell_values(row, col, metric, rule)
            base = self.cell_values(row, col, metric, "val")
            shared = sorted(set(mine) & set(base))
            if not shared:
                return None
            return 100 * sum(mine[s] - base[s] for s in shared) / len(shared)

        def shifts(rule: str, *cols: str) -> list[float]:
            rows = self.board("acc", "val").rows
            found = (shift(rule, row, col) for row in rows for col in cols)
            return [s for s in found if s is not None]

        def auroc(row: str, col: str, seed: int, epoch: int) -> float:
            return at(row, col, seed, epoch)["noise"]["auroc"]

        def aurocs(row: str, col: str, seed: int) -> list[float]:
            return [r["noise"]["auroc"] for r in self.run(row, col, seed).epochs if r["noise"]]

        def hparam(row: str, col: str, seed: int, name: str) -> Any:
            return self.run(row, col, seed).config["experiment"]["hparams"][name]

        def final(row: str, col: str, seed: int) -> dict[str, Any]:
            return self.run(row, col, seed).final

        def epochs(row: str, col: str, seed: int) -> list[dict[str, Any]]:
            return self.run(row, col, seed).epochs

        def at(row: str, col: str, seed: int, epoch: int) -> dict[str, Any]:
            epochs = self.run(row, col, seed).epochs
            return epochs[-1] if epoch == -1 else next(r for r in epochs if r["epoch"] == epoch)

        def picked(row: str, col: str, seed: int, select: str = "val") -> dict[str, Any]:
            return rule(select).epochs(self.run(row, col, seed).epochs)[0]

        def class_acc(row: str, col: str, name: str, select: str = "val") -> float:
            found = []
            for seed in seeds(row, col):
                run = self.run(row, col, seed)
                index = run.final["class_names"].index(name)
                found.append(100 * picked(row, col, seed, select)["test"]["per_class_acc"][index])
            return sum(found) / len(found)

        def clean_score(row: str, col: str, seed: int, name: str, epoch: int = -1) -> float:
            index = self.run(row, col, seed).final["class_names"].index(name)
            return at(row, col, seed, epoch)["noise"]["score_clean_by_class"][index]

        def p(a: str, b: str, col: str, metric: str = "acc") -> float | None:
            return paired_p(
                self.cell_values(a, col, metric, "val"), self.cell_values(b, col, metric, "val")
            )

        def tuning(method: str, col: str) -> dict[str, Any]:
            (record,) = self.runset.tuning.values()
            return record["groups"][f"{method} / {col}"]

        @cache
        def merged(*boards: str) -> SimpleNamespace:
            assert self.results is not None, "merged() needs a board read from results/NAME/runs"
            other = Board.read(*(self.results / name / RUNS_DIR for name in boards))
            return SimpleNamespace(**other.functions())

        def picked_run(name: str, select: str = "val") -> dict[str, Any]:
            (run,) = [r for r in all_runs() if r.name == name]
            return rule(select).epochs(run.epochs)[0]

        def all_runs() -> list[Run]:
            return self.runset.runs + self.runset.trials

        def label(run: Run) -> str:
            return self.labels.get(run.name, run.method)

        def column(run: Run) -> str:
            return run.protocol.label

        def mean(values: list[float]) -> float:
            return sum(values) / len(values)

        named = (acc, sd, value, values, seeds, minus, q, shift, shifts, auroc, aurocs, hparam)
        named += (final, epochs, at, picked, class_acc, clean_score, p, tuning, merged)
        named += (
            picked_run,
            all_runs,
            label,
            column,
            mean,
            statistics.median,
            min,
            max,
            abs,
            sum,
            len,
        )
        return {f.__name__: f for f in named}


def _as_written(number: str) -> tuple[float, int]:
    digits = number.replace(",", "").lstrip("+")
    decimals = len(digits.partition(".")[2])
    return float(digits), decimals


def _shown(number: str, value: float) -> str:
    """``value`` written as ``number`` is: its decimals, a + sign, thousands commas."""
    decimals = _as_written(number)[1]
    spec = ("+" if number.startswith("+") else "") + ("," if "," in number else "")
    return f"{value:{spec}.{decimals}f}"


def rewrite(text: str, board: Board) -> tuple[str, list[str]]:
    """``text`` with every marked figure recomputed from the records, as it was written
    (decimals, sign, commas), and a line per figure that changed: after a board is
    retrained, the prose around a changed figure needs rereading (a sign may have
    flipped what "above" or "level" says)."""
    namespace = {"__builtins__": {}, **board.functions()}
    changed = []

    def fill(match: re.Match[str]) -> str:
        shown = _shown(match["number"], eval(match["expr"], namespace))
        if float(shown.replace(",", "")) != _as_written(match["number"])[0]:
            line = text.count("\n", 0, match.start()) + 1
            changed.append(f"line {line}: {match['number']} -> {shown} ({match['expr']})")
        return f"{shown}{match['gap']}<!-- = {match['expr']} -->"

    return FACT.sub(fill, text), changed


def check(text: str, board: Board) -> list[Problem]:
    """Every marked figure of ``text`` against the records, and every decimal figure of a
    checked region marked; returns what does not hold (empty: all hold)."""
    problems = []
    namespace = {"__builtins__": {}, **board.functions()}
    for match in FACT.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        written = _as_written(match["number"])[0]
        try:
            got = eval(match["expr"], namespace)  # the repository's own README: trusted text
        except Exception as err:  # a fact that cannot be computed is a failed fact
            problems.append(Problem(line, f"{match['expr']}: {type(err).__name__}: {err}"))
            continue
        shown = _shown(match["number"], got)
        if float(shown.replace(",", "")) != written:
            problems.append(
                Problem(
                    line, f"states {match['number']}, the records give {shown} ({match['expr']})"
                )
            )
    for region in REGION.finditer(text):
        body = region["body"]
        marked = {m.start("number") for m in FACT.finditer(body)}
        plain = _SKIPPED.sub(lambda m: " " * len(m[0]), body)
        for number in DECIMAL.finditer(plain):
            if number.start() not in marked:
                line = text.count("\n", 0, region.start("body") + number.start()) + 1
                problems.append(Problem(line, f"{number[0]} in a checked region has no fact"))
    return problems


def main() -> None:
    """``python -m fer_bench.reports.facts results/NAME/README.md [--write]``: check a board
    README's figures against its records; ``--write`` rewrites the marked figures from
    the records and lists those that changed (reread the prose around them)."""
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("readme", type=Path)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    board = Board.read(args.readme.parent / RUNS_DIR)
    text = args.readme.read_text()
    if args.write:
        text, changed = rewrite(text, board)
        write_text_atomic(args.readme, text)
        print("\n".join(changed) or "no figure changed")
    problems = check(text, board)
    print("\n".join(map(str, problems)) or "every marked figure holds")
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
