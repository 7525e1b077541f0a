"""Figures from a results directory (PNG, matplotlib's Agg renderer, no display needed).

- accuracy vs noise rate per method, with each seed's point and the mean ± std;
- per-class test accuracy per method, one figure per protocol;
- training curves (validation and test accuracy), one figure per protocol, and each
  method's train loss in a panel of its own: losses differ in definition and scale (LDAM's
  margins, ELR's negative regulariser), so no panel sets them side by side;
- for methods that score samples, the score distribution of clean vs flipped
  training samples over epochs and the score's AUROC, one figure per run;
- for methods that score samples, the mean score of each OBSERVED class's training
  samples over epochs (mean over seeds), one panel per method, one figure per protocol.

Legends sit outside the panels; each row has its own colour and line style (bars: hatch),
and the rows asked for (``highlight``) are drawn thick over the others, drawn faint.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fer_bench.records.reading import ProtocolKey, Run, RunSet, RunState
from fer_bench.reports.aggregate import METRICS, names_row, row_labels, run_value

SCORE_PANELS = 6  # histogram panels per score figure (epochs spread over training)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("%", "pct")).strip("-")


def save_png(fig: Figure, path: Path) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    tmp.replace(path)
    return path


# Matplotlib's default cycle has ten colours; a board of more rows would repeat them, so
# each further ten rows take the same colours with the next line style (bars: hatch).
_SECOND_CUES = {"linestyle": ("-", "--", ":"), "hatch": ("", "//", "..")}


def _row_style(i: int, cue: str) -> dict[str, str]:
    """Colour and ``cue`` (``linestyle`` for lines, ``hatch`` for bars) of the i-th row
    of a figure: distinct for up to 30 rows."""
    choices = _SECOND_CUES[cue]
    return {"color": f"C{i % 10}", cue: choices[i // 10 % len(choices)]}


# How a highlighted row (and every other row, when some are highlighted) is drawn.
_EMPHASIS = {
    "linestyle": ({"linewidth": 2.8, "zorder": 4}, {"linewidth": 1.0, "alpha": 0.45}),
    "hatch": ({"edgecolor": "black", "linewidth": 1.2, "zorder": 3}, {"alpha": 0.4}),
}


def _drawn(i: int, row: str, cue: str, highlight: AbstractSet[str]) -> dict:
    """The i-th row's style, emphasised or faded when rows are highlighted."""
    style: dict = _row_style(i, cue)
    if highlight:
        style |= _EMPHASIS[cue][0 if row in highlight else 1]
    return style


