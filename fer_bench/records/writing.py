"""Run records on disk: atomic JSON files, the per-epoch log, the environment."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "timm", "numpy", "scipy", "datasets", "pillow", "rich", "typer")


class DiskFull(OSError):
    """A write that found the disk full; str() is the one line naming the directory."""

    def __str__(self) -> str:
        return str(self.strerror)


@contextlib.contextmanager
def disk_full_named(directory: Path) -> Iterator[None]:
    """Turn "no space left" (or an exhausted quota) inside into :class:`DiskFull` naming
    ``directory``: what was written whole stays, so the same command resumes later."""
    try:
        yield
    except DiskFull:
        raise
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DiskFull(
            err.errno,
            f"disk full: no space left in {directory}; free some and rerun the same "
            "command to resume",
        ) from None


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write through a synced temporary file and rename: a reader never sees half a file,
    and a full disk leaves the previous file and no .tmp."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with disk_full_named(path.parent), open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # a full disk or read-only file system leaves no .tmp


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1))


def jsonl_text(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, jsonl_text(rows))


DONE_MARKER = "done"
# What final.json records of the files beside it, checked by :func:`damage`.
SEALED = {"metrics_sha256": "metrics.jsonl", "config_sha256": "config.json"}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def seal_run(out: Path, record: dict[str, Any]) -> None:
    """Finish a run: final.json with the digests of metrics.jsonl and config.json, then
    the done marker holding final.json's digest. A record changed after this (a flipped
    bit, an edited number) no longer matches, and :func:`damage` says so."""
    for key, name in SEALED.items():
        if (out / name).exists():  # a run that failed in its first epoch has no log
            record[key] = file_sha256(out / name)
    write_json_atomic(out / "final.json", record)
    write_json_atomic(out / DONE_MARKER, {"final.json": file_sha256(out / "final.json")})


def damage(out: Path) -> str | None:
    """Why a finished run's records are not as it wrote them, or None. A run finished
    before records were sealed (an empty done marker) is read as before, unchecked."""
    try:
        marker = (out / DONE_MARKER).read_text()
        if not marker.strip():
            return None
        digests = {**json.loads(marker)}
        final_path = out / "final.json"
        if file_sha256(final_path) != digests.get("final.json"):
            return "final.json changed since the run finished (digest in done differs)"
        final = json.loads(final_path.read_text())
        for key, name in SEALED.items():
            if key in final and file_sha256(out / name) != final[key]:
                return f"{name} changed since the run finished (digest in final.json differs)"
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
        return f"records unreadable ({type(err).__name__}: {err})"
    return None


SEAL_KEY = "sha256"  # in a sealed JSON record: the digest of the rest of it


def _canonical_digest(obj: dict[str, Any]) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def seal_json(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with the digest of its content: :func:`unseal` then notices any change."""
    rest = {k: v for k, v in obj.items() if k != SEAL_KEY}
    return {**rest, SEAL_KEY: _canonical_digest(rest)}


def unseal(obj: dict[str, Any], path: Path) -> dict[str, Any]:
    """A sealed record without its seal; ValueError naming ``path`` when its content
    changed since it was written. One written before seals (no digest) is read as is."""
    rest = {k: v for k, v in obj.items() if k != SEAL_KEY}
    if SEAL_KEY in obj and obj[SEAL_KEY] != _canonical_digest(rest):
        raise ValueError(f"{path}: changed since it was written (its sha256 differs)")
    return rest


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file ([] when absent); a bad line names the file and line."""
    if not path.exists():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not valid JSON ({err.msg})") from None
    return rows


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
