"""Model selection rules, applied to a run's per-epoch record when results are collected.

After DomainBed's ``model_selection.py``: a rule is a small class that turns a
run's ``metrics.jsonl`` rows into the test metric it would report, so a new
rule needs no retraining and a table can show what each paper's convention
would have reported. Only ``oracle`` and the ``last`` family read test
metrics to choose; ``val`` and ``val_mca`` choose on (noisy) validation labels.
:func:`collapse_note` flags a selected epoch that predicts one class almost always,
as final.json records it and the tables show it.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, ClassVar

from fer_bench.registry import Registry

SELECTIONS: Registry = Registry("selection")


class SelectionRule:
    name: ClassVar[str]
    description: ClassVar[str]
    optimistic: ClassVar[bool] = False  # chooses with the test labels

    def epochs(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The epoch rows whose test metrics the rule reports (averaged if several)."""
        raise NotImplementedError

    def value(self, history: list[dict[str, Any]], metric: str) -> float:
        if not history:
            raise ValueError("no epochs recorded")
        values = [_metric(row, metric) for row in self.epochs(history)]
        return statistics.fmean(values)


def _metric(row: dict[str, Any], metric: str) -> float:
    try:
        value = row["test"][metric]
    except (KeyError, TypeError):
        raise ValueError(f"epoch {row.get('epoch')} has no test.{metric}") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"epoch {row.get('epoch')} test.{metric} is {value!r}")
    return float(value)


def _best(history: list[dict[str, Any]], split: str, key: str) -> dict[str, Any]:
    return max(history, key=lambda r: r[split][key])  # max() keeps the earliest of ties


@SELECTIONS.register("val")
class ValAccuracy(SelectionRule):
    name = "val"
    description = (
        "val, the epoch with the best validation accuracy (validation labels carry the "
        "run's label noise unless a column says clean val)"
    )

    def epochs(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [_best(history, "val", "acc")]


@SELECTIONS.register("val_mca")
class ValMeanClassAccuracy(SelectionRule):
    name = "val_mca"
    description = (
        "val_mca, the epoch with the best validation mean class accuracy (for long-tailed "
        "columns; validation labels as for val)"
    )

    def epochs(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [_best(history, "val", "mean_class_acc")]


@SELECTIONS.register("last")
class LastEpoch(SelectionRule):
    name = "last"
    description = "last, the final epoch (RUL's reported convention)"

    def epochs(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [max(history, key=lambda r: r["epoch"])]


@SELECTIONS.register("last5")
class LastFiveMean(SelectionRule):
    name = "last5"
    description = "last5, the mean of the last five epochs' test metrics (EAC's convention)"

    def epochs(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(history, key=lambda r: r["epoch"])[-5:]


@SELECTIONS.register("oracle")
class OracleTest(SelectionRule):
    name = "oracle"
    optimistic = True
    description = (
        "oracle, the epoch with the best TEST accuracy: OPTIMISTIC, it selects on the "
        "test labels (as the NLA and RUL codes do), not an unbiased estimate"
    )

    def epochs(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [_best(history, "test", "acc")]


def rule(name: str) -> SelectionRule:
    return SELECTIONS.get(name)()


def summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The single-epoch rules' picks, for a run's printed summary and final.json."""
    out = {}
    for name in ("val", "last", "oracle"):
        row = rule(name).epochs(history)[0]
        out[name] = {"epoch": row["epoch"], "val": row["val"], "test": row["test"]}
    return out


# An epoch predicting one class for more than this share of the test images is
# flagged "collapsed": in final.json, the run's summary and the tables.
COLLAPSE_SHARE = 0.9


def collapse_note(test: dict[str, Any], class_names: list[str]) -> str | None:
    """'predicts neutral for 97 % of test images' when an epoch's test metrics show one
    class taking more than COLLAPSE_SHARE of the predictions, else None (also for
    records written before the prediction share was kept)."""
    share = test.get("pred_share_max")
    if share is None or share <= COLLAPSE_SHARE:
        return None
    return f"predicts {class_names[test['pred_mode']]} for {100 * share:.0f} % of test images"
