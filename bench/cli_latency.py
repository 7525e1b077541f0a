"""Cold start of the CLI: wall time of ``fer-bench --help`` and of ``fer-bench table`` on a
committed board, each a fresh process (the target is under 1 s on an idle machine), and
whether the process imported torch or timm (it must not: fer_bench/static_index.py).

    python bench/cli_latency.py                       # results/synthetic/runs, 5 repeats
    python bench/cli_latency.py --board results/ferplus-cpu/runs --repeats 10

Run it on an idle machine: under load the times measure the load.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The console script's own code path (fer_bench.cli:app), then which heavy modules it loaded.
PROBE = """
import sys
from fer_bench.cli import app
try:
    app(sys.argv[1:], prog_name="fer-bench")
except SystemExit:
    pass
heavy = [m for m in ("torch", "timm", "scipy.stats", "matplotlib") if m in sys.modules]
sys.stderr.write("heavy imports: " + (", ".join(heavy) or "none") + "\\n")
"""


def cold_start(args: list[str]) -> tuple[float, str]:
    """Seconds of one fresh process running ``fer-bench ARGS``, and its heavy imports."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=REPO
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"fer-bench {' '.join(args)} failed: {done.stderr.strip()}")
    heavy = done.stderr.strip().splitlines()[-1]
    return seconds, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", type=Path, default=REPO / "results" / "synthetic" / "runs")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    commands = {
        "fer-bench --help": ["--help"],
        f"fer-bench table {args.board}": ["table", str(args.board)],
        "fer-bench list methods": ["list", "methods"],
    }
    cold_start(["--help"])  # the first process also warms the file cache: not counted
    for label, argv in commands.items():
        times, heavy = [], ""
        for _ in range(args.repeats):
            seconds, heavy = cold_start(argv)
            times.append(seconds)
        print(
            f"{label}: median {statistics.median(times):.2f} s, "
            f"min {min(times):.2f} s over {args.repeats} runs; {heavy}"
        )


if __name__ == "__main__":
    main()
