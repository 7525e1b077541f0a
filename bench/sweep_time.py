"""Compute time of a sweep's finished runs: total wall time and CPU core-hours (each
run's wall time times its torch threads), and per method its median training epoch
time relative to CE on the same data. Runs trained with other numbers of torch
threads (``--workers`` splits the cores), in another precision, on another CPU or on
another number of training images are shown apart: their epochs are not comparable.

    python bench/sweep_time.py results/synthetic/runs
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from fer_bench.records.layout import FINAL, METRICS


def setting(final: dict) -> str:
    """What an epoch's time depends on besides the method: threads, precision, CPU and
    the training set's size (a board's long-tail column trains on a third of the images)."""
    env = final.get("environment", {})
    cpu = env.get("cpu", "an unrecorded CPU")  # records before the CPU model was kept
    images = final.get("labels", {}).get("n_train", "?")
    return (
        f"{env.get('torch_threads')} torch threads, {final.get('precision')}, on {cpu}, "
        f"{images} training images"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    total = core_s = 0.0
    unthreaded = 0  # records that name no torch threads: no core-hours
    epoch_times: dict[tuple[str, str], list[float]] = defaultdict(list)
    runs = 0
    for final_path in sorted(args.directory.glob(f"*/{FINAL}")):
        final = json.loads(final_path.read_text())
        total += final["time_s"]
        threads = final.get("environment", {}).get("torch_threads")
        core_s += final["time_s"] * (threads or 0)
        unthreaded += threads is None
        runs += 1
        rows = (final_path.parent / METRICS).read_text().splitlines()
        epoch_times[setting(final), final["method"]] += [
            json.loads(r)["train_time_s"] for r in rows
        ]
    print(
        f"{runs} runs, {total / 3600:.2f} h wall time in all ({total:.0f} s), "
        f"{core_s / 3600:.2f} CPU core-hours (wall time x torch threads)"
        + (f", {unthreaded} runs without recorded threads not counted" if unthreaded else "")
    )
    settings = sorted({of for of, _ in epoch_times})
    for each in settings:
        if len(settings) > 1:
            print(f" trained with {each}:")
        ce_times = epoch_times.get((each, "ce"))
        ce = statistics.median(ce_times) if ce_times else None
        for (of, method), times in sorted(epoch_times.items()):
            if of == each:
                median = statistics.median(times)
                ratio = f"{median / ce:.2f}x CE" if ce else "no CE runs"
                print(f"  {method:6s} median training epoch {median:6.1f} s  ({ratio})")


if __name__ == "__main__":
    main()
