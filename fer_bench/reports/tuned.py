"""A tuning search's record read back for the boards: which runs are tuned rows, which
are trials (no rows), and the lines stating budget, rule and picks.

The search itself, which writes ``tuning.json``, is :mod:`fer_bench.sweeps.tune`'s.
"""

from __future__ import annotations

from typing import Any

from fer_bench.records.reading import RunSet


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
            lines.append(f"{name}: {unpicked(group)}.")
            continue
        lines.append(f"{name}: {pick_text(best)}.")
        for run in group["final_runs"]:
            runs.add(run)
            labels[run] = f"{group['method']} (tuned)"
    return runs, labels, lines


def unpicked(group: dict[str, Any]) -> str:
    """Why a search has no pick."""
    failed = all(t.get("failed") for t in group["trials"])
    return "every trial failed" if failed else "search not finished"


def pick_text(best: dict[str, Any]) -> str:
    """A pick as the tables and ``tune`` state it: ``trial 3 (lam_c=0.125, optim.lr=…)``."""
    values = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in sorted(best["values"].items())
    )
    return f"trial {best['trial']} ({values})"


def searched_runs(record: dict[str, Any]) -> set[str]:
    """Every run a tuning search trained: its trials and its confirming runs."""
    groups = record["groups"].values()
    return {t["run"] for g in groups for t in g["trials"]} | {
        run for g in groups for run in g.get("final_runs", [])
    }


def apply_tuning(runset: RunSet) -> tuple[dict[str, str], list[str]]:
    """Where a merged directory holds a tuning.json, its confirming runs become tuned rows
    and its trials move from ``runset.runs`` to ``runset.trials`` (a trial is one
    configuration on one seed, not a result), so tables, comparisons and plots all show
    the same rows. Returns the row labels and the lines stating budget, rule and picks."""
    if len(runset.tuning) > 1:
        raise ValueError(
            f"{' and '.join(map(str, runset.tuning))} are two tuning searches: their tuned "
            "rows would pool into one; merge one tuned board with untuned ones"
        )
    labels: dict[str, str] = {}
    preamble: list[str] = []
    for root, record in runset.tuning.items():
        finals, tuned_labels, tuned_preamble = tuned_view(record)
        trials = searched_runs(record) - finals  # other runs beside them stay (official ones)
        is_trial = [r.path.parent == root and r.name in trials for r in runset.runs]
        runset.trials += [r for r, trial in zip(runset.runs, is_trial, strict=True) if trial]
        runset.runs = [r for r, trial in zip(runset.runs, is_trial, strict=True) if not trial]
        labels.update(tuned_labels)
        preamble += tuned_preamble
        if not runset.runs:
            raise ValueError(
                f"{root} holds a tuning search with no confirming run yet, and trials are no "
                "rows: `fer-bench tune ... --dry-run` lists what is left"
            )
    return labels, preamble
