"""One process per run directory: the lock file beside it, and deleting a run under it.

API:
    hold(lock_path, wait, busy) -> context manager; raises busy(lock_path) if held elsewhere
    run_lock(out, wait) -> context manager; RunBusy if another process holds it
    delete_run(out): remove a run directory, its ``done`` marker first (call under the lock)
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from fer_bench.records.layout import CHECKPOINT, DONE_MARKER, PREVIOUS_CHECKPOINT, lock_path


class RunBusy(RuntimeError):
    """Another process holds the run directory's lock."""


@contextmanager
def hold(lock_path: Path, wait: bool, busy: Callable[[Path], Exception]) -> Iterator[None]:
    """Hold a file lock: queue behind its holder (``wait``) or raise ``busy(lock_path)``
    at once, as a one-line error rather than filelock's Timeout."""
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise busy(lock_path) from None
        # Said once, so a queued command is not mistaken for a hung one.
        print(f"waiting for the holder of {lock_path} to finish", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def run_lock(out: Path, wait: bool) -> AbstractContextManager[None]:
    """One process per run directory; the lock file lies beside it, so deleting the
    directory to start over never deletes a lock another process holds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return hold(
        lock_path(out),
        wait,
        lambda lock: RunBusy(
            f"another process is training {out} (lock {lock}); "
            "`fer-bench run --wait` queues behind it"
        ),
    )


def delete_run(out: Path) -> None:
    """Remove a run directory: the done marker first, then its checkpoints, so a removal
    cut short leaves a run that starts over, never a done marker without its record nor
    an old checkpoint that a run would resume as current."""
    for name in (DONE_MARKER, CHECKPOINT, PREVIOUS_CHECKPOINT):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out)