def _legend_outside(fig: Figure, axes: list[Axes], title: str | None = None) -> None:
    """One legend for the figure, right of its panels (never over the data); each entry
    once, long enough to show the line style."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        ordered = sorted(handles.items())  # the rows' order, whichever panel drew them first
        fig.legend(
            [handle for _, handle in ordered],
            [label for label, _ in ordered],
            loc="outside right upper",
            fontsize=8,
            handlelength=3.5,
            ncols=1 if len(handles) <= 20 else 2,
            title=title,
            title_fontsize=8,
        )


def _highlight_title(highlight: AbstractSet[str]) -> str | None:
    return "thick: highlighted" if highlight else None


def _values(runs: list[Run], metric: str, selection: str) -> dict[int, float]:
    out = {}
    for run in runs:
        try:
            out[run.seed] = run_value(run, metric, selection) * 100
        except ValueError:
            continue  # a corrupt record: the table reports it
    return out


def accuracy_vs_noise(
    runs: list[Run],
    labels: dict[str, str],
    metric: str,
    selection: str,
    highlight: AbstractSet[str] = frozenset(),
) -> Figure | None:
    """One panel per noise family (noise type x imbalance); the clean runs are x = 0."""
    by_cell: dict[tuple[str, ProtocolKey], list[Run]] = defaultdict(list)
    for run in runs:
        by_cell[labels[run.name], run.protocol].append(run)
    families = sorted(
        {
            (p.imbalance_type, p.imbalance, p.noise, p.noise_on_val)
            for _, p in by_cell
            if p.noise and p.rate is not None
        }
    )
    if not families:
        return None
    fig = Figure(figsize=(5.2 * len(families) + 2.2, 4.2), layout="constrained")
    axes = fig.subplots(1, len(families), squeeze=False)[0]
    rows = sorted({row for row, _ in by_cell})
    for ax, (imb_type, imb, noise, on_val) in zip(axes, families, strict=True):
        clean = ProtocolKey(imb_type, imb, "", 0.0, True)
        rates: set[float] = set()
        for i, row in enumerate(rows):
            points = []
            for (r, p), group in by_cell.items():
                in_family = p == clean or (
                    p.imbalance_type,
                    p.imbalance,
                    p.noise,
                    p.noise_on_val,
                ) == (imb_type, imb, noise, on_val)
                if r == row and in_family and p.rate is not None:
                    points.append((p.rate * 100, _values(group, metric, selection)))
            points = sorted((x, v) for x, v in points if v)
            if not points:
                continue
            rates.update(x for x, _ in points)
            style = _drawn(i, row, "linestyle", highlight)
            shift = (i - (len(rows) - 1) / 2) * 0.3  # side by side, so seeds stay visible
            xs = [x + shift for x, _ in points]
            means = [statistics.fmean(v.values()) for _, v in points]
            stds = [statistics.stdev(v.values()) if len(v) > 1 else 0.0 for _, v in points]
            ax.errorbar(xs, means, yerr=stds, **style, marker="o", capsize=3, label=row)
            for x, v in points:
                ax.scatter(
                    [x + shift] * len(v),
                    list(v.values()),
                    color=style["color"],
                    s=12,
                    alpha=0.5 * style.get("alpha", 1.0),
                    zorder=3,
                )
        title = ProtocolKey(imb_type, imb, noise, 0.0, on_val).label.replace(" 0%", "")
        ax.set_title(f"{title} noise")
        # Ticks at the rates run only: the side-by-side shift would otherwise give a
        # one-rate panel an axis of made-up fractional rates.
        ticks = sorted(rates)
        ax.set_xticks(ticks, [f"{r:g}" for r in ticks])
        ax.set_xlabel("noise rate (%)")
        ax.set_ylabel(f"{METRICS[metric].removesuffix(' (%)')} (%)")
        ax.grid(alpha=0.3)
    _legend_outside(fig, list(axes), _highlight_title(highlight))
    fig.suptitle(f"selection: {selection}; dots = seeds, bars = ± std", fontsize=9)
    return fig


def per_class(
    runs: list[Run],
    labels: dict[str, str],
    protocol: ProtocolKey,
    selection: str,
    highlight: AbstractSet[str] = frozenset(),
) -> Figure | None:
    by_row: dict[str, list[np.ndarray]] = defaultdict(list)
    class_names: list[str] = []
    for run in runs:
        try:
            accs = run.final["selection"][selection]["test"]["per_class_acc"]
            class_names = class_names or list(run.final["class_names"])
        except (KeyError, TypeError, ValueError):
            continue
        by_row[labels[run.name]].append(np.asarray(accs, dtype=float) * 100)
    if not by_row:
        return None
    rows = sorted(by_row)
    width = 0.8 / len(rows)
    x = np.arange(len(class_names))
    fig = Figure(
        figsize=(max(6.0, 1.1 * len(class_names) + 0.4 * len(rows)) + 2.2, 4.0),
        layout="constrained",
    )
    ax = fig.subplots()
    for i, row in enumerate(rows):
        stack = np.stack(by_row[row])
        std = stack.std(0, ddof=1) if len(stack) > 1 else np.zeros(len(class_names))
        ax.bar(
            x + (i - (len(rows) - 1) / 2) * width,
            stack.mean(0),
            width,
            yerr=std,
            capsize=2,
            label=f"{row} (n={len(stack)})",
            **_drawn(i, row, "hatch", highlight),
        )
    ax.set_xticks(x, class_names, rotation=20)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"Per-class test accuracy, {protocol.label} (selection: {selection})")
    ax.grid(axis="y", alpha=0.3)
    _legend_outside(fig, [ax], _highlight_title(highlight))
    return fig


def _mean_curve(
    runs: list[Run], get: Callable[[dict], float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    curves = []
    for run in runs:
        try:
            curves.append([get(row) for row in run.epochs])
        except (KeyError, TypeError):
            continue
    length = min((len(c) for c in curves), default=0)
    if length == 0:
        return None
    stack = np.asarray([c[:length] for c in curves], dtype=float)
    spread = stack.std(0, ddof=1) if len(stack) > 1 else np.zeros(length)  # sample std, as tables
    return np.arange(1, length + 1), stack.mean(0), spread


def _by_row(runs: list[Run], labels: dict[str, str]) -> dict[str, list[Run]]:
    by_row: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_row[labels[run.name]].append(run)
    return dict(sorted(by_row.items()))


def training_curves(
    runs: list[Run],
    labels: dict[str, str],
    protocol: ProtocolKey,
    highlight: AbstractSet[str] = frozenset(),
) -> Figure | None:
    """Validation and test accuracy per epoch, every row on one scale."""
    by_row = _by_row(runs, labels)
    panels = (
        ("validation accuracy (%)", lambda r: r["val"]["acc"] * 100),
        ("test accuracy (%)", lambda r: r["test"]["acc"] * 100),
    )
    fig = Figure(figsize=(11.5, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    drawn = False
    for i, (row, group) in enumerate(by_row.items()):
        for ax, (name, get) in zip(axes, panels, strict=True):
            curve = _mean_curve(group, get)
            if curve is None:
                continue
            drawn = True
            epochs, mean, std = curve
            style = _drawn(i, row, "linestyle", highlight)
            ax.plot(epochs, mean, **style, label=f"{row} (n={len(group)})")
            band = 0.2 * style.get("alpha", 1.0)
            ax.fill_between(epochs, mean - std, mean + std, color=style["color"], alpha=band)
            ax.set_title(name)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
    if not drawn:
        return None
    _legend_outside(fig, list(axes), _highlight_title(highlight))
    fig.suptitle(
        f"Training curves, {protocol.label} (mean ± std over seeds; validation labels as trained)",
        fontsize=10,
    )
    return fig


LOSS_COLUMNS = 5  # panels per row of the train-loss figure


def train_losses(
    runs: list[Run],
    labels: dict[str, str],
    protocol: ProtocolKey,
    highlight: AbstractSet[str] = frozenset(),
) -> Figure | None:
    """Each row's train loss in a panel of its own, on its own scale: methods' losses
    differ in definition (a margin, a regulariser below zero), so only each curve's shape
    is comparable, never its values."""
    curves = {
        row: (i, curve)
        for i, (row, group) in enumerate(_by_row(runs, labels).items())
        if (curve := _mean_curve(group, lambda r: r["train"]["loss"])) is not None
    }
    if not curves:
        return None
    cols = min(LOSS_COLUMNS, len(curves))
    rows = -(-len(curves) // cols)
    fig = Figure(figsize=(2.7 * cols, 2.2 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (row, (i, (epochs, mean, std))) in zip(axes, curves.items(), strict=False):
        style = _row_style(i, "linestyle")
        if row in highlight:
            style |= _EMPHASIS["linestyle"][0]
        ax.plot(epochs, mean, **style)
        ax.fill_between(epochs, mean - std, mean + std, color=style["color"], alpha=0.2)
        weight = "bold" if row in highlight else "normal"
        ax.set_title(row, fontsize=9, fontweight=weight)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(curves) :]:
        ax.set_visible(False)
    fig.supxlabel("epoch", fontsize=9)
    fig.suptitle(
        f"Train loss, {protocol.label}: each method on its own scale (losses differ in "
        "definition: compare shapes, not values)",
        fontsize=10,
    )
    return fig


def _hist_panel(ax: Axes, noise: dict, epoch: int) -> None:
    edges = np.asarray(noise["bins"], dtype=float)
    widths = np.diff(edges)
    for key, color, name in (("hist_clean", "C0", "clean"), ("hist_flipped", "C3", "flipped")):
        counts = np.asarray(noise[key], dtype=float)
        density = counts / max(counts.sum(), 1) / np.where(widths > 0, widths, 1)
        ax.stairs(density, edges, color=color, fill=True, alpha=0.35, label=name)
        ax.stairs(density, edges, color=color)
    ax.set_title(f"epoch {epoch}, AUROC {noise['auroc']:.2f}", fontsize=9)
    ax.set_yticks([])


def score_distributions(run: Run, row: str) -> Figure | None:
    epochs = [(r["epoch"], r["noise"]) for r in run.epochs if r.get("noise")]
    if not epochs:
        return None
    picks = sorted(
        {round(i) for i in np.linspace(0, len(epochs) - 1, min(SCORE_PANELS, len(epochs)))}
    )
    fig = Figure(figsize=(2.6 * len(picks), 5.6))
    grid = fig.add_gridspec(2, len(picks), height_ratios=(1, 1.1), hspace=0.45)
    for col, i in enumerate(picks):
        ax = fig.add_subplot(grid[0, col])
        _hist_panel(ax, epochs[i][1], epochs[i][0])
        if col == 0:
            ax.legend(fontsize=8)
    score_name = epochs[0][1].get("score_name") or "score"
    xs = [e for e, _ in epochs]
    ax = fig.add_subplot(grid[1, :])
    ax.plot(
        xs, [n["score_clean"] for _, n in epochs], color="C0", label=f"mean {score_name}, clean"
    )
    ax.plot(
        xs, [n["score_flipped"] for _, n in epochs], color="C3", label=f"mean {score_name}, flipped"
    )
    ax.set_xlabel("epoch")
    ax.set_ylabel(score_name)
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(xs, [n["auroc"] for _, n in epochs], color="k", linestyle="--", label="AUROC")
    twin.set_ylabel("AUROC (clean vs flipped)")
    twin.set_ylim(0, 1)
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="best")
    fig.suptitle(
        f"{row}, {run.protocol.label}, seed {run.seed}: {score_name} of clean vs "
        "flipped training samples",
        fontsize=10,
    )
    return fig


def scores_by_observed_class(
    runs: list[Run], labels: dict[str, str], protocol: ProtocolKey
) -> Figure | None:
    """Does a method's weight shift between classes as training goes on? Per row, the
    mean score of each observed class's training samples by epoch, mean over seeds
    (records from before ``score_by_observed_class`` was recorded have none)."""
    key = "score_by_observed_class"
    by_row: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if any(r.get(key) for r in run.epochs):
            by_row[labels[run.name]].append(run)
    if not by_row:
        return None

    def class_score(row: dict, c: int) -> float:  # NaN: an epoch or class without scores
        value = row[key]["mean_by_class"][c] if row.get(key) else None
        return math.nan if value is None else value

    fig = Figure(figsize=(4.2 * len(by_row) + 2.2, 3.6), layout="constrained")
    axes = fig.subplots(1, len(by_row), squeeze=False)[0]
    for ax, (row, group) in zip(axes, sorted(by_row.items()), strict=True):
        first = next(r[key] for r in group[0].epochs if r.get(key))
        names = group[0].final.get("class_names") or []
        for c in range(len(first["mean_by_class"])):
            curve = _mean_curve(group, lambda r, c=c: class_score(r, c))
            if curve is not None:
                name = names[c] if c < len(names) else f"class {c}"
                ax.plot(curve[0], curve[1], **_row_style(c, "linestyle"), label=name)
        ax.set_title(f"{row} (n={len(group)})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{first['score_name']}, class mean over its training samples", fontsize=8)
        ax.grid(alpha=0.3)
    _legend_outside(fig, list(axes), "observed class")
    # Short: a longer title runs under the legend, which starts at the figure's top.
    fig.suptitle(f"{protocol.label}: mean score per observed class", fontsize=10)
    return fig


def tuning_spread(record: dict, runs: dict[str, Run], metric: str = "acc") -> Figure | None:
    """Each method's trials: validation score (what picked) and test metric at the
    val-selected epoch (what it would have reported), one column per method: the spread
    is the method's sensitivity to its hyperparameters. The pick is ringed."""
    groups = sorted(record["groups"].items())
    points = []
    for x, (_, group) in enumerate(groups):
        for trial in group["trials"]:
            run = runs.get(trial["run"])
            if run is None or trial["score"] is None:
                continue
            best = group["best"] is not None and trial["trial"] == group["best"]["trial"]
            points.append((x, trial["score"], run_value(run, metric, "val"), best))
    if not points:
        return None
    fig = Figure(figsize=(1.2 * len(groups) + 2, 4))
    ax = fig.add_subplot()
    names = (f"{record['rule_metric']} (pick score)", f"test {metric}, val-selected epoch")
    for offset, index, name in ((-0.12, 1, names[0]), (0.12, 2, names[1])):
        ax.scatter(
            [p[0] + offset for p in points], [p[index] * 100 for p in points], s=18, label=name
        )
        ax.scatter(
            [p[0] + offset for p in points if p[3]],
            [p[index] * 100 for p in points if p[3]],
            s=80,
            facecolors="none",
            edgecolors="black",
        )
    # a group is a method's search on one protocol: name the protocol where there are several
    one_protocol = len({g["method"] for _, g in groups}) == len(groups)
    ax.set_xticks(range(len(groups)), [g["method"] if one_protocol else k for k, g in groups])
    ax.set_ylabel("%")
    ax.set_title(f"{record['trials']} trials per method; ringed: the pick")
    ax.legend(fontsize=8)
    return fig


