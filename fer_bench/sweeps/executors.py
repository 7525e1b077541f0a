"""Where sweep jobs run: local worker processes or a Ray cluster.

Both call the same :func:`run_job` and the engine writes the same run
directories, so results do not depend on the executor. A job's failure is a
:class:`JobResult`, never an exception, so one bad job does not stop the rest.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Protocol

from fer_bench.config import RunConfig
from fer_bench.processes import available_cores, die_with_parent, limit_threads
from fer_bench.records.lock import RunBusy
from fer_bench.records.reading import keep_traceback

DEFAULT_TRAINER = "fer_bench.training.engine"  # module with train(cfg, out_root, resume, progress)


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
        # run another process holds (RunBusy) is that process's to record.
        out = module.run_dir(job.cfg, job.out_root)
        if out.is_dir() and not isinstance(err, RunBusy):
            keep_traceback(out)
        reason = f"{type(err).__name__}: {err}"
        return JobResult(job.name, "failed", reason, time.perf_counter() - started)
    status = "done" if final.get("status") == "done" else "failed"
    reason = None if status == "done" else str(final.get("reason") or "no reason recorded")
    return JobResult(job.name, status, reason, time.perf_counter() - started)


class Executor(Protocol):
    def run(self, jobs: list[Job], trainer: str) -> Iterator[JobResult]: ...


class LocalExecutor:
    """``workers`` spawned processes; each gets cores // workers torch threads.

    ``devices``: the device of each worker (a GPU sweep, :mod:`fer_bench.sweeps.gpu_slots`),
    which then replaces ``workers``; a worker trains every job it takes on its device.
    Without it jobs keep their own device. Each worker is a pool of its own, so a
    worker holds one device for its whole life and one that dies (killed, out of
    memory) fails only the job it held: it is replaced and the rest continue.
    """

    def __init__(
        self, workers: int = 1, cores: int | None = None, devices: list[str] | None = None
    ) -> None:
        if workers < 1:
            raise ValueError(f"--workers must be at least 1 (got {workers})")
        self.devices: list[str | None] = list(devices) if devices else [None] * workers
        self.threads = max(1, (cores or available_cores()) // len(self.devices))

    def run(self, jobs: list[Job], trainer: str = DEFAULT_TRAINER) -> Iterator[JobResult]:
        pending = list(jobs)
        context = multiprocessing.get_context("spawn")  # fork + torch threads can deadlock
        pools = [_worker(context) for _ in self.devices]
        running: dict[Future, tuple[int, Job]] = {}
        try:
            while running or pending:
                self._submit(pools, pending, running, trainer)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    slot, job = running.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        pools[slot].shutdown(wait=False)
                        pools[slot] = _worker(context)
                        yield JobResult(
                            job.name,
                            "failed",
                            "worker process died while this job "
                            "ran (killed or out of memory?); rerun the sweep to resume",
                            0.0,
                        )
        except BaseException:
            # An interrupt sent to the sweep alone (kill -INT): end its workers rather
            # than wait out their jobs; each resumes from its last epoch's checkpoint.
            for pool in pools:
                _terminate_workers(pool)
            raise
        finally:
            for pool in pools:
                pool.shutdown(wait=True, cancel_futures=True)

    def _submit(
        self,
        pools: list[ProcessPoolExecutor],
        pending: list[Job],
        running: dict[Future, tuple[int, Job]],
        trainer: str,
    ) -> None:
        """The next pending jobs to the idle workers: a submitted job is a running job."""
        busy = {slot for slot, _ in running.values()}
        for slot in range(len(pools)):
            if slot in busy or not pending:
                continue
            job = pending.pop(0)
            placed = _on_device(job, self.devices[slot])
            running[pools[slot].submit(run_job, placed, trainer, self.threads)] = (slot, job)


def _worker(context: multiprocessing.context.BaseContext) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        1, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)
    )


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    """End ``pool``'s processes, and no other child of this process (a caller's own
    helper processes are not the sweep's to end)."""
    # ProcessPoolExecutor.terminate_workers() is Python 3.14's; before it a pool's
    # processes are reachable only through its private map (None once shut down).
    for process in list((pool._processes or {}).values()):
        process.terminate()


def _on_device(job: Job, device: str | None) -> Job:
    """``job`` trained on ``device``: the same run directory, the device being no part
    of the experiment."""
    if device is None:
        return job
    return replace(job, cfg=replace(job.cfg, device=device))


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
