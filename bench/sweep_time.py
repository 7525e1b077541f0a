"""Compute time of a sweep's finished runs: total, and per method its median training
epoch time relative to CE on the same data. Runs trained with other numbers of torch
threads (``--workers`` splits the cores) are shown apart: their epochs are not
comparable.

    python bench/sweep_time.py results/synthetic/runs
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    total = 0.0
    epoch_times: dict[tuple[int | None, str], list[float]] = defaultdict(list)
    runs = 0
    for final_path in sorted(args.directory.glob("*/final.json")):
        final = json.loads(final_path.read_text())
        total += final["time_s"]
        runs += 1
        rows = (final_path.parent / "metrics.jsonl").read_text().splitlines()
        threads = final.get("environment", {}).get("torch_threads")
        epoch_times[threads, final["method"]] += [json.loads(r)["train_time_s"] for r in rows]
    print(f"{runs} runs, {total / 3600:.2f} h wall time in all ({total:.0f} s)")
    thread_counts = sorted({threads for threads, _ in epoch_times}, key=str)
    for threads in thread_counts:
        if len(thread_counts) > 1:
            print(f" trained with {threads} torch threads:")
        ce_times = epoch_times.get((threads, "ce"))
        ce = statistics.median(ce_times) if ce_times else None
        for (of, method), times in sorted(epoch_times.items(), key=str):
            if of == threads:
                median = statistics.median(times)
                ratio = f"{median / ce:.2f}x CE" if ce else "no CE runs"
                print(f"  {method:6s} median training epoch {median:6.1f} s  ({ratio})")


if __name__ == "__main__":
    main()
