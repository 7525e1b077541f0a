"""How long a board's grid will take a new method, from the board's own recorded epochs.

The estimate is the median epoch (each ``metrics.jsonl`` row's ``time_s``: training
and evaluation) of the board's CE runs, times the epochs of the runs to train;
it holds for a machine like the one the board's records name (``final.json``'s
environment) and a method as cheap as CE, so the range of the board's methods'
epoch times relative to CE is given beside it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from fer_bench.config import RunConfig
from fer_bench.results import Run, RunSet, RunState

REFERENCE = "ce"


def _epoch_times(runs: list[Run]) -> list[float]:
    return [float(row["time_s"]) for run in runs for row in run.epochs if "time_s" in row]


def machine(run: Run) -> str:
    """The machine a run's record names: system, processor, CPUs, GPU."""
    env = run.final.get("environment") or {}
    system = str(env.get("platform", "unknown system")).split("-")[0]
    processor = env.get("cpu") or env.get("processor") or "unknown processor"
    return f"{system} {processor}, {env.get('cpu_count', '?')} CPUs, {env.get('gpu') or 'no GPU'}"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def _relative_costs(runs: list[Run], reference: float) -> str:
    by_method: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_method[run.method].append(run)
    ratios = sorted(
        (statistics.median(times) / reference, method)
        for method, group in by_method.items()
        if (times := _epoch_times(group))
    )
    (low, cheapest), (high, dearest) = ratios[0], ratios[-1]
    return f"{low:.2f}x ({cheapest}) to {high:.2f}x ({dearest})"


def estimate(board: RunSet, jobs: list[RunConfig]) -> str:
    """'18 runs, about 2.4 h ...': the jobs to train, timed by the board's records."""
    finished = [r for r in board.runs if r.state in (RunState.DONE, RunState.STALE)]
    reference = [r for r in finished if r.method == REFERENCE] or finished
    times = _epoch_times(reference)
    if not jobs or not times:
        why = "" if not jobs else " (the board records no epoch times to estimate from)"
        return f"{len(jobs)} runs to train{why}"
    median = statistics.median(times)
    seconds = median * sum(cfg.epochs for cfg in jobs)
    whose = "CE's" if reference[0].method == REFERENCE else "its runs'"
    machines = "; ".join(sorted({machine(r) for r in reference}))
    return (
        f"{len(jobs)} runs, about {_duration(seconds)} on a machine like the board's "
        f"({machines}, from its records): {whose} median epoch there took {median:.1f} s, "
        f"its methods' {_relative_costs(finished, median)} {whose}"
    )
