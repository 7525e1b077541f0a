"""Sweeps: the grid methods x protocols x seeds over one base config, run resumably.

Each job is a :class:`RunConfig`; its run directory is named from the config
hash, so re-running a sweep skips finished runs (``done`` marker), resumes
interrupted ones from their checkpoint and runs the rest. Every check that
can fail (unknown method, empty grid, bad hyperparameter, an output directory
holding another dataset) runs before any training starts.

Sweep file (TOML), keys as the command-line options::

    out = "results/noise"            # optional; --out wins
    profile = "synthetic-cpu"
    methods = ["ce", "scn"]
    seeds = [0, 1, 2]
    noise = [0.0, 0.1, 0.3]          # rates, crossed with noise_type and imbalance
    noise_type = ["symmetric"]       # protocols without a rate (fer2013, votes) get one column
    imbalance = [1, 50]
    imbalance_type = "exp"
    noise_seed = 0                   # or "seed": the protocol seed follows the training seed

    [[protocols]]                    # extra columns outside the cross product
    noise_type = "fer2013"

    [base]                           # RunConfig fields over the profile
    epochs = 30
    [base.data]
    name = "ferplus"

    [hparams.scn]                    # per-method hyperparameters (as --set scn.KEY=VALUE)
    relabel_epoch = 10
    margin_2 = [0.1, 0.2]            # a list joins the grid: one job per value

``fer-bench run`` is a one-job sweep (:func:`one_job`): the same recipe,
override and validation rules.
"""

from __future__ import annotations

import copy
import importlib
import itertools
import json
import tomllib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_bench.config import ProtocolConfig, RunConfig
from fer_bench.profiles import DEFAULT_PROFILE, load_profile, parse_key_values, with_overrides
from fer_bench.recipes import apply_recipe
from fer_bench.records.identity import (
    CannotCheck,
    canonical_fields,
    recorded_staleness,
    run_name,
    takes_rate,
)
from fer_bench.records.layout import CONFIG, SWEEP_LOCK
from fer_bench.records.lock import RunBusy, delete_run, hold, run_lock
from fer_bench.records.reading import ProtocolKey, Run, RunState, run_state
from fer_bench.registry import (
    DATASETS,
    IMBALANCE,
    METHODS,
    NOISE,
    RegistryError,
    load_plugin_file,
)
from fer_bench.sweeps.executors import DEFAULT_TRAINER, Executor, Job, JobResult

FILE_KEYS = (
    "out",
    "profile",
    "methods",
    "seeds",
    "noise",
    "noise_type",
    "imbalance",
    "imbalance_type",
    "noise_seed",
    "protocols",
    "base",
    "hparams",
)
PROTOCOL_KEYS = ("noise", "noise_type", "imbalance", "imbalance_type")
ALL_METHODS = "*"  # hparams key for values every method gets (--set KEY=VALUE)


class SweepBusy(Exception):
    """Another sweep holds the output directory's lock."""


@dataclass
class SweepSpec:
    methods: list[str]
    seeds: list[int]
    base: RunConfig
    noise: list[float] = field(default_factory=lambda: [0.0])
    noise_type: list[str] = field(default_factory=lambda: ["symmetric"])
    imbalance: list[float] = field(default_factory=lambda: [1.0])
    imbalance_type: str = "exp"
    noise_seed: int | str = 0  # an int, or "seed" to follow each job's training seed
    protocols: list[dict[str, Any]] = field(default_factory=list)  # extra protocol columns
    # method or "*" -> {key: value, or a list of values that joins the grid}
    hparams: dict[str, dict[str, str | list[str]]] = field(default_factory=dict)
    # The sweep file's [base] and the command line's options: they win over a recipe.
    overrides: list[dict[str, Any]] = field(default_factory=list)


def read_sweep_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"sweep file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: invalid TOML ({err})") from None
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ValueError(
            f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(FILE_KEYS)}"
        )
    return data


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def hparam_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _hparam_values(value: Any) -> str | list[str]:
    return [hparam_text(v) for v in value] if isinstance(value, list) else hparam_text(value)


def hparam_grid(method: str, values: dict[str, str | list[str]]) -> list[dict[str, str]]:
    """One dict per combination of the list-valued hyperparameters (file order)."""
    choices = [v if isinstance(v, list) else [v] for v in values.values()]
    empty = [k for k, v in zip(values, choices, strict=True) if not v]
    if empty:
        raise ValueError(f"empty grid: hparams.{method}.{empty[0]} is an empty list")
    return [dict(zip(values, combo, strict=True)) for combo in itertools.product(*choices)]