def plot_all(
    runset: RunSet,
    out: Path,
    metric: str = "acc",
    selection: str = "val",
    labels: dict[str, str] | None = None,
    highlight: list[str] | None = None,
) -> list[Path]:
    """Write every figure the records allow (``labels``: row labels beyond the methods',
    e.g. tuned rows; ``highlight``: rows drawn over the others, by label or method, by
    default the rows of every directory but the first of a merged board); returns the
    files written."""
    runs = [r for r in runset.runs if r.state is RunState.DONE]
    if not runs:
        raise ValueError(f"no finished runs in {runset.root}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    out.mkdir(parents=True, exist_ok=True)
    labels = row_labels(runs, labels)
    emphasis = _highlighted(runset, runs, labels, highlight)
    written = []
    fig = accuracy_vs_noise(runs, labels, metric, selection, emphasis)
    if fig is not None:
        written.append(save_png(fig, out / f"{metric}_vs_noise.png"))
    by_protocol: dict[ProtocolKey, list[Run]] = defaultdict(list)
    for run in runs:
        by_protocol[run.protocol].append(run)
    for protocol in sorted(by_protocol, key=ProtocolKey.sort_key):
        group = by_protocol[protocol]
        name = slug(protocol.label)
        for prefix, fig in (
            ("per_class", per_class(group, labels, protocol, selection, emphasis)),
            ("curves", training_curves(group, labels, protocol, emphasis)),
            ("loss", train_losses(group, labels, protocol, emphasis)),
            ("score_by_class", scores_by_observed_class(group, labels, protocol)),
        ):
            if fig is not None:
                written.append(save_png(fig, out / f"{prefix}_{name}.png"))
        first_seed: dict[str, Run] = {}
        for run in sorted(group, key=lambda r: r.seed):
            first_seed.setdefault(labels[run.name], run)
        for row, run in sorted(first_seed.items()):
            fig = score_distributions(run, row)
            if fig is not None:
                written.append(save_png(fig, out / f"scores_{slug(row)}_{name}.png"))
    return written


def _highlighted(
    runset: RunSet, runs: list[Run], labels: dict[str, str], highlight: list[str] | None
) -> set[str]:
    """The row labels to highlight: those named (a label, or a method: ``nla`` is every
    nla row), else on a merged board the rows of the directories after the first."""
    rows = set(labels[r.name] for r in runs)
    if highlight:
        chosen = {row for row in rows for name in highlight if names_row(row, name)}
        if missing := [n for n in highlight if not any(names_row(row, n) for row in rows)]:
            raise ValueError(f"--highlight: no row {missing[0]!r}; rows: {', '.join(sorted(rows))}")
        return chosen
    others = set(runset.sources[1:])
    return {labels[r.name] for r in runs if r.path.parent in others}
