"""How long a board's grid will take a new method, from the board's own recorded epochs.

The estimate is the median epoch (each ``metrics.jsonl`` row's ``time_s``: training
and evaluation) of the board's CE runs, times the epochs of the runs to train;
it holds for a machine like the one the board's records name (``final.json``'s
environment) and a method as cheap as CE, so the range of the board's methods'
epoch times relative to CE is given beside it.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

from fer_bench.config import RunConfig
from fer_bench.records.reading import Run, RunSet, RunState
from fer_bench.training.calibrate import StepTime

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


def precision(run: Run) -> str:
    return run.final.get("precision") or ("bf16" if run.config.get("bf16") else "fp32")


def _setting(run: Run) -> tuple[str, str]:
    """What an epoch's time depends on besides the method: the machine and precision."""
    return machine(run), precision(run)


def _relative_costs(runs: list[Run], reference: float) -> str:
    """Each method's median epoch over ``reference``: ``runs`` share one machine and
    precision, so that no ratio mixes hosts or arithmetic."""
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


def _step_times(runs: list[Run]) -> list[float]:
    """Seconds per training step of each recorded epoch (its training time over the full
    batches it trained)."""
    out = []
    for run in runs:
        steps = int(run.final.get("labels", {}).get("n_train", 0)) // int(run.config["batch_size"])
        out += [float(r["train_time_s"]) / steps for r in run.epochs if "train_time_s" in r]
    return out if all(out) else []


def estimate(board: RunSet, jobs: list[RunConfig], here: StepTime | None = None) -> str:
    """'18 runs, about 2.4 h ...': the jobs to train, timed by the board's records and,
    given ``here`` (this machine's measured step, fer_bench/training/calibrate.py), on this
    machine."""
    finished = [r for r in board.runs if r.state in (RunState.DONE, RunState.STALE)]
    reference = [r for r in finished if r.method == REFERENCE] or finished
    if reference:
        # The board's most common machine and precision: epochs of others are not mixed in.
        common = Counter(map(_setting, reference)).most_common(1)[0][0]
        reference = [r for r in reference if _setting(r) == common]
        finished = [r for r in finished if _setting(r) == common]
    times = _epoch_times(reference)
    if not jobs or not times:
        why = "" if not jobs else " (the board records no epoch times to estimate from)"
        return f"{len(jobs)} runs to train{why}"
    median = statistics.median(times)
    epochs = sum(cfg.epochs for cfg in jobs)
    whose = "CE's" if reference[0].method == REFERENCE else "its runs'"
    where, trained_in = common
    text = (
        f"{len(jobs)} runs, about {_duration(median * epochs)} on a machine like the board's "
        f"({where}, in {trained_in}, from its records): {whose} median epoch there took "
        f"{median:.1f} s, its methods' {_relative_costs(finished, median)} {whose}"
    )
    board_steps = _step_times(reference)
    if here is None or not board_steps:
        return text
    ratio = here.seconds / statistics.median(board_steps)
    return text + (
        f".\nOn this machine, in {here.precision}: about {_duration(median * ratio * epochs)} "
        f"for methods as cheap as {REFERENCE.upper()}: a {REFERENCE.upper()} training step "
        f"measured here ({here.steps} steps) took {here.seconds:.3f} s, "
        f"{ratio:.2f}x the board's {statistics.median(board_steps):.3f} s"
    )