def parse_sets(pairs: list[str]) -> dict[str, dict[str, str]]:
    """``--set [METHOD.]KEY=VALUE`` -> {method or "*": {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_key_values(pairs, "[METHOD.]KEY=VALUE").items():
        method, dot, name = key.rpartition(".")
        out.setdefault(method if dot else ALL_METHODS, {})[name] = value
    return out


def build_spec(file: dict[str, Any], cli: dict[str, Any], cli_base: dict[str, Any]) -> SweepSpec:
    """The sweep from a sweep file's values with the command line's on top (None = not given).

    ``cli_base`` holds RunConfig overrides from options such as --epochs, nested like
    the config (``{"data": {"name": ...}}``)."""
    merged = {**file, **{k: v for k, v in cli.items() if v is not None}}
    for table in ("base", "hparams"):
        if not isinstance(file.get(table, {}), dict):
            raise ValueError(f"sweep file: {table} must be a table ([{table}])")
    base = load_profile(merged.get("profile", DEFAULT_PROFILE))
    base = with_overrides(with_overrides(base, file.get("base", {})), cli_base)
    hparams: dict[str, dict[str, str | list[str]]] = {}
    for method, values in file.get("hparams", {}).items():
        if not isinstance(values, dict):
            raise ValueError(f"hparams.{method} must be a table of KEY = VALUE")
        hparams[method] = {k: _hparam_values(v) for k, v in values.items()}
    for method, values in (cli.get("hparams") or {}).items():
        hparams.setdefault(method, {}).update(values)
    spec = SweepSpec(
        methods=[str(m) for m in _as_list(merged.get("methods", []))],
        seeds=[],
        base=base,
        hparams=hparams,
        overrides=[file.get("base", {}), cli_base],
    )
    try:
        spec.seeds = [int(s) for s in _as_list(merged.get("seeds", [base.seed]))]
        spec.noise = [float(r) for r in _as_list(merged.get("noise", [0.0]))]
        spec.imbalance = [float(f) for f in _as_list(merged.get("imbalance", [1.0]))]
    except (TypeError, ValueError) as err:
        raise ValueError(f"seeds, noise and imbalance must be numbers ({err})") from None
    spec.noise_type = [str(t) for t in _as_list(merged.get("noise_type", ["symmetric"]))]
    spec.imbalance_type = str(merged.get("imbalance_type", "exp"))
    spec.noise_seed = _noise_seed(merged.get("noise_seed", base.protocol.noise_seed))
    spec.protocols = [dict(p) for p in _as_list(merged.get("protocols", []))]
    return spec


def _noise_seed(value: Any) -> int | str:
    if value == "seed":
        return "seed"
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"noise seed must be an integer or 'seed' (got {value!r})") from None


def protocol_grid(spec: SweepSpec) -> list[dict[str, Any]]:
    """Protocol fields of each column: the cross product, then the extra ones, deduplicated."""
    grid = [
        canonical_fields(noise, rate, imb, spec.imbalance_type)
        for imb in spec.imbalance
        for noise in spec.noise_type
        for rate in spec.noise
    ]
    if spec.noise_type and spec.noise != [0.0] and not any(map(takes_rate, spec.noise_type)):
        raise ValueError(
            f"noise rates {spec.noise} given but no noise type takes a rate "
            f"({', '.join(spec.noise_type)} take their noise from the data)"
        )
    for extra in spec.protocols:
        unknown = sorted(set(extra) - set(PROTOCOL_KEYS))
        if unknown:
            raise ValueError(
                f"[[protocols]]: unknown key(s) {', '.join(unknown)}; known: "
                f"{', '.join(PROTOCOL_KEYS)}"
            )
        grid.append(
            canonical_fields(
                str(extra.get("noise_type", ProtocolConfig.noise)),
                float(extra.get("noise", 0.0)),
                float(extra.get("imbalance", 1.0)),
                str(extra.get("imbalance_type", spec.imbalance_type)),
            )
        )
    unique: list[dict[str, Any]] = []
    for p in grid:
        if p not in unique:
            unique.append(p)
    return unique


def _check_registered(spec: SweepSpec) -> None:
    """Every name the grid uses is registered, as the right kind (plugin loaded first)."""
    if spec.base.plugin:
        load_plugin_file(spec.base.plugin)
    noise = [*spec.noise_type, *(str(p.get("noise_type", "")) for p in spec.protocols)]
    imbalance = [spec.imbalance_type] if spec.imbalance != [1.0] else []
    imbalance += [
        str(p.get("imbalance_type", spec.imbalance_type))
        for p in spec.protocols
        if p.get("imbalance", 1.0) != 1.0
    ]
    try:
        for method in spec.methods:
            METHODS.get(method)
        if not spec.base.data.name.startswith("hf:"):
            DATASETS.get(spec.base.data.name)
        for names, registry in ((noise, NOISE), (imbalance, IMBALANCE)):
            for name in filter(None, (n.partition(":")[0] for n in names)):
                registry.get(name)
    except RegistryError as err:
        raise ValueError(str(err)) from None


def _job_base(spec: SweepSpec, method: str) -> RunConfig:
    """The base config of one method's jobs: under ``recipe = "official"`` the method's
    recipe, with the sweep's explicit settings over it."""
    cfg = copy.deepcopy(spec.base)
    cfg.method = method
    if cfg.recipe == "shared":
        return cfg
    cfg = apply_recipe(cfg)
    for overrides in spec.overrides:
        cfg = with_overrides(cfg, {**overrides, "hparams": None})
    return cfg


