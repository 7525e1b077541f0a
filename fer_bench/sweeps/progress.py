"""What a sweep's workers are doing, read from the run directories while they train.

Workers are other processes (or other machines) and train without a progress bar; the
run directories they write say how far each job is: ``metrics.jsonl`` gains a line per
epoch, ``done`` marks a finished run. :class:`SweepProgress` reads them every few
seconds and shows jobs done / total, each training job's epoch and an ETA from this
sweep's own pace (epochs finished since it started), on a terminal as a status line,
otherwise as a line every ``interval`` seconds (a log file shows the sweep alive).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from rich.console import Console

from fer_bench.records.layout import DONE_MARKER, METRICS


@dataclass(frozen=True)
class JobState:
    path: Path
    epochs: int  # the job's planned epochs


def _epochs_done(path: Path) -> int:
    try:
        with (path / METRICS).open("rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def status_line(jobs: list[JobState], done: list[int], gained: int, elapsed: float) -> str:
    """``3/12 jobs done; training: ce-1a2b epoch 4/30, ...; 98/360 epochs, ETA 1 h 20 min``.
    ``done``: each job's epochs recorded; ``gained``: epochs trained since the sweep
    started, the pace's numerator (a resumed job's earlier epochs are not this sweep's)."""
    finished = sum((j.path / DONE_MARKER).exists() for j in jobs)
    training = [
        f"{j.path.name} epoch {e}/{j.epochs}"
        for j, e in zip(jobs, done, strict=True)
        if 0 < e < j.epochs and not (j.path / DONE_MARKER).exists()
    ]
    total = sum(j.epochs for j in jobs)
    epochs = min(sum(min(e, j.epochs) for j, e in zip(jobs, done, strict=True)), total)
    pace = gained / elapsed if elapsed > 0 else 0.0
    if epochs >= total:
        eta = "finishing"
    elif pace > 0:
        eta = f"ETA {_duration((total - epochs) / pace)} at this sweep's pace so far"
    else:
        eta = "ETA after the first epoch"
    running = f"training: {', '.join(training)}; " if training else ""
    return f"{finished}/{len(jobs)} jobs done; {running}{epochs}/{total} epochs, {eta}"


class SweepProgress:
    """A context manager that reports ``jobs``' progress from a thread while it is open."""

    def __init__(self, jobs: list[JobState], console: Console, interval: float = 60.0) -> None:
        self.jobs, self.console, self.interval = jobs, console, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._report, daemon=True)
        self._start = time.monotonic()
        self._seen = [min(_epochs_done(j.path), j.epochs) for j in jobs]
        self._gained = 0

    def line(self) -> str:
        done = [min(_epochs_done(j.path), j.epochs) for j in self.jobs]
        # A job started over (--rerun-stale, --retry-failed) drops to its first epoch:
        # only growth counts, or its old epochs would cancel the new ones out of the pace.
        self._gained += sum(max(0, d - s) for d, s in zip(done, self._seen, strict=True))
        self._seen = done
        return status_line(self.jobs, done, self._gained, time.monotonic() - self._start)

    def _report(self) -> None:
        if self.console.is_terminal:
            with self.console.status(self.line()) as status:
                while not self._stop.wait(2.0):
                    status.update(self.line())
            return
        while not self._stop.wait(self.interval):
            self.console.print(self.line(), highlight=False)

    def __enter__(self) -> SweepProgress:
        if self.jobs:
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
