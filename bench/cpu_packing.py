"""Does a CPU host train a sweep faster as one job on every core or as one job per core?

Trains the same jobs (``--seeds``, one job each) twice with ``fer-bench sweep``: with
one worker (all cores to it) and with ``--workers`` workers (cores split), each into a
fresh directory, and prints each arrangement's wall time, median training epoch and
images trained per second of wall time, and the ratio. Run it with nothing else on
the machine: a shared core halves a figure.

    python bench/cpu_packing.py --file results/ferplus-cpu-fair/sweep.toml --methods ce \\
        --seeds 0,1 --epochs 2 --workers 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fer_bench.records.layout import FINAL, METRICS


def timed_sweep(args: argparse.Namespace, workers: int, out: Path) -> dict[str, float]:
    command = [
        str(Path(sys.executable).with_name("fer-bench")), "sweep", "--file", str(args.file),
        "--methods", args.methods, "--seeds", args.seeds, "--epochs", str(args.epochs),
        "--workers", str(workers), "--out", str(out),
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    epochs, images = [], 0
    for final_path in out.glob(f"*/{FINAL}"):
        final = json.loads(final_path.read_text())
        rows = (final_path.parent / METRICS).read_text().splitlines()
        epochs += [json.loads(row)["train_time_s"] for row in rows]
        images += final["labels"]["n_train"] * len(rows)
    return {"wall_s": wall, "epoch_s": statistics.median(epochs), "images_per_s": images / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, required=True, help="sweep file of the jobs")
    parser.add_argument("--methods", default="ce")
    parser.add_argument("--seeds", default="0,1", help="one job per seed")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="workers of the packed run")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, args.workers):
            results[workers] = timed_sweep(args, workers, Path(tmp) / f"w{workers}")
            r = results[workers]
            print(
                f"{workers} worker(s): {r['wall_s']:.0f} s wall, median training epoch "
                f"{r['epoch_s']:.1f} s, {r['images_per_s']:.0f} training images/s of wall time"
            )
    gain = results[args.workers]["images_per_s"] / results[1]["images_per_s"]
    print(f"{args.workers} workers train {gain:.2f}x the images per second of 1 worker")


if __name__ == "__main__":
    main()
