"""Fault injection: SIGKILL a small sweep at random moments, rerun it, compare records;
then damage what fer-bench reads back (bench/corruption.py) and score what it did.

    python bench/faults.py [--kills 10] [--corrupt 2] [--seed 0] [--work DIR]

Runs a 2-method x 1-seed x 3-epoch sweep on a tiny synthetic dataset (a plugin
file written to the work directory) once uninterrupted as the reference, then
again, killing the sweep's main process with SIGKILL at K random moments and
rerunning it after each kill. A sweep that finishes before its kill is compared
and started afresh, so every one of the K kills lands in a running sweep.
Prints the kills survived (the rerun found no failed or corrupt run), the epochs
redone (logged in metrics.jsonl but not yet in a checkpoint when killed),
whether every finished sweep's records equal the reference's (timings aside)
and the worker processes left alive after their sweep was killed.

``--corrupt N`` then runs N trials of each corruption fault (bit flips and same-size
overwrites of finished records, of a partial run's checkpoints and of an image cache
entry's arrays, labels and metadata; a full disk on a small tmpfs where this process
may mount one) and prints, per fault, how many were detected, harmless, silently wrong
or lost (target: 0 silently wrong, 0 lost). ``--kills 0 --corrupt N`` runs the
corruption faults alone (after the reference sweep they compare against).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import corruption
import torch

from fer_bench.records.layout import CHECKPOINT, METRICS, PREVIOUS_CHECKPOINT
from fer_bench.records.reading import RunState, run_state

PLUGIN = '''
from fer_bench.data.testing import synthetic_bundle
from fer_bench.registry import DATASETS


@DATASETS.register("faults-tiny")
def load(cfg):
    """256/64/64 synthetic faces at 24 px."""
    return synthetic_bundle(256, 64, 64, size=24, name="faults-tiny")
'''
VOLATILE = ("time_s", "train_time_s")  # wall times differ between any two runs
ORPHAN_GRACE_S = 3.0


@dataclass
class Tally:
    kills: int = 0
    survived: int = 0
    redone: int = 0
    orphans: int = 0
    finished_sweeps: int = 0
    identical: bool = True


def sweep_command(plugin: Path, out: Path, epochs: int, workers: int) -> list[str]:
    cli = "from fer_bench.cli import app; app()"
    return [
        sys.executable, "-c", cli, "sweep", "--methods", "ce,gce", "--seeds", "0",
        "--epochs", str(epochs), "--dataset", "faults-tiny", "--image-size", "24",
        "--batch-size", "64", "--plugin", str(plugin), "--out", str(out),
        "--workers", str(workers),
    ]  # fmt: skip


def records(out: Path) -> dict[str, list[dict]]:
    """Each run's metrics.jsonl rows, timings removed."""
    found = {}
    for path in sorted(out.glob(f"*/{METRICS}")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        found[path.parent.name] = [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]
    return found


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (workers, Python's resource tracker)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def checkpoint_epoch(run: Path) -> int:
    """Epoch of the newest readable checkpoint, as the engine would resume from."""
    for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
        try:
            return int(torch.load(run / name, weights_only=True)["epoch"])
        except Exception:  # absent or caught mid-write: the engine falls back the same way
            continue
    return 0


def run_dirs(out: Path) -> list[Path]:
    """The sweep's run directories; none when it was killed before creating ``out``."""
    return [p for p in out.iterdir() if p.is_dir()] if out.is_dir() else []


def lost_epochs(out: Path) -> int:
    """Epochs logged but not checkpointed in the interrupted runs: the rerun trains them again."""
    lost = 0
    for run in run_dirs(out):
        if run_state(run)[0] is RunState.PARTIAL:
            log = run / METRICS
            rows = len(log.read_text().splitlines()) if log.exists() else 0
            lost += max(0, rows - checkpoint_epoch(run))
    return lost


def reap_orphans(children: set[int]) -> int:
    deadline = time.monotonic() + ORPHAN_GRACE_S
    while any(map(alive, children)) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphans = {pid for pid in children if alive(pid)}
    for pid in orphans:  # counted, then ended so the next rerun starts clean
        os.kill(pid, signal.SIGKILL)
    return len(orphans)


def kill_once(cmd: list[str], delay: float, tally: Tally, out: Path) -> bool:
    """Start the sweep and SIGKILL it after ``delay`` s; False if it finished first."""
    sweep = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + delay
    children: set[int] = set()
    while time.monotonic() < deadline and sweep.poll() is None:
        children |= descendants(sweep.pid)
        time.sleep(0.05)
    if sweep.poll() is not None:
        return False
    children |= descendants(sweep.pid)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    tally.kills += 1
    tally.orphans += reap_orphans(children)
    states = [run_state(r)[0] for r in run_dirs(out)]
    tally.survived += not any(s in (RunState.FAILED, RunState.CORRUPT) for s in states)
    tally.redone += lost_epochs(out)
    return True


def finish(cmd: list[str], out: Path, reference: dict, tally: Tally) -> None:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tally.finished_sweeps += 1
    tally.identical &= records(out) == reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--corrupt", type=int, default=2, help="trials per corruption fault")
    parser.add_argument("--work", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="fer-bench-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    plugin = work / "faults_tiny.py"
    plugin.write_text(PLUGIN)
    ref_out, out = work / "reference", work / "killed"
    for path in (ref_out, out):
        shutil.rmtree(path, ignore_errors=True)

    started = time.perf_counter()
    subprocess.run(sweep_command(plugin, ref_out, args.epochs, args.workers), check=True)
    span = time.perf_counter() - started
    reference = records(ref_out)
    print(f"reference sweep: {len(reference)} runs in {span:.1f} s", flush=True)

    rng = random.Random(args.seed)
    if args.kills:
        kills(args, plugin, out, span, reference, rng)
    if args.corrupt:
        corruption_faults(args, plugin, ref_out, work, rng)
    print(f"total time: {time.perf_counter() - started:.0f} s (work directory {work})")


def corruption_faults(
    args: argparse.Namespace, plugin: Path, reference: Path, work: Path, rng: random.Random
) -> None:
    score = corruption.Score()
    corruption.record_trials(reference, work, rng, args.corrupt, score)
    corruption.checkpoint_trials(reference, work, plugin, rng, args.corrupt, score)
    corruption.cache_trials(work, rng, args.corrupt, score)

    def run_command(out: Path) -> list[str]:
        cli = "from fer_bench.cli import app; app()"
        return [
            sys.executable, "-c", cli, "run", "ce", "--seed", "0", "--epochs", str(args.epochs),
            "--dataset", "faults-tiny", "--image-size", "24", "--batch-size", "64",
            "--plugin", str(plugin), "--out", str(out), "--quiet",
        ]  # fmt: skip

    skipped = corruption.disk_full_trials(reference, work, plugin, run_command, score)
    print(score.report())
    if skipped:
        print(f"full disk: {skipped}")


def kills(
    args: argparse.Namespace,
    plugin: Path,
    out: Path,
    span: float,
    reference: dict,
    rng: random.Random,
) -> None:
    cmd = sweep_command(plugin, out, args.epochs, args.workers)
    tally = Tally()
    for _ in range(args.kills * 4):  # a sweep that finishes first gets no kill: try again
        if tally.kills == args.kills:
            break
        if not kill_once(cmd, rng.uniform(0.5, span), tally, out):
            tally.finished_sweeps += 1
            tally.identical &= records(out) == reference
            shutil.rmtree(out, ignore_errors=True)  # the next kills land in a fresh sweep
    finish(cmd, out, reference, tally)
    print(f"kills survived: {tally.survived} of {tally.kills}")
    print(f"epochs redone: {tally.redone}")
    print(f"records identical: {'yes' if tally.identical else 'no'} "
          f"({tally.finished_sweeps} finished sweeps against the reference)")  # fmt: skip
    print(f"orphans left: {tally.orphans}")
    print(f"tmp files left: {len([p for r in run_dirs(out) for p in r.glob('*.tmp')])}")


if __name__ == "__main__":
    main()
