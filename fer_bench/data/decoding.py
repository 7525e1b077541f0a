"""First decode of a dataset's image files into a memory-mapped ``.npy``, resumable.

Images are decoded in chunks, over all cores (a process pool; each worker writes
its chunk straight into the map, so nothing large crosses processes or stays
resident). A chunk's marker file is written only after its rows are flushed,
so an interrupted decode (killed, Ctrl-C) resumes with the chunks not yet
marked instead of starting over.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fer_bench.atomic import disk_full_named
from fer_bench.data.imaging import ImageRef, check_format, decode_file
from fer_bench.processes import die_with_parent

CHUNK = 500  # images per chunk: the unit of parallel work and of resumption
POOL_MIN_IMAGES = 2000  # below this a pool's start-up costs more than it saves
WORKERS_ENV = "FER_BENCH_DECODE_WORKERS"


def decode_workers() -> int:
    """Decode processes: $FER_BENCH_DECODE_WORKERS, else every core this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = os.environ.get(WORKERS_ENV, "").strip()
    if not text:
        return max(1, cores or 1)
    try:
        workers = int(text)
    except ValueError:
        workers = 0
    if workers < 1:
        raise ValueError(
            f"${WORKERS_ENV}={text!r}: expected a whole number of processes, 1 or more"
        )
    return workers


def markers_dir(path: Path) -> Path:
    return path.with_name(path.name + ".chunks")


def decode_chunk(path: Path, refs: list[ImageRef], start: int, size: int, channels: int) -> int:
    """Decode ``refs`` into rows ``start:`` of the map at ``path``, then mark the chunk done."""
    array = np.load(path, mmap_mode="r+")
    for j, ref in enumerate(refs):
        array[start + j] = decode_file(ref, size, channels)
    array.flush()
    del array
    (markers_dir(path) / f"{start:09d}").touch()
    return len(refs)


def _open_partial(path: Path, shape: tuple[int, ...]) -> None:
    """Keep a partial map of the right shape and its markers; else start a fresh one."""
    markers = markers_dir(path)
    try:
        if np.load(path, mmap_mode="r").shape == shape and markers.is_dir():
            return
    except (OSError, ValueError):
        pass  # absent, or killed while its header was written
    shutil.rmtree(markers, ignore_errors=True)
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape).flush()
    markers.mkdir()


def _reserve(path: Path) -> None:
    """Allocate the map's blocks on disk before any worker writes through it: a map
    over a sparse file meets a full disk as SIGBUS (a bus error, no message), a
    reservation as ENOSPC here, which the caller names as a full disk."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            return  # a file system without fallocate: written as before
        raise
    finally:
        os.close(fd)


def decode_to_npy(refs: list[ImageRef], path: Path, size: int, channels: int) -> np.ndarray:
    """All images as a read-only memory-mapped uint8 (N, C, size, size) ``.npy`` at ``path``,
    in the order given; chunks a previous, interrupted call finished are not decoded again."""
    check_format(size, channels)
    if not refs:
        raise ValueError("no images to decode (empty split)")
    _open_partial(path, (len(refs), channels, size, size))
    with disk_full_named(path.parent):
        _reserve(path)  # also a kept partial map: resumed after freeing space
    done = {int(p.name) for p in markers_dir(path).iterdir()}
    todo = [s for s in range(0, len(refs), CHUNK) if s not in done]
    workers = min(decode_workers(), len(todo))
    with _progress(len(refs) >= POOL_MIN_IMAGES) as progress:
        task = progress.add_task("decoding images", total=len(refs))
        progress.advance(task, sum(min(CHUNK, len(refs) - s) for s in done))
        if workers < 2 or len(refs) < POOL_MIN_IMAGES:
            for s in todo:
                progress.advance(task, decode_chunk(path, refs[s : s + CHUNK], s, size, channels))
        else:
            _decode_pool(
                refs, path, size, channels, todo, workers, lambda n: progress.advance(task, n)
            )
    return np.load(path, mmap_mode="r")


def _decode_pool(
    refs: list[ImageRef],
    path: Path,
    size: int,
    channels: int,
    todo: list[int],
    workers: int,
    advance: Callable[[int], None],
) -> None:
    # fork: workers need only PIL/numpy, and spawning would re-import torch in each.
    # die_with_parent: a killed sweep worker takes its decoders along.
    ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=die_with_parent, initargs=(os.getpid(),)
    )
    try:
        futures = [
            pool.submit(decode_chunk, path, refs[s : s + CHUNK], s, size, channels) for s in todo
        ]
        for future in as_completed(futures):
            advance(future.result())
    finally:
        # On an error or interrupt, chunks not yet started are dropped; finished ones keep
        # their markers for the next attempt.
        pool.shutdown(wait=True, cancel_futures=True)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not enabled,
    )