def expand(spec: SweepSpec) -> list[RunConfig]:
    """Every job of the sweep, validated; seed-major so early results fill whole tables."""
    methods, seeds = list(dict.fromkeys(spec.methods)), list(dict.fromkeys(spec.seeds))
    for what, values in (
        ("methods", methods),
        ("seeds", seeds),
        ("noise rates", spec.noise),
        ("noise types", spec.noise_type),
        ("imbalance factors", spec.imbalance),
    ):
        if not values:
            raise ValueError(f"empty grid: no {what} given")
    _check_registered(spec)
    protocols = protocol_grid(spec)
    stray = sorted(set(spec.hparams) - set(methods) - {ALL_METHODS})
    if stray:
        raise ValueError(f"hyperparameters given for {', '.join(stray)}, not in the methods")
    grids = {
        m: hparam_grid(m, {**spec.hparams.get(ALL_METHODS, {}), **spec.hparams.get(m, {})})
        for m in methods
    }
    jobs: list[RunConfig] = []
    for seed in seeds:
        for p in protocols:
            for method, values in ((m, v) for m in methods for v in grids[m]):
                cfg = _job_base(spec, method)
                cfg.seed = seed
                cfg.hparams = {**cfg.hparams, **values}
                cfg.protocol.noise, cfg.protocol.noise_rate = p["noise"], p["noise_rate"]
                cfg.protocol.imbalance = p["imbalance"]
                cfg.protocol.imbalance_type = p["imbalance_type"]
                cfg.protocol.noise_seed = seed if spec.noise_seed == "seed" else spec.noise_seed
                try:
                    cfg.validate()
                except TypeError as err:  # e.g. epochs = "ten" in the sweep file
                    raise ValueError(f"sweep config: a value has the wrong type ({err})") from None
                try:
                    _check_hparams(method, cfg.hparams)
                except ValueError as err:
                    raise ValueError(f"{method}: {err}") from None
                jobs.append(cfg)
    _check_one_per_experiment(jobs)
    return jobs


def _check_hparams(method: str, values: dict[str, str]) -> None:
    """ValueError for a value the method refuses (its own checks included)."""
    from fer_bench.methods.base import build_hparams  # imports torch: not for a table

    build_hparams(METHODS.get(method), values)


def _check_one_per_experiment(jobs: list[RunConfig]) -> None:
    """Two spellings of one value (``[0.1, 0.10]``) are one experiment: two jobs would
    race for its directory, and a grid would count a cell twice."""
    seen: dict[str, RunConfig] = {}
    for cfg in jobs:
        if (first := seen.setdefault(run_name(cfg), cfg)) is not cfg:
            raise ValueError(
                f"{cfg.method}: hyperparameters {first.hparams} and {cfg.hparams} are one "
                "experiment (two spellings of one value): give each value once"
            )


def one_job(
    method: str, profile: str, overrides: dict[str, Any], hparams: dict[str, str]
) -> RunConfig:
    """The config of ``fer-bench run``: a sweep of one method, seed and protocol, the
    protocol and seed taken from ``overrides`` over the profile."""
    base = with_overrides(load_profile(profile), overrides)
    p = base.protocol
    spec = SweepSpec(
        methods=[method],
        seeds=[base.seed],
        base=base,
        noise=[p.noise_rate],
        noise_type=[p.noise],
        imbalance=[p.imbalance],
        imbalance_type=p.imbalance_type,
        noise_seed=p.noise_seed,
        hparams={method: dict(hparams)} if hparams else {},
        overrides=[overrides],
    )
    (cfg,) = expand(spec)
    return cfg


@dataclass(frozen=True)
class PlannedJob:
    cfg: RunConfig
    path: Path
    state: RunState
    reason: str | None

    @property
    def protocol(self) -> str:
        return ProtocolKey.from_config(self.cfg.to_dict()).label

    @property
    def label(self) -> str:
        return f"{self.cfg.method} / {self.protocol} / seed {self.cfg.seed}"


