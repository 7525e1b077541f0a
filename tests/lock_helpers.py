"""Another holder of a file lock, for the tests of a sweep, tune or run that finds its
lock held: refused without ``--wait``, queued behind the holder with it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from filelock import FileLock


def hold_lock(lock: Path, seconds: float = 0.0, until: threading.Event | None = None) -> None:
    """Take ``lock`` in another thread (filelock lets its own thread re-enter a lock it
    holds) and return once it is held; the thread lets go ``seconds`` after ``until`` is
    set, or after ``seconds`` without an event."""
    taken = threading.Event()

    def hold() -> None:
        with FileLock(lock):
            taken.set()
            if until is not None:
                until.wait()
            time.sleep(seconds)

    threading.Thread(target=hold, daemon=True).start()
    taken.wait()
