"""Compute time of a sweep's finished runs: total, and per method its mean training
epoch time relative to CE on the same data.

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
    epoch_times: dict[str, list[float]] = defaultdict(list)
    runs = 0
    for final_path in sorted(args.directory.glob("*/final.json")):
        final = json.loads(final_path.read_text())
        total += final["time_s"]
        runs += 1
        rows = (final_path.parent / "metrics.jsonl").read_text().splitlines()
        epoch_times[final["method"]] += [json.loads(r)["train_time_s"] for r in rows]
    print(f"{runs} runs, {total / 3600:.2f} h wall time in all ({total:.0f} s)")
    if not epoch_times:
        return
    ce = statistics.median(epoch_times["ce"]) if epoch_times.get("ce") else None
    for method, times in sorted(epoch_times.items()):
        median = statistics.median(times)
        ratio = f"{median / ce:.2f}x CE" if ce else "no CE runs"
        print(f"  {method:6s} median training epoch {median:6.1f} s  ({ratio})")


if __name__ == "__main__":
    main()