def check_out_dir(out: Path, dataset: str) -> None:
    """Refuse a directory that is a file or holds runs of another dataset."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a directory")
    if not out.is_dir():
        return
    for config in sorted(out.glob(f"*/{CONFIG}")):
        try:
            other = json.loads(config.read_text())["data"]["name"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable records are the table's to report
        if other != dataset:
            raise ValueError(
                f"{out} holds runs on dataset {other!r} (e.g. {config}); this "
                f"sweep is on {dataset!r}: use another --out"
            )


def plan(jobs: list[RunConfig], out: Path, trainer: str = DEFAULT_TRAINER) -> list[PlannedJob]:
    run_dir: Callable[[RunConfig, Path], Path] = importlib.import_module(trainer).run_dir
    planned = []
    for cfg in jobs:
        path = run_dir(cfg, out)
        state, reason = run_state(path)
        # a begun run is stale too: resuming it would mix two codes (the engine refuses)
        begun = state in (RunState.DONE, RunState.PARTIAL)
        if begun and (stale := _stale_reason(path)) is not None:
            state, reason = RunState.STALE, stale
        planned.append(PlannedJob(cfg, path, state, reason))
    return planned


def _stale_reason(path: Path) -> str | None:
    try:
        return recorded_staleness(path)
    except CannotCheck:
        return None  # an unreadable record is the table's to report


def _start_over(p: PlannedJob, trainer: str) -> bool:
    """Delete a failed or stale run to train it again, under its run lock and only if it
    is still as planned (state and reason); False, touching nothing, while another
    process holds it."""
    try:
        with run_lock(p.path, wait=False):
            now = plan([p.cfg], p.path.parent, trainer)[0]
            if (now.state, now.reason) == (p.state, p.reason):
                delete_run(p.path)
    except RunBusy:
        return False
    return True


def planned_runs(jobs: list[RunConfig], out: Path) -> list[Run]:
    """The jobs with no run directory yet, as TODO records: a table of ``out`` with these
    added shows the sweep's whole grid, cells not run included."""
    return [
        Run(path=p.path, config=p.cfg.to_dict(), state=RunState.TODO)
        for p in plan(jobs, out)
        if p.state is RunState.TODO
    ]


def sweep_lock(out: Path, wait: bool = False) -> AbstractContextManager[None]:
    """Hold the output directory for one sweep; a second one waits or is refused."""
    out.mkdir(parents=True, exist_ok=True)
    return hold(
        out / SWEEP_LOCK,
        wait,
        lambda lock: SweepBusy(
            f"another sweep is running on {out} (lock {lock}); pass --wait to queue behind it"
        ),
    )


@dataclass
class SweepReport:
    results: list[JobResult] = field(default_factory=list)
    already_done: int = 0
    kept_failed: list[PlannedJob] = field(default_factory=list)  # failed before, not retried
    kept_stale: list[PlannedJob] = field(default_factory=list)  # method changed, not rerun
    busy: list[PlannedJob] = field(default_factory=list)  # to start over, held by another

    @property
    def failures(self) -> list[JobResult]:
        return [r for r in self.results if r.status != "done"]


def run_sweep(
    planned: list[PlannedJob],
    out: Path,
    executor: Executor,
    trainer: str = DEFAULT_TRAINER,
    retry_failed: bool = False,
    on_result: Callable[[JobResult, int, int], None] | None = None,
    rerun_stale: bool = False,
    notify: Callable[[str], None] | None = None,
) -> SweepReport:
    """Run what is not done; failed or corrupt runs, and interrupted ones whose last
    attempt raised, are kept unless ``retry_failed``, stale ones unless ``rerun_stale``;
    both start them over (said through ``notify``). Call under :func:`sweep_lock` with
    a fresh :func:`plan`."""
    report = SweepReport(already_done=sum(p.state is RunState.DONE for p in planned))
    todo: list[Job] = []
    out = out.resolve()
    for p in planned:
        if p.state is RunState.DONE:
            continue
        # A partial run with a reason raised last time (an unloadable checkpoint, another
        # precision): resuming it again fails again, so --retry-failed starts it over.
        raised = p.state is RunState.PARTIAL and p.reason is not None
        failed = p.state in (RunState.FAILED, RunState.CORRUPT) or (raised and retry_failed)
        stale = p.state is RunState.STALE
        if (failed and not retry_failed) or (stale and not rerun_stale):
            (report.kept_failed if failed else report.kept_stale).append(p)
            continue
        if failed or stale:
            if not _start_over(p, trainer):
                report.busy.append(p)
                continue
            if notify:
                flag = "--retry-failed" if failed else "--rerun-stale"
                notify(f"starting {p.path.name} over ({flag}): {p.reason}")
        todo.append(Job(cfg=p.cfg, out_root=out, name=p.path.name))
    for result in executor.run(todo, trainer):
        report.results.append(result)
        if on_result:
            on_result(result, len(report.results), len(todo))
    return report
