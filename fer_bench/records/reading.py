"""Reading a results directory of runs written by the engine, and naming their protocols.

The directories' format is :mod:`fer_bench.records.layout`'s. Readers here never
raise on one bad record: a file that cannot be parsed becomes a
:class:`Problem` naming its path, so tables and plots are built from the rest.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

from fer_bench.atomic import write_text_atomic
from fer_bench.records.identity import CannotCheck, experiment_of, staleness, takes_rate
from fer_bench.records.layout import (
    CONFIG,
    DONE_MARKER,
    ERROR_FILE,
    FINAL,
    METRICS,
    RUN_FILES,
    RUNS_DIR,
    TUNING_FILE,
    damage,
    unseal,
)

# Short names for protocol labels in table headers.
_NOISE_ABBR = {"symmetric": "sym", "pairflip": "pair", "confusion": "conf"}


class RunState(StrEnum):
    DONE = "done"  # final.json says done and the done marker exists
    FAILED = "failed"  # final.json says failed
    STALE = "stale"  # done (or, to a sweep, begun), but its method changed since
    PARTIAL = "partial"  # directory exists, not finished: running or interrupted
    CORRUPT = "corrupt"  # a record file cannot be read
    TODO = "todo"  # no directory yet


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str

    def describe(self, root: Path | None = None) -> str:
        inside = root is not None and self.path.is_relative_to(root)
        return f"{self.path.relative_to(root) if inside else self.path}: {self.message}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"unreadable JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def run_state(path: Path) -> tuple[RunState, str | None]:
    """State of one run directory and, for failed or corrupt runs, the reason."""
    if not path.is_dir():
        return RunState.TODO, None
    final_path = path / FINAL
    done = (path / DONE_MARKER).exists()
    if not final_path.exists():
        if done:
            return RunState.CORRUPT, f"done marker without {FINAL}"
        error = path / ERROR_FILE
        last_error = error.read_text().strip().splitlines()[-1:] if error.exists() else []
        return RunState.PARTIAL, (f"last attempt raised {last_error[0]}" if last_error else None)
    if done and (why := damage(path)) is not None:
        return RunState.CORRUPT, f"damaged: {why}"  # never read as other numbers
    try:
        final = _read_json(final_path)
    except ValueError as err:
        return RunState.CORRUPT, f"{FINAL}: {err}"
    status = final.get("status")
    if status == "failed":
        return RunState.FAILED, str(final.get("reason") or "no reason recorded")
    if status == "done":
        # final.json before the marker: the writer stopped between the two.
        return (RunState.DONE, None) if done else (RunState.PARTIAL, None)
    return RunState.CORRUPT, f"{FINAL}: unknown status {status!r}"


@dataclass(frozen=True)
class ProtocolKey:
    """What a table column stands for: the label protocol, seed-independent."""

    imbalance_type: str
    imbalance: float
    noise: str  # "" when there is no noise
    rate: float | None  # None for protocols without a rate (fer2013, votes, file:)
    noise_on_val: bool

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ProtocolKey:
        p = cfg["protocol"]
        noise, rate = str(p["noise"]), float(p["noise_rate"])
        imbalance = float(p["imbalance"])
        if not takes_rate(noise):
            key_rate: float | None = None
        elif rate == 0.0:
            noise, key_rate = "", 0.0  # every rate-based protocol at 0 is the clean set
        else:
            key_rate = rate
        return cls(
            imbalance_type=str(p["imbalance_type"]) if imbalance != 1.0 else "",
            imbalance=imbalance,
            noise=noise,
            rate=key_rate,
            noise_on_val=bool(p.get("noise_on_val", True)) if noise else True,
        )

    @property
    def label(self) -> str:
        parts = []
        if self.imbalance != 1.0:
            parts.append(f"{self.imbalance_type} IF{self.imbalance:g}")
        if self.noise:
            name, _, arg = self.noise.partition(":")
            shown = _NOISE_ABBR.get(name, name) + (f" {Path(arg).name}" if arg else "")
            parts.append(shown if self.rate is None else f"{shown} {self.rate * 100:g}%")
        label = " + ".join(parts) or "clean"
        return label if self.noise_on_val else f"{label} (clean val)"

    def sort_key(self) -> tuple:
        return (
            self.imbalance != 1.0,
            self.imbalance_type,
            self.imbalance,
            self.noise != "",
            self.rate is None,
            self.noise,
            self.rate or 0.0,
            not self.noise_on_val,
        )


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    state: RunState
    reason: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def method(self) -> str:
        return str(self.config["method"])

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def dataset(self) -> str:
        return str(self.config["data"]["name"])

    @cached_property
    def identity(self) -> dict[str, Any]:
        """The experiment this run is (recorded, or computed for a planned run)."""
        recorded = self.config.get("experiment")
        return recorded if isinstance(recorded, dict) else experiment_of(self.config)

    @cached_property
    def protocol(self) -> ProtocolKey:
        key = ProtocolKey.from_config(self.config)
        if key.noise and key.noise_on_val and self._val_labels_clean():
            # A label file may cover the training split only (index CSVs always do): the run
            # then selected on clean validation labels, whatever its config asked for.
            return replace(key, noise_on_val=False)
        return key

    def _val_labels_clean(self) -> bool:
        if self.state not in (RunState.DONE, RunState.STALE, RunState.FAILED):
            return False
        labels = self.final.get("labels")
        return isinstance(labels, dict) and labels.get("val_noise_rate") == 0.0

    @cached_property
    def final(self) -> dict[str, Any]:
        return _read_json(self.path / FINAL)

    @cached_property
    def epochs(self) -> list[dict[str, Any]]:
        """metrics.jsonl rows; unreadable lines are skipped and noted in ``problems``."""
        path = self.path / METRICS
        rows: list[dict[str, Any]] = []
        try:
            lines = path.read_text().splitlines()
        except OSError as err:
            self.problems.append(Problem(path, f"unreadable ({err})"))
            return rows
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                self.problems.append(Problem(path, f"line {number}: {err}"))
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows


@dataclass
class RunSet:
    root: Path
    runs: list[Run]
    problems: list[Problem]
    # The directories read when several were merged into one board (the first is root).
    sources: list[Path] = field(default_factory=list)
    # Each directory's tuning.json (fer_bench.sweeps.tune), by directory: read once, here.
    tuning: dict[Path, dict[str, Any]] = field(default_factory=dict)
    # A tuning search's trials, moved out of ``runs`` by fer_bench.reports.tuned.apply_tuning.
    trials: list[Run] = field(default_factory=list)

    @property
    def datasets(self) -> list[str]:
        return sorted({r.dataset for r in self.runs})

    def of_dataset(self, dataset: str) -> RunSet:
        """The runs on ``dataset`` only (a folder of one's own runs may mix datasets)."""
        if dataset not in self.datasets:
            have = ", ".join(self.datasets) or "none"
            raise ValueError(f"{self.root} has no run on dataset {dataset!r}; it has: {have}")
        runs = [r for r in self.runs if r.dataset == dataset]
        return replace(self, runs=runs, trials=[r for r in self.trials if r.dataset == dataset])


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in RUN_FILES)


