"""Corruption faults for bench/faults.py: damage what fer-bench reads back, then ask it.

Each trial copies something whole, damages one file of it (``bit flips``: a few random
bits; ``overwrite``: 64 random bytes in place, the size unchanged) and reads it back as
fer-bench would. A trial is scored:

- detected: fer-bench said so (a corrupt run, a checkpoint refused, a cache entry
  rebuilt) and what it went on with equals the undamaged reference;
- harmless: nothing was said and every number read equals the reference (the change
  hit bytes that carry none);
- silently wrong: nothing was said and a number read differs from the reference;
- lost: healthy data was discarded (a run started over although a whole checkpoint
  remained, a partial run recorded as failed) or a read raised instead of recovering.

The full-disk trials need a small tmpfs: they run only where this process may mount one
(root, with CAP_SYS_ADMIN) and are reported as skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_bench.config import DataConfig, RunConfig
from fer_bench.records.identity import config_part
from fer_bench.records.layout import (
    CHECKPOINT,
    CONFIG,
    DONE_MARKER,
    ERROR_FILE,
    FINAL,
    METRICS,
    PREVIOUS_CHECKPOINT,
)
from fer_bench.records.reading import RunState, run_state

OUTCOMES = ("detected", "harmless", "silently wrong", "lost")
VOLATILE = ("time_s", "train_time_s")


@dataclass
class Score:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, what: str, outcome: str, note: str = "") -> None:
        row = self.counts.setdefault(what, dict.fromkeys(OUTCOMES, 0))
        row[outcome] += 1
        if outcome in ("silently wrong", "lost"):
            self.notes.append(f"{what}: {outcome}: {note}")

    def report(self) -> str:
        lines = [f"{'fault':<44}" + "".join(f"{o:>16}" for o in OUTCOMES)]
        totals = dict.fromkeys(OUTCOMES, 0)
        for what, row in self.counts.items():
            lines.append(f"{what:<44}" + "".join(f"{row[o]:>16}" for o in OUTCOMES))
            for o in OUTCOMES:
                totals[o] += row[o]
        lines.append(f"{'total':<44}" + "".join(f"{totals[o]:>16}" for o in OUTCOMES))
        return "\n".join(lines + self.notes)


def flip_bits(path: Path, rng: random.Random, n: int = 8) -> None:
    data = bytearray(path.read_bytes())
    for _ in range(n):
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def overwrite(path: Path, rng: random.Random, n: int = 64) -> None:
    data = bytearray(path.read_bytes())
    n = min(n, len(data))
    at = rng.randrange(len(data) // 4, max(len(data) // 4 + 1, 3 * len(data) // 4 - n))
    data[at : at + n] = bytes(rng.randrange(256) for _ in range(n))
    path.write_bytes(bytes(data))


FAULTS: dict[str, Callable[[Path, random.Random], None]] = {
    "bit flips": flip_bits,
    "overwrite": overwrite,
}


def metric_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / METRICS).read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


def _selection(run: Path) -> object:
    return json.loads((run / FINAL).read_text()).get("selection")


# --- finished records: metrics.jsonl, final.json, config.json of a done run ---


def record_trials(
    reference: Path, work: Path, rng: random.Random, trials: int, score: Score
) -> None:
    runs = sorted(p for p in reference.iterdir() if (p / DONE_MARKER).exists())
    for name in (METRICS, FINAL, CONFIG):
        for fault, damage in FAULTS.items():
            for t in range(trials):
                source = rng.choice(runs)
                copy = work / "records" / f"{name}-{fault}-{t}" / source.name
                shutil.rmtree(copy.parent, ignore_errors=True)
                shutil.copytree(source, copy)
                damage(copy / name, rng)
                what = f"finished run: {name}, {fault}"
                state, _ = run_state(copy)
                if state is RunState.CORRUPT:
                    score.add(what, "detected")
                    continue
                try:
                    same = metric_rows(copy) == metric_rows(source) and _selection(
                        copy
                    ) == _selection(source)
                    same &= json.loads((copy / CONFIG).read_text()) == json.loads(
                        (source / CONFIG).read_text()
                    )
                except ValueError:
                    same = False
                score.add(what, "harmless" if same else "silently wrong", str(copy))


# --- checkpoints of a partial run: resumed from only when whole ---


def checkpoint_trials(
    reference: Path, work: Path, plugin: Path, rng: random.Random, trials: int, score: Score
) -> None:
    from fer_bench.registry import load_plugin_file
    from fer_bench.training import engine

    load_plugin_file(plugin)
    runs = sorted(p for p in reference.iterdir() if (p / DONE_MARKER).exists())
    for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
        for fault, damage in FAULTS.items():
            for t in range(trials):
                source = rng.choice(runs)
                root = work / "checkpoints" / f"{name}-{fault}-{t}"
                shutil.rmtree(root, ignore_errors=True)
                copy = root / source.name
                shutil.copytree(source, copy)
                for done in (DONE_MARKER, FINAL):  # partial: its last epoch not finished
                    (copy / done).unlink()
                damage(copy / name, rng)
                cfg = RunConfig.from_dict(config_part(json.loads((copy / CONFIG).read_text())))
                cfg.plugin = None  # loaded above, from the bench's own file
                said: list[str] = []
                what = f"partial run: {name}, {fault}"
                try:
                    final = engine.train(cfg, root, progress=False, notify=said.append)
                except Exception as err:
                    score.add(what, "lost", f"{copy}: {type(err).__name__}: {err}")
                    continue
                refused = any("unreadable" in m for m in said)
                over = any("starting over" in m for m in said)
                same = final.get("status") == "done" and metric_rows(copy) == metric_rows(source)
                if final.get("status") != "done" or over:  # a whole checkpoint was left
                    score.add(what, "lost", f"{copy}: {said}")
                elif not same:
                    score.add(what, "silently wrong", f"{copy}: {said}")
                else:
                    score.add(what, "detected" if refused else "harmless")


# --- the image cache: arrays, labels and metadata of an entry ---


def _bundle_arrays(bundle) -> dict[str, object]:
    out: dict[str, object] = {"class_names": list(bundle.class_names)}
    for split in ("train", "val", "test"):
        s = getattr(bundle, split)
        out[f"{split}.images"] = np.asarray(s.images[:] if hasattr(s.images, "rows") else s.images)
        out[f"{split}.labels"] = np.asarray(s.labels)
    return out


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def cache_trials(work: Path, rng: random.Random, trials: int, score: Score) -> None:
    from fer_bench.data import load_dataset
    from fer_bench.data import testing as fx

    data = fx.write_rafdb(work / "rafdb", n_train=60, n_test=20)
    os.environ["FER_BENCH_CACHE"] = str(work / "cache")
    cfg = DataConfig(name="rafdb", root=str(data), image_size=32)
    shutil.rmtree(work / "cache", ignore_errors=True)
    reference = _bundle_arrays(load_dataset(cfg))
    (entry,) = (work / "cache").glob("rafdb-*")
    targets = {"images .npy": "images-0.npy", "labels.npz": "labels.npz", "meta.json": "meta.json"}
    for what_file, name in targets.items():
        for fault, damage in FAULTS.items():
            for _ in range(trials):
                load_dataset(cfg)  # a whole entry to damage (the last trial's was rebuilt)
                time.sleep(0.02)  # a write after the build: its mtime moves, as any later one
                damage(entry / name, rng)
                what = f"cache entry: {what_file}, {fault}"
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        again = _bundle_arrays(load_dataset(cfg))
                    except Exception as err:
                        score.add(what, "lost", f"{type(err).__name__}: {err}")
                        continue
                rebuilt = any("ignoring unreadable cache entry" in str(w.message) for w in caught)
                if not _same(again, reference):
                    score.add(what, "silently wrong", f"{entry / name}")
                else:
                    score.add(what, "detected" if rebuilt else "harmless")


# --- a full disk: a small tmpfs, then room made and the same command rerun ---


def _mount(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


def _remount(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def _leftovers(root: Path) -> list[Path]:
    """Half-written files: a .tmp, or an empty record."""
    names = (FINAL, CONFIG, METRICS, ERROR_FILE)
    return [
        p
        for p in root.rglob("*")
        if p.suffix == ".tmp" or (p.name in names and not p.stat().st_size)
    ]


def disk_full_trials(
    reference: Path,
    work: Path,
    plugin: Path,
    run_command: Callable[[Path], list[str]],
    score: Score,
) -> str:
    """A run whose checkpoint meets a full disk, then a first decode that does; each
    rerun after making room. Returns "" or why the trials were skipped."""
    mnt = work / "tmpfs"
    if not sys.platform.startswith("linux") or not _mount(mnt, "1m"):
        return "skipped: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)"
    try:
        runs = mnt / "runs"
        first = subprocess.run(run_command(runs), capture_output=True, text=True)
        said = (first.stderr + first.stdout).strip().splitlines()
        named = first.returncode == 1 and any(
            f"disk full: no space left in {runs}" in s for s in said
        )
        half = _leftovers(mnt)
        _remount(mnt, "256m")
        again = subprocess.run(run_command(runs), capture_output=True, text=True)
        (run,) = [p for p in runs.iterdir() if p.is_dir()]
        (ref,) = [p for p in reference.iterdir() if p.name == run.name]
        same = again.returncode == 0 and metric_rows(run) == metric_rows(ref)
        what = "full disk: checkpoint of a run"
        if half or again.returncode != 0:
            score.add(what, "lost", f"left {half}; rerun: {again.stderr.strip()[-300:]}")
        elif not same:
            score.add(what, "silently wrong", str(run))
        else:
            score.add(what, "detected" if named else "harmless")
        if not named:
            score.notes.append(f"{what}: said {said[-3:]} (exit {first.returncode})")
        shutil.rmtree(runs)

        _remount(mnt, "64k")
        from fer_bench.data import testing as fx

        data = fx.write_rafdb(work / "rafdb-big", n_train=100, n_test=20)
        env = {**os.environ, "FER_BENCH_CACHE": str(mnt / "cache")}
        cmd = [sys.executable, "-c", "from fer_bench.cli import app; app()", "data", "info",
               "rafdb", "--data-root", str(data), "--image-size", "48", "--json"]  # fmt: skip
        first = subprocess.run(cmd, capture_output=True, text=True, env=env)
        named = first.returncode == 1 and "disk full: no space left in" in first.stderr
        _remount(mnt, "256m")
        again = subprocess.run(cmd, capture_output=True, text=True, env=env)
        plain = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env={**env, "FER_BENCH_CACHE": str(work / "cache-big")},
        )
        what = "full disk: first decode into the cache"
        if again.returncode != 0:
            score.add(what, "lost", again.stderr.strip()[-300:])
        elif again.stdout != plain.stdout:
            score.add(what, "silently wrong", "summary differs from an uncached load")
        else:
            score.add(what, "detected" if named else "harmless")
        if not named:
            score.notes.append(
                f"{what}: said {first.stderr.strip()[-300:]!r} (exit {first.returncode})"
            )
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    return ""
