"""Where sweep jobs run: local worker processes or a Ray cluster.

Both call the same :func:`run_job` and the engine writes the same run
directories, so results do not depend on the executor. A job's failure is a
:class:`JobResult`, never an exception, so one bad job does not stop the rest.
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

from fer_bench.config import RunConfig
from fer_bench.results import keep_traceback

DEFAULT_TRAINER = "fer_bench.engine"  # module with train(cfg, out_root, resume, progress)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Job:
    cfg: RunConfig
    out_root: Path  # absolute: workers may run in another directory or on another node
    name: str  # the run directory's name


@dataclass(frozen=True)
class JobResult:
    name: str
    status: str  # done | failed
    reason: str | None
    time_s: float


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def limit_threads(threads: int) -> None:
    """Pin this process's intra-op threads so parallel jobs do not oversubscribe cores."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def run_job(job: Job, trainer: str = DEFAULT_TRAINER, threads: int | None = None) -> JobResult:
    """Train one job (resuming from its checkpoint) and report, never raise."""
    started = time.perf_counter()
    module = importlib.import_module(trainer)
    if threads:
        limit_threads(threads)
    try:
        final = module.train(job.cfg, job.out_root, resume=True, progress=False)
    except Exception as err:
        # Kept in the run directory so the table can say why the run is incomplete; a
        # run another process holds (the engine's RunBusy) is that process's to record.
        out = module.run_dir(job.cfg, job.out_root)
        busy = getattr(module, "RunBusy", ())
        if out.is_dir() and not isinstance(err, busy):
            keep_traceback(out)
        reason = f"{type(err).__name__}: {err}"
        return JobResult(job.name, "failed", reason, time.perf_counter() - started)
    status = "done" if final.get("status") == "done" else "failed"
    reason = None if status == "done" else str(final.get("reason") or "no reason recorded")
    return JobResult(job.name, status, reason, time.perf_counter() - started)


def die_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the sweep that started it dies, even by
    SIGKILL, so no orphan goes on training a job the next sweep also starts."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


class Executor(Protocol):
    def run(self, jobs: list[Job], trainer: str) -> Iterator[JobResult]: ...


class LocalExecutor:
    """``workers`` spawned processes; each gets cores // workers torch threads."""

    def __init__(self, workers: int = 1, cores: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"--workers must be at least 1 (got {workers})")
        self.workers = workers
        self.threads = max(1, (cores or available_cores()) // workers)

    def run(self, jobs: list[Job], trainer: str = DEFAULT_TRAINER) -> Iterator[JobResult]:
        pending = list(jobs)
        context = multiprocessing.get_context("spawn")  # fork + torch threads can deadlock
        while pending:
            # A worker that dies (killed, out of memory) breaks the pool: the jobs it held
            # are reported failed and the rest continue in a fresh pool.
            with ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=die_with_parent,
                initargs=(os.getpid(),),
            ) as pool:
                yield from self._drain(pool, pending, trainer)

    def _drain(
        self, pool: ProcessPoolExecutor, pending: list[Job], trainer: str
    ) -> Iterator[JobResult]:
        running: dict[Future, Job] = {}
        broken = False
        while running or (pending and not broken):
            # Never more submitted than workers: a submitted job is a running job.
            while pending and not broken and len(running) < self.workers:
                job = pending.pop(0)
                running[pool.submit(run_job, job, trainer, self.threads)] = job
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool:
                    broken = True
                    yield JobResult(
                        job.name,
                        "failed",
                        "worker process died while this job "
                        "ran (killed or out of memory?); rerun the sweep to resume",
                        0.0,
                    )


class RayExecutor:
    """One Ray task per job with its CPU/GPU request; starts a local Ray without an address."""

    def __init__(
        self,
        address: str | None = None,
        cpus_per_job: float = 1.0,
        gpus_per_job: float = 0.0,
        local_cpus: int | None = None,
    ) -> None:
        if cpus_per_job <= 0 or gpus_per_job < 0:
            raise ValueError("--cpus-per-job must be positive and --gpus-per-job not negative")
        self.address = address
        self.cpus_per_job = cpus_per_job
        self.gpus_per_job = gpus_per_job
        self.local_cpus = local_cpus or available_cores()

    def _init(self) -> tuple[ModuleType, bool]:
        """The ray module (an optional extra, imported here) and whether we started it."""
        try:
            import ray
        except ImportError:
            raise ValueError("--executor ray needs Ray: pip install 'fer-bench[ray]'") from None
        if ray.is_initialized():
            return ray, False
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.local_cpus, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = self.address or "a new local instance"
            raise ValueError(f"cannot start Ray at {where}: {err}") from None
        return ray, True

    def run(self, jobs: list[Job], trainer: str = DEFAULT_TRAINER) -> Iterator[JobResult]:
        ray, started = self._init()
        threads = max(1, int(self.cpus_per_job))
        task = ray.remote(run_job).options(
            num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job, max_retries=0
        )
        refs = {task.remote(job, trainer, threads): job for job in jobs}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                job = refs.pop(ready[0])
                try:
                    yield ray.get(ready[0])
                except ray.exceptions.RayError as err:
                    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                    yield JobResult(job.name, "failed", f"Ray: {type(err).__name__}: {first}", 0.0)
        finally:
            for ref in refs:
                ray.cancel(ref)
            if started:
                ray.shutdown()
