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
mark tuned rows and list the chosen values. Every phase is resumable as a sweep.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_bench.config import RunConfig
from fer_bench.identity import run_name
from fer_bench.profiles import with_overrides
from fer_bench.registry import METHODS
from fer_bench.results import TUNING_FILE, ProtocolKey, RunSet
from fer_bench.search import RECIPE_SPACE, draw, trial_rng

# Validation rules a pick may use: the validation metric each maximises over epochs.
VAL_RULES = {"val": "acc", "val_mca": "mean_class_acc"}


@dataclass
class TuneSpec:
    bases: list[RunConfig]  # one per (method, protocol): the untuned job
    trials: int = 8
    search_seed: int = 0
    search_training_seed: int = 100  # no final seed may equal it
    final_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    rule: str = "val"

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ValueError(f"--trials must be at least 1 (got {self.trials})")
        if self.rule not in VAL_RULES:
            raise ValueError(f"unknown pick rule {self.rule!r}; known: {', '.join(VAL_RULES)}")
        if self.search_training_seed in self.final_seeds:
            raise ValueError(
                f"final seeds {self.final_seeds} include the search's training seed "
                f"{self.search_training_seed}: the confirming runs must be fresh"
            )


def space_of(method: str) -> dict[str, Any]:
    """The searched keys: shared recipe knobs (dotted) and the method's own (bare)."""
    own = getattr(METHODS.get(method).Hparams, "search_space", {})
    return {**RECIPE_SPACE, **own}


def with_values(base: RunConfig, values: dict[str, Any], seed: int) -> RunConfig:
    """``base`` with drawn values: dotted keys into the config, bare ones as hparams."""
    cfg = copy.deepcopy(base)
    nested: dict[str, Any] = {}
    for key, value in values.items():
        if "." in key:
            section, name = key.split(".", 1)
            nested.setdefault(section, {})[name] = value
        else:
            cfg.hparams = {**cfg.hparams, key: str(value)}
    cfg = with_overrides(cfg, nested)
    cfg.seed = seed
    return cfg


def trial_jobs(spec: TuneSpec) -> list[tuple[RunConfig, dict[str, Any], int]]:
    """(config, drawn values, trial number) for every trial, trial-major: an interrupted
    search has the same number of trials done for every method."""
    jobs = []
    for trial in range(spec.trials):
        for base in spec.bases:
            values = draw(space_of(base.method), trial_rng(spec.search_seed, base.method, trial))
            jobs.append((with_values(base, values, spec.search_training_seed), values, trial))
    return jobs


def trial_score(run_dir: Path, rule: str) -> float | None:
    """The pick score of a finished trial: its best validation metric over epochs. Reads
    the ``val`` entry of each epoch only; None for a trial that did not finish."""
    if not (run_dir / "done").exists():
        return None
    final = json.loads((run_dir / "final.json").read_text())
    if final.get("status") != "done":
        return None
    key = VAL_RULES[rule]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return max(float(row["val"][key]) for row in rows)


def _group(cfg: RunConfig) -> str:
    return f"{cfg.method} / {ProtocolKey.from_config(cfg.to_dict()).label}"


def pick(spec: TuneSpec, out: Path) -> dict[str, dict[str, Any]]:
    """Per method and protocol: every trial's values and score, and the best trial (the
    earliest of ties); ``best`` is None until every trial of the group has finished."""
    groups: dict[str, dict[str, Any]] = {}
    for cfg, values, trial in trial_jobs(spec):
        group = groups.setdefault(_group(cfg), {"method": cfg.method, "trials": []})
        score = trial_score(out / run_name(cfg), spec.rule)
        group["trials"].append(
            {"trial": trial, "run": run_name(cfg), "values": values, "score": score}
        )
    for group in groups.values():
        scores = [t["score"] for t in group["trials"]]
        done = all(s is not None for s in scores)
        group["best"] = max(group["trials"], key=lambda t: t["score"]) if done else None
    return groups


def final_jobs(spec: TuneSpec, groups: dict[str, dict[str, Any]]) -> list[RunConfig]:
    """The confirming runs of every group whose search is complete."""
    jobs = []
    for base in spec.bases:
        best = groups[_group(base)]["best"]
        if best is not None:
            jobs += [with_values(base, best["values"], seed) for seed in spec.final_seeds]
    return jobs


def tuning_record(spec: TuneSpec, groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What tuning.json holds: the budget, the rule, every trial, the picks, the finals."""
    for base in spec.bases:
        group = groups[_group(base)]
        best = group["best"]
        group["final_runs"] = (
            [run_name(with_values(base, best["values"], s)) for s in spec.final_seeds]
            if best
            else []
        )
    return {
        **budget(spec),
        "rule_metric": f"best validation {VAL_RULES[spec.rule]} over epochs (noisy val labels)",
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
    previous = json.loads(path.read_text())
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
    return previous


def merged_record(previous: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` keeping the groups an earlier search of the same budget recorded in the
    directory (other --methods, a method added later), so no search is forgotten."""
    if previous is None:
        return record
    return {**record, "groups": {**previous["groups"], **record["groups"]}}


def tuned_view(record: dict[str, Any]) -> tuple[set[str], dict[str, str], list[str]]:
    """From tuning.json: the confirming runs (the table's rows; trials are left out),
    their row labels ("nla (tuned)") and the lines stating budget, rule and picks."""
    runs, labels = set(), {}
    lines = [
        f"Tuned rows: {record['trials']} random-search trials per method (search seed "
        f"{record['search_seed']}, training seed {record['search_training_seed']}), each "
        f"method's pick by {record['rule_metric']}, rerun on fresh seeds "
        f"{', '.join(map(str, record['final_seeds']))}; test metrics were not read to pick."
    ]
    for name, group in sorted(record["groups"].items()):
        best = group["best"]
        if best is None:
            lines.append(f"{name}: search not finished.")
            continue
        values = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(best["values"].items())
        )
        lines.append(f"{name}: trial {best['trial']} ({values}).")
        for run in group["final_runs"]:
            runs.add(run)
            labels[run] = f"{group['method']} (tuned)"
    return runs, labels, lines


def searched_runs(record: dict[str, Any]) -> set[str]:
    """Every run a tuning search trained: its trials and its confirming runs."""
    groups = record["groups"].values()
    return {t["run"] for g in groups for t in g["trials"]} | {
        run for g in groups for run in g.get("final_runs", [])
    }


def apply_tuning(runset: RunSet) -> tuple[dict[str, str], list[str]]:
    """Where a merged directory holds a tuning.json, its confirming runs become tuned rows
    and its trials leave ``runset`` (a trial is one configuration on one seed, not a
    result), so tables, comparisons and plots all show the same rows. Returns the row
    labels and the lines stating budget, rule and picks."""
    labels: dict[str, str] = {}
    preamble: list[str] = []
    for root, record in runset.tuning.items():
        finals, tuned_labels, tuned_preamble = tuned_view(record)
        trials = searched_runs(record) - finals  # other runs beside them stay (official ones)
        runset.runs = [r for r in runset.runs if r.path.parent != root or r.name not in trials]
        labels.update(tuned_labels)
        preamble += tuned_preamble
        if not runset.runs:
            raise ValueError(
                f"{root} holds a tuning search with no confirming run yet, and trials are no "
                "rows: `fer-bench tune ... --dry-run` lists what is left"
            )
    return labels, preamble
