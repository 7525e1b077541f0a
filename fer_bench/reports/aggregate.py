"""Leaderboards from run records: methods x protocols, mean ± std over seeds, paired tests.

The expected grid is every row seen in the directory times every protocol seen
in it, over every training seed seen in it, so a run that never happened or
did not finish shows as such instead of shrinking the table. Runs a sweep
planned but has not started (state TODO) widen the grid the same way.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fer_bench.recipes import is_official
from fer_bench.records.identity import resolved_hparams, row_identity
from fer_bench.records.reading import Problem, ProtocolKey, Run, RunSet, RunState
from fer_bench.records.selection import SELECTIONS, collapse_note, rule
from fer_bench.registry import RegistryError
from fer_bench.reports.comparable import flatten

METRICS = {
    "acc": "Overall test accuracy (%)",
    "mean_class_acc": "Mean class test accuracy (%)",
    "macro_f1": "Test macro-F1 (%)",
}
DEFAULT_METRICS = ("acc", "mean_class_acc")
ALPHA = 0.05  # paired t-test level for "indistinguishable from the best"
MIN_PAIRED_SEEDS = 2  # a paired t-test needs two shared seeds; fewer: untested

# Settings shown in a table's header, with how to name them.
_HEADER_KEYS = (
    ("data.name", "dataset"),
    ("data.label_mode", "label mode"),
    ("data.image_size", "image size"),
    ("backbone", "backbone"),
    ("pretrained", "pretrained"),
    ("epochs", "epochs"),
    ("batch_size", "batch"),
    ("optim.name", "optimizer"),
    ("optim.lr", "lr"),
    ("optim.schedule", "schedule"),
)

OFFICIAL_SUFFIX = " (official recipe)"  # the row of a method's official-recipe runs


@dataclass
class Cell:
    values: dict[int, float]  # training seed -> metric (fraction)
    n_expected: int
    status: str = "ok"  # ok | missing | failed | incomplete | corrupt (when no value)
    note: int | None = None  # footnote number
    best: bool = False
    versus_best: str | None = None  # tie | differs | untested; None for the best or empty
    p_value: float | None = None
    stale: int = 0  # values from runs whose method changed since they were recorded
    collapsed: int = 0  # values from runs whose selected epochs predict one class

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values.values()) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values.values()) if self.n >= 2 else None


@dataclass
class Leaderboard:
    metric: str
    selection: str
    rows: list[str]
    columns: list[ProtocolKey]
    cells: dict[tuple[str, ProtocolKey], Cell]
    seeds: list[int]
    setting: list[tuple[str, str]]  # (name, value) shared by the runs, or "varies ..."
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    progress: tuple[int, int] | None = None  # (done, planned) when a sweep's grid was given
    preamble: list[str] = field(default_factory=list)  # e.g. the tuning budget and picks
    sources: list[str] = field(default_factory=list)  # each directory merged, with its runs
    row_of: dict[str, str] = field(default_factory=dict)  # run name -> its row's label

    @property
    def title(self) -> str:
        chosen = rule(self.selection)
        optimistic = f", {chosen.name} selection: optimistic" if chosen.optimistic else ""
        return METRICS[self.metric] + optimistic

    @property
    def selection_text(self) -> str:
        return rule(self.selection).description


def _row_setting(run: Run) -> dict[str, Any]:
    flat = flatten(row_identity(run.identity))
    return {k.removeprefix("hparams."): v for k, v in flat.items()}


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items())) or "defaults"
    return str(value)


def _method_defaults(method: str) -> dict[str, Any]:
    try:
        return resolved_hparams(method, {})
    except (RegistryError, ValueError):
        return {}  # a method not registered here: every differing value is shown


def row_labels(runs: list[Run], given: dict[str, str] | None = None) -> dict[str, str]:
    """Run name -> row label: the method (``(official recipe)`` added for a run of its
    official recipe), plus what differs when a method ran as several experiments (e.g.
    ``ce [epochs=30]``, ``nla [lam_c=0.125]``; a hyperparameter only where it departs from
    the method's default), so different experiments never pool and equal ones (``q=0.7``
    and the default) do. ``given`` labels (tuned rows) are kept, and their runs are left
    out of what the others are told apart from."""
    names = {r.name for r in runs}
    # a tuned row whose runs are not here (confirming runs still training) is no row
    given = {name: label for name, label in (given or {}).items() if name in names}
    settings = {r.name: _row_setting(r) for r in runs if r.name not in given}
    by_row: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if run.name in given:
            continue
        official = is_official(run.config)
        by_row[run.method + (OFFICIAL_SUFFIX if official else "")].append(run)
    labels: dict[str, str] = {}
    for base, group in by_row.items():
        keys = sorted({k for r in group for k in settings[r.name]})
        differing = [k for k in keys if len({_show(settings[r.name].get(k)) for r in group}) > 1]
        defaults = _method_defaults(group[0].method)
        for run in group:
            s = settings[run.name]
            shown = [k for k in differing if k not in defaults or s.get(k) != defaults[k]]
            extra = ", ".join(f"{k}={_show(s.get(k))}" for k in shown)
            labels[run.name] = f"{base} [{extra or 'defaults'}]" if differing else base
    return {**labels, **given}


def _shared_setting(runs: list[Run]) -> list[tuple[str, str]]:
    flats = [flatten(r.config) for r in runs]
    out = []
    for key, name in _HEADER_KEYS:
        values = sorted({_show(f.get(key)) for f in flats})
        if values == ["None"]:
            continue
        out.append((name, values[0] if len(values) == 1 else "varies: " + ", ".join(values)))
    counts = Counter(p for r in runs if (p := _precision(r)))
    if len(counts) == 1:
        out.append(("precision", next(iter(counts))))
    elif counts:  # a board that pools bf16 and fp32 runs says how many of each
        mix = ", ".join(f"{p} in {n}" for p, n in sorted(counts.items()))
        out.append(("precision", f"varies: {mix} runs"))
    return out


def _precision(run: Run) -> str | None:
    """The arithmetic a finished run trained in: recorded since the engine falls back to
    fp32 where bf16 is not native; earlier records ran as their config asked."""
    if run.state not in (RunState.DONE, RunState.STALE) or "bf16" not in run.config:
        return None
    return run.final.get("precision") or ("bf16" if run.config["bf16"] else "fp32")


def source_texts(runset: RunSet) -> list[str]:
    """Each merged directory with its run count and the precision its runs trained in
    (what ran, which a merge does not hold fixed: see :mod:`fer_bench.reports.comparable`)."""
    texts = []
    for root in runset.sources:
        runs = [r for r in runset.runs if r.path.parent == root]
        counts = Counter(p for r in runs if (p := _precision(r)))
        ran = ", ".join(f"{p} {n}" for p, n in sorted(counts.items()))
        count = f"{len(runs)} run{'' if len(runs) == 1 else 's'}"
        texts.append(f"{root} ({count}" + (f"; trained in {ran})" if ran else ")"))
    return texts


def run_value(run: Run, metric: str, selection: str) -> float:
    """The test metric of a done run under a selection rule, from its per-epoch record."""
    try:
        return rule(selection).value(run.epochs, metric)
    except ValueError as err:
        raise ValueError(f"metrics.jsonl: {err}") from None


def collapse_of(run: Run, selection: str) -> str | None:
    """The collapse note of a done run under a selection rule: set when every epoch the
    rule reports predicts one class for most test images."""
    names = run.final.get("class_names") or []
    notes = [collapse_note(row["test"], names) for row in rule(selection).epochs(run.epochs)]
    return notes[-1] if notes and all(notes) else None


def _fill_cell(
    runs: list[Run], seeds: list[int], metric: str, selection: str
) -> tuple[Cell, list[str]]:
    """A cell from its runs, and what went wrong with them (for a footnote)."""
    cell = Cell(values={}, n_expected=len(seeds))
    if runs and all(r.state is RunState.TODO for r in runs):
        cell.status = "not run"
        return cell, []
    planned = {r.seed for r in runs if r.state is RunState.TODO}  # n=k/N says these
    runs = [r for r in runs if r.state is not RunState.TODO]
    issues: list[str] = []
    states: set[RunState] = set()
    by_seed: dict[int, list[Run]] = defaultdict(list)
    for run in runs:
        by_seed[run.seed].append(run)
    for seed in seeds:
        group = by_seed.get(seed, [])
        if not group:
            if runs and seed not in planned:
                issues.append(f"seed {seed} missing")
            continue
        used = None
        for run in group:
            states.add(run.state)
            finished = run.state in (RunState.DONE, RunState.STALE)
            if finished and used is None:
                try:
                    cell.values[seed] = run_value(run, metric, selection)
                    used = run
                except ValueError as err:
                    states.add(RunState.CORRUPT)
                    issues.append(f"seed {seed} corrupt: {run.name}/{err}")
                    continue
                if run.state is RunState.STALE:
                    cell.stale += 1
                    issues.append(f"seed {seed} is stale ({run.name}: {run.reason})")
                if note := collapse_of(run, selection):
                    cell.collapsed += 1
                    issues.append(f"seed {seed} collapsed: {note}")
            elif finished:
                issues.append(
                    f"seed {seed} has several runs ({run.name} left out, "
                    f"{used.name if used else '?'} used)"
                )
            elif run.state is RunState.FAILED:
                issues.append(f"seed {seed} failed: {run.reason}")
            elif run.state is RunState.CORRUPT:
                issues.append(f"seed {seed} corrupt: {run.name}/{run.reason}")
            else:
                detail = f"; {run.reason}" if run.reason else ""
                issues.append(
                    f"seed {seed} incomplete (no done marker: running or interrupted{detail})"
                )
    if not cell.values:
        for state, status in (
            (RunState.FAILED, "failed"),
            (RunState.CORRUPT, "corrupt"),
            (RunState.PARTIAL, "incomplete"),
        ):
            if state in states:
                cell.status = status
                break
        else:
            cell.status = "missing"
    return cell, issues


def paired_p(a: dict[int, float], b: dict[int, float]) -> float | None:
    shared = sorted(set(a) & set(b))
    if len(shared) < MIN_PAIRED_SEEDS:
        return None
    xa, xb = [a[s] for s in shared], [b[s] for s in shared]
    if all(x == y for x, y in zip(xa, xb, strict=True)):
        return 1.0  # identical results: nothing to tell apart
    p = paired_t_pvalue(xa, xb)
    return 1.0 if math.isnan(p) else p


def paired_t_pvalue(xa: list[float], xb: list[float]) -> float:
    """Two-sided p-value of the paired t-test, as scipy.stats.ttest_rel computes it, from
    scipy.special: scipy.stats takes about a second to import, a table's whole budget."""
    from scipy.special import stdtr

    d = np.subtract(xa, xb, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.mean(d) / np.sqrt(np.var(d, ddof=1) / len(d))
    return float(2 * stdtr(len(d) - 1, -np.abs(t)))


def _mark_best(cells: list[Cell]) -> None:
    scored = [c for c in cells if c.values]
    if not scored:
        return
    # A one-seed cell cannot be tested against, so it is the reference only when no cell of
    # the column has two seeds; otherwise a lucky single seed would mark every other cell "?".
    testable = [c for c in scored if c.n >= MIN_PAIRED_SEEDS] or scored
    top = max(c.mean for c in testable)  # type: ignore[type-var]
    best = [c for c in testable if c.mean == top]
    for c in best:
        c.best = True
    for c in scored:
        if c.best:
            continue
        c.p_value = paired_p(best[0].values, c.values)
        if c.p_value is None:
            c.versus_best = "untested"
        else:
            c.versus_best = "tie" if c.p_value >= ALPHA else "differs"


def _columns(runs: list[Run]) -> dict[str, ProtocolKey]:
    """Each run's column. Only a finished run's record says whether its label file left
    validation clean; the file is the same for every seed, so runs not finished (a sweep's
    planned cells) join the column their finished siblings earned."""
    declared = {r.name: ProtocolKey.from_config(r.config) for r in runs}
    earned = {declared[r.name]: r.protocol for r in runs if r.protocol != declared[r.name]}
    return {r.name: earned.get(declared[r.name], r.protocol) for r in runs}


def select_rows_columns(
    runset: RunSet, labels: dict[str, str], rows: list[str] | None, columns: list[str] | None
) -> tuple[RunSet, dict[str, str]]:
    """The runs of the rows and columns asked for (a row by its label or by its method:
    ``nla`` picks ``nla (tuned)`` too; a column by its label, e.g. ``sym 30%``), with every
    run's row label fixed first, so that a row keeps its label when its siblings are left
    out. The best of a column is then the best of the rows shown. ValueError, naming the
    choices, for a name that matches nothing."""
    row_of = row_labels(runset.runs, labels)
    column_of = {name: key.label for name, key in _columns(runset.runs).items()}
    keep = runset.runs
    if rows:
        keep = [r for r in keep if any(names_row(row_of[r.name], name) for name in rows)]
        _check_chosen("--methods", rows, set(row_of.values()), names_row)
    if columns:
        keep = [r for r in keep if column_of[r.name] in columns]
        _check_chosen("--columns", columns, set(column_of.values()), str.__eq__)
    return replace(runset, runs=keep), row_of


def names_row(label: str, name: str) -> bool:
    """Whether ``name`` picks the row ``label``: the label itself, or its method (``nla``
    picks ``nla (tuned)``), in any case."""
    return label.lower() == name.lower() or label.lower().startswith(name.lower() + " ")


def _check_chosen(option: str, chosen: list[str], known: set[str], matches: Any) -> None:
    for name in chosen:
        if not any(matches(label, name) for label in known):
            raise ValueError(
                f"{option}: nothing named {name!r}; choose from {', '.join(sorted(known))}"
            )


def build_leaderboard(
    runset: RunSet,
    metric: str = "acc",
    selection: str = "val",
    labels: dict[str, str] | None = None,
    grid: bool = False,
) -> Leaderboard:
    """The leaderboard of ``runset``; add a sweep's planned runs to it (``planned_runs``) to
    show cells not run yet, and say ``grid`` so that a cell no sweep planned and no run
    filled reads "not in grid" rather than "missing"."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if selection not in SELECTIONS:
        raise ValueError(
            f"unknown selection rule {selection!r}; known: {', '.join(SELECTIONS.names())}"
        )
    runs = runset.runs
    if not runs:
        raise ValueError(
            f"no readable run records in {runset.root}: give a directory of run directories "
            "(a sweep's --out, a board's runs/), a board directory or one run directory"
        )
    if len(runset.datasets) > 1:
        raise ValueError(
            f"{runset.root} mixes datasets ({', '.join(runset.datasets)}); "
            "a table compares runs on one dataset"
        )
    labels = row_labels(runs, labels)
    column_of = _columns(runs)
    rows = sorted(set(labels.values()))
    columns = sorted(set(column_of.values()), key=ProtocolKey.sort_key)
    seeds = sorted({r.seed for r in runs})
    grouped: dict[tuple[str, ProtocolKey], list[Run]] = defaultdict(list)
    for run in runs:
        grouped[labels[run.name], column_of[run.name]].append(run)
    board = Leaderboard(
        metric=metric,
        selection=selection,
        rows=rows,
        columns=columns,
        cells={},
        seeds=seeds,
        setting=_shared_setting(runs),
        problems=list(runset.problems),
        sources=source_texts(runset),
        row_of=labels,
    )
    if any(r.state is RunState.TODO for r in runs):
        board.progress = (sum(r.state is RunState.DONE for r in runs), len(runs))
    for row in rows:
        for col in columns:
            cell_runs = grouped.get((row, col), [])
            cell, issues = _fill_cell(cell_runs, seeds, metric, selection)
            if grid and not cell_runs:
                cell.status = "not in grid"
            if issues:
                board.notes.append(f"{row} / {col.label}: " + "; ".join(issues))
                cell.note = len(board.notes)
            board.cells[row, col] = cell
    for col in columns:
        _mark_best([board.cells[row, col] for row in rows])
    return board
