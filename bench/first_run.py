"""The README's first run, timed as a newcomer meets it: ``fer-bench run nla --noise 0.3``
in a fresh process and an empty output folder, once in the precision this machine gives
it and once in fp32 (``--no-bf16``: what a CPU without native bf16 trains in), with the
CPU, the precision each run recorded and its wall time.

    python bench/first_run.py                    # prints one line per precision
    python bench/first_run.py --out bench/first_run_HOST.txt

Run it on an idle machine: under load the times measure the load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = ["run", "nla", "--noise", "0.3"]


def timed_run(extra: list[str]) -> tuple[float, dict]:
    """Wall seconds of one ``fer-bench run`` (CLI start to exit) and its final.json."""
    with tempfile.TemporaryDirectory() as out:
        cli = Path(sys.executable).with_name("fer-bench")  # the console script, as installed
        argv = [str(cli), *COMMAND, *extra, "--out", out]
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        final = json.loads(next(Path(out).glob("*/final.json")).read_text())
    return seconds, final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the lines to this file")
    args = parser.parse_args()
    lines = []
    for label, extra in (("as this machine runs it", []), ("forced fp32", ["--no-bf16"])):
        seconds, final = timed_run(extra)
        env = final.get("environment", {})
        lines.append(
            f"fer-bench {' '.join(COMMAND + extra)}: {seconds / 60:.1f} min ({label}: "
            f"{final.get('precision')}, {env.get('cpu')}, {env.get('torch_threads')} torch "
            f"threads; test acc {100 * final['selection']['val']['test']['acc']:.2f} %)"
        )
        print(lines[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