def scan_runs(root: Path) -> RunSet:
    """Every run directory directly under ``root``, or under ``root/runs`` for a board
    directory (results/NAME, its tables beside runs/), or ``root`` alone when it is one
    run directory; unreadable ones become problems."""
    if not root.is_dir():
        raise FileNotFoundError(f"no such results directory: {root}")
    single = _is_run_dir(root)
    if single:  # its directory's tuning record, if any, is about the other runs
        paths, root = [root], root.parent
    else:
        if not any(map(_is_run_dir, root.iterdir())) and (root / RUNS_DIR).is_dir():
            root = root / RUNS_DIR
        paths = sorted(p for p in root.iterdir() if _is_run_dir(p))
    runs: list[Run] = []
    problems: list[Problem] = []
    for path in paths:
        config_path = path / CONFIG
        try:
            config = _read_json(config_path)
            for key in ("method", "seed", "data", "protocol"):
                if key not in config:
                    raise ValueError(f"missing key {key!r}")
            ProtocolKey.from_config(config)
        except (ValueError, KeyError, TypeError) as err:
            message = "missing" if not config_path.exists() else str(err)
            problems.append(Problem(config_path, f"{message}; run left out"))
            continue
        state, reason = run_state(path)
        if state is RunState.DONE:
            try:
                if (reason := staleness(config)) is not None:
                    state = RunState.STALE
            except CannotCheck as err:
                problems.append(Problem(config_path, f"{err}; shown as current"))
        runs.append(Run(path=path, config=config, state=state, reason=reason))
    tuning = {} if single else _tuning(root)
    return RunSet(root=root, runs=runs, problems=problems, tuning=tuning)


def _tuning(root: Path) -> dict[Path, dict[str, Any]]:
    """``root``'s tuning record, if it holds one. An unreadable one is an error, not a
    warning: without it a search's trials would show as results."""
    path = root / TUNING_FILE
    if not path.is_file():
        return {}
    try:
        record = _read_json(path)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    record = unseal(record, path)  # a changed pick or score is an error, not a row
    if missing := [key for key in ("trials", "groups") if key not in record]:
        raise ValueError(f"{path}: not a tuning record (no {missing[0]!r})")
    return {root: record}


def keep_traceback(out: Path) -> str:
    """Write the traceback being handled to ``out``/error.txt and say where it went; a run
    directory gone read-only or a full disk keeps it nowhere, and the answer says so. A
    finished run's directory is left as it finished: an attempt that failed before
    training (bad data, a damaged record) is not that run's error."""
    if (out / DONE_MARKER).exists():
        return f"traceback not kept: {out} is a finished run, left as it is"
    try:
        write_text_atomic(out / ERROR_FILE, traceback.format_exc())  # never a 0-byte file
    except OSError as err:
        return f"traceback not kept: {out / ERROR_FILE}: {err.strerror}"
    return f"traceback in {out / ERROR_FILE}"
