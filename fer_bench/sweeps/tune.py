"""An equal tuning budget for every method: seeded random search, honest pick, fresh seeds.

After DomainBed's random search, done honestly:

1. **Search.** For each method and protocol, ``trials`` configurations are drawn
   (:func:`fer_bench.search.trial_rng`: a function of search seed, method and
   trial only) from the shared recipe's space (learning rate, weight decay:
   every method, CE included) and the method's own ``search_space``. Each trial
   is an ordinary run directory, trained on the search's training seed.
2. **Pick.** Each method's best trial by a declared validation rule on the
   (noisy) validation labels; :func:`trial_score` reads ``val`` entries only,
   never a test metric.
3. **Confirm.** The picked configuration is trained again on fresh training
   seeds, none of them the search's; those runs are the method's tuned row.

``tuning.json`` in the output directory records the budget, the rule, every
trial's values and score, the picks and the confirming runs, so a table can
mark tuned rows and list the chosen values (:mod:`fer_bench.reports.tuned` reads it
back). Every phase is resumable as a sweep.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from fer_bench.config import RunConfig
from fer_bench.profiles import with_overrides
from fer_bench.records.identity import run_name
from fer_bench.records.layout import TUNING_FILE, unseal
from fer_bench.records.reading import ProtocolKey, Run, RunState
from fer_bench.registry import METHODS
from fer_bench.search import RECIPE_SPACE, draw, trial_rng
from fer_bench.sweeps.sweep import PlannedJob, hparam_text, plan

# Validation rules a pick may use: the validation metric each maximises over epochs.
VAL_RULES = {"val": "acc", "val_mca": "mean_class_acc"}


@dataclass(frozen=True)  # its trials are drawn once (trial_jobs)
class TuneSpec:
    bases: list[RunConfig]  # one per (method, protocol): the untuned job
    trials: int = 8
    search_seed: int = 0
    search_training_seed: int = 100  # no final seed may equal it
    final_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    rule: str = "val"
    # The sweep's noise_seed = "seed": each run's label draw follows its training seed.
    noise_follows_seed: bool = False

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ValueError(f"--trials must be at least 1 (got {self.trials})")
        if self.rule not in VAL_RULES:
            raise ValueError(f"unknown pick rule {self.rule!r}; known: {', '.join(VAL_RULES)}")
        self._check_final_seeds()
        keys = [_group(base) for base in self.bases]
        if twice := sorted({k for k in keys if keys.count(k) > 1}):
            raise ValueError(
                f"several jobs of the sweep file share the search {twice[0]!r} (a grid of a "
                "method's hyperparameter?): a search is one per method and protocol"
            )

    @cached_property
    def trial_jobs(self) -> list[tuple[RunConfig, dict[str, Any], int]]:
        """(config, drawn values, trial number) for every trial, trial-major: an interrupted
        search has the same number of trials done for every method. Drawn once."""
        jobs = []
        for trial in range(self.trials):
            for base in self.bases:
                rng = trial_rng(self.search_seed, base.method, trial)
                values = draw(space_of(base.method), rng)
                cfg = with_values(base, values, self.search_training_seed, self.noise_follows_seed)
                jobs.append((cfg, values, trial))
        return jobs

    def _check_final_seeds(self) -> None:
        seeds = self.final_seeds
        if not seeds or len(set(seeds)) < len(seeds):
            raise ValueError(f"--final-seeds must be distinct seeds, at least one (got {seeds})")
        if self.search_training_seed in seeds:
            raise ValueError(
                f"final seeds {seeds} include the search's training seed "
                f"{self.search_training_seed}: the confirming runs must be fresh"
            )


def space_of(method: str) -> dict[str, Any]:
    """The searched keys: shared recipe knobs (dotted) and the method's own (bare)."""
    own = getattr(METHODS.get(method).Hparams, "search_space", {})
    return {**RECIPE_SPACE, **own}


def with_values(
    base: RunConfig, values: dict[str, Any], seed: int, noise_follows_seed: bool = False
) -> RunConfig:
    """``base`` with drawn values (dotted keys into the config, bare ones as hparams),
    trained on ``seed`` (and drawing its labels with it if ``noise_follows_seed``)."""
    cfg = copy.deepcopy(base)
    nested: dict[str, Any] = {}
    for key, value in values.items():
        if "." in key:
            section, name = key.split(".", 1)
            nested.setdefault(section, {})[name] = value
        else:
            cfg.hparams = {**cfg.hparams, key: hparam_text(value)}
    cfg = with_overrides(cfg, nested)
    cfg.seed = seed
    if noise_follows_seed:
        cfg.protocol.noise_seed = seed
    return cfg


