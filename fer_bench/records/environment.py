"""What produced a run's numbers, as its final.json records them: the code (commit and
source digest), the machine and the package versions."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "timm", "numpy", "scipy", "datasets", "pillow", "rich", "typer")


def source_digest(packages: dict[str, Path]) -> str:
    """sha256 over the .py and .toml files of each package folder (name -> folder).

    A folder nested in an earlier one (installed fer_bench/methods) counts only
    under its own name, so an installed copy and a checkout give the same digest.
    """
    folders = {name: base.resolve() for name, base in packages.items()}
    digest = hashlib.sha256()
    for name, base in folders.items():
        others = [f for f in folders.values() if f != base and f.is_relative_to(base)]
        for f in sorted(base.rglob("*")):
            if f.suffix not in (".py", ".toml") or "__pycache__" in f.parts:
                continue
            if any(f.resolve().is_relative_to(o) for o in others):
                continue
            digest.update(f"{name}/{f.relative_to(base).as_posix()}\n".encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def code_version() -> dict[str, Any]:
    """The git commit of the fer_bench checkout (and whether it had local edits), and a
    digest of the source itself, which still identifies the code where git is absent
    (an installed wheel, a copied tree).

    Read once per process: a sweep worker keeps running the code it imported at its
    first run, so edits to the checkout made later are not the code of its later runs.
    """
    import fer_bench.methods
    import fer_bench.protocols

    source = source_digest(
        {
            m.__name__: Path(m.__file__).parent
            for m in (fer_bench, fer_bench.methods, fer_bench.protocols)
        }
    )
    root = Path(fer_bench.__file__).resolve().parent.parent
    info: dict[str, Any] = {
        "fer_bench": fer_bench.__version__,
        "source_sha256": source,
        "commit": None,
        "dirty": None,
    }
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if commit.returncode == 0:
            info["commit"] = commit.stdout.strip()
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=5,
            )
            info["dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


@functools.cache
def cpu_model() -> str:
    """The CPU's model as /proc/cpuinfo names it; platform.processor() on Linux says
    only x86_64, which cannot tell apart two hosts whose epochs differ 5x."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str) -> dict[str, Any]:
    """What produced the numbers: versions, machine, accelerator, code commit."""
    import torch  # here, not at the top: reading records needs no torch

    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "packages": packages,
        "code": dict(code_version()),  # a copy: the cached one must stay as read
    }
