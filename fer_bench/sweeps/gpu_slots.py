"""Where a GPU sweep's local workers run: several jobs on each device, over every visible one.

One small model cannot fill a large GPU, so ``fer-bench sweep --jobs-per-device N``
gives each visible device N worker processes. A worker trains its jobs on its own
device (``cfg.device = "cuda:i"``): the device is not part of the experiment
(:mod:`fer_bench.records.identity`), so every run directory is the one a single-device
sweep writes.
"""

from __future__ import annotations

AUTO = "auto"
# ``auto``'s memory per job: a guess with headroom, not a measurement. A worker holds
# a CUDA context (~0.5 GiB), its training images on the device (FERPlus at 96 px:
# 0.3 GiB) and a ResNet-18's bf16 activations at batch 256 (~1.5 GiB).
AUTO_JOB_BYTES = 3 * 2**30


def parse_jobs_per_device(text: str) -> int | str:
    """``--jobs-per-device``: a positive count, or ``auto``."""
    if text == AUTO:
        return AUTO
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"--jobs-per-device must be a positive integer or auto (got {text!r})")
    return count


def visible_devices(device: str, count: int) -> list[str]:
    """The devices a sweep on ``device`` spreads over, given ``count`` visible GPUs:
    all of them for ``cuda``, only the one named for ``cuda:i``."""
    kind, _, index = device.partition(":")
    if kind != "cuda":
        raise ValueError(
            f"--jobs-per-device places jobs on GPUs; this sweep runs on {device!r} "
            "(use --workers for parallel CPU jobs)"
        )
    if count == 0:
        raise ValueError(f"--jobs-per-device: no CUDA GPU is visible here (--device {device})")
    if not index:
        return [f"cuda:{i}" for i in range(count)]
    if not index.isdigit() or int(index) >= count:
        raise ValueError(f"--device {device}: only {count} CUDA GPU(s) are visible")
    return [device]


def auto_jobs_per_device(free_bytes: list[int], cores: int, job_bytes: int = AUTO_JOB_BYTES) -> int:
    """``auto``: as many jobs as the device with the least free memory holds at
    ``job_bytes`` each, at most one per CPU core over all devices (a worker's host
    thread launches its kernels), and at least one."""
    by_memory = min(free_bytes) // job_bytes
    by_cores = cores // len(free_bytes)
    return max(1, min(by_memory, by_cores))


def worker_devices(devices: list[str], per_device: int) -> list[str]:
    """The device of each worker: ``per_device`` on each device, interleaved, so that
    the first jobs (workers take jobs in order) spread over every device."""
    return [device for _ in range(per_device) for device in devices]


def free_memory(devices: list[str]) -> list[int]:
    """Free bytes on each device now (initialises CUDA in this process)."""
    import torch  # here, not at the top: the CLI's help needs no torch

    return [torch.cuda.mem_get_info(torch.device(d))[0] for d in devices]


def sweep_devices(device: str, jobs_per_device: int | str, cores: int) -> list[str]:
    """The device of each local worker of a sweep on ``device``."""
    import torch

    devices = visible_devices(device, torch.cuda.device_count())
    if jobs_per_device == AUTO:
        jobs_per_device = auto_jobs_per_device(free_memory(devices), cores)
    return worker_devices(devices, int(jobs_per_device))