def trial_score(trial: PlannedJob, rule: str) -> float | None:
    """The pick score of a finished trial: its best validation metric over epochs. Reads
    the ``val`` entry of each epoch only; None unless the trial is done under today's
    code (a stale trial is rerun by ``--rerun-stale``, never scored)."""
    if trial.state is not RunState.DONE:
        return None
    rows = Run(path=trial.path, config=trial.cfg.to_dict(), state=trial.state).epochs
    return max(float(row["val"][VAL_RULES[rule]]) for row in rows)


def _group(cfg: RunConfig) -> str:
    return f"{cfg.method} / {ProtocolKey.from_config(cfg.to_dict()).label}"


def pick(spec: TuneSpec, out: Path) -> dict[str, dict[str, Any]]:
    """Per method and protocol: every trial's values and score, and the best trial (the
    earliest of ties). A failed trial (it diverged) is a finished trial that is never
    picked; ``best`` is None until every trial of the group has finished."""
    jobs = spec.trial_jobs
    states = plan([cfg for cfg, _, _ in jobs], out)
    groups: dict[str, dict[str, Any]] = {}
    for (cfg, values, trial), state in zip(jobs, states, strict=True):
        group = groups.setdefault(_group(cfg), {"method": cfg.method, "trials": []})
        group["trials"].append(
            {
                "trial": trial,
                "run": state.path.name,
                "values": values,
                "score": trial_score(state, spec.rule),
                "failed": state.state is RunState.FAILED,
            }
        )
    for group in groups.values():
        scored = [t for t in group["trials"] if t["score"] is not None]
        done = len(scored) + sum(t["failed"] for t in group["trials"]) == len(group["trials"])
        best = max(scored, key=lambda t: t["score"], default=None)
        group["best"] = best if done else None
    return groups


def confirming(spec: TuneSpec, base: RunConfig, best: dict[str, Any] | None) -> list[RunConfig]:
    """The picked configuration of ``base``'s search on each fresh seed (none unpicked)."""
    if best is None:
        return []
    follow = spec.noise_follows_seed
    return [with_values(base, best["values"], seed, follow) for seed in spec.final_seeds]


def final_jobs(spec: TuneSpec, groups: dict[str, dict[str, Any]]) -> list[RunConfig]:
    """The confirming runs of every group whose search is complete."""
    return [
        cfg for base in spec.bases for cfg in confirming(spec, base, groups[_group(base)]["best"])
    ]


def tuning_record(spec: TuneSpec, groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What tuning.json holds: the budget, the rule, every trial, the picks, the finals."""
    for base in spec.bases:
        group = groups[_group(base)]
        group["final_runs"] = [run_name(cfg) for cfg in confirming(spec, base, group["best"])]
    return {
        **budget(spec),
        "rule_metric": f"best validation {VAL_RULES[spec.rule]} over epochs",
        "groups": groups,
    }


def budget(spec: TuneSpec) -> dict[str, Any]:
    """What makes two searches the same budget: trials, draws, seeds and the pick rule."""
    return {
        "trials": spec.trials,
        "search_seed": spec.search_seed,
        "search_training_seed": spec.search_training_seed,
        "final_seeds": spec.final_seeds,
        "rule": spec.rule,
    }


def check_budget(spec: TuneSpec, out: Path) -> dict[str, Any] | None:
    """The tuning.json already in ``out``, if any; ValueError when it records another
    budget: one directory's tuned rows all come from one budget."""
    path = out / TUNING_FILE
    if not path.is_file():
        return None
    previous = unseal(json.loads(path.read_text()), path)
    differing = [
        f"{key} {previous.get(key)} there, {value} here"
        for key, value in budget(spec).items()
        if previous.get(key) != value
    ]
    if differing:
        raise ValueError(
            f"{path} records a search of another budget ({'; '.join(differing)}): "
            "give another --out, or the same options"
        )
    _check_same_trials(spec, previous["groups"], path)
    return previous


def _check_same_trials(spec: TuneSpec, recorded: dict[str, Any], path: Path) -> None:
    """A search recorded in the directory must draw the same trials again: otherwise its
    recorded trials would be forgotten and show as rows (a changed search space, recipe
    or sweep file is another search)."""
    drawn: dict[str, list[str]] = {}
    for cfg, _, _ in spec.trial_jobs:
        drawn.setdefault(_group(cfg), []).append(run_name(cfg))
    for key, runs in drawn.items():
        if key in recorded and [t["run"] for t in recorded[key]["trials"]] != runs:
            raise ValueError(
                f"{path} records another search of {key} (its search space, recipe or "
                "sweep file changed since): give another --out"
            )


def merged_record(previous: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` keeping the groups an earlier search of the same budget recorded in the
    directory (other --methods, a method added later), so no search is forgotten."""
    if previous is None:
        return record
    return {**record, "groups": {**previous["groups"], **record["groups"]}}
