"""Whether a cached dataset is read into memory or used memory-mapped.

In memory is today's path and the fastest when it fits: batches are gathered
on the device. The engine holds an in-memory set about six times over at its
peak (the cached array, the training subset, and a float32 copy for the
normalisation statistics), so a set is mapped instead once its images exceed
an eighth of the memory available. ``$FER_BENCH_DATA_PATH`` = ``memory`` |
``mmap`` | ``auto`` (default) overrides the choice.
"""

from __future__ import annotations

import os

PATH_ENV = "FER_BENCH_DATA_PATH"
PATHS = ("memory", "mmap")
MEMORY_SHARE = 1 / 8  # in memory while the images take at most this share of available memory


def available_memory() -> int:
    """Bytes the kernel can hand out without swapping (MemAvailable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def requested_path() -> str:
    """$FER_BENCH_DATA_PATH: memory, mmap or auto."""
    asked = os.environ.get(PATH_ENV, "auto").strip().lower() or "auto"
    if asked not in (*PATHS, "auto"):
        raise ValueError(f"${PATH_ENV} must be memory, mmap or auto (got {asked!r})")
    return asked


def choose_path(image_bytes: int) -> str:
    """The data path (memory or mmap) of a dataset whose images take ``image_bytes``."""
    asked = requested_path()
    if asked != "auto":
        return asked
    return "memory" if image_bytes <= MEMORY_SHARE * available_memory() else "mmap"
