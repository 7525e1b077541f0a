"""Selection rules on a hand-made metrics.jsonl, and the selection report."""

from __future__ import annotations

import pytest

from fer_bench.records.selection import SELECTIONS, rule

# Five epochs whose val and test curves peak at different epochs.
HISTORY = [
    {"epoch": 1, "val": {"acc": 0.50, "mean_class_acc": 0.40}, "test": {"acc": 0.52}},
    {"epoch": 2, "val": {"acc": 0.70, "mean_class_acc": 0.45}, "test": {"acc": 0.66}},
    {"epoch": 3, "val": {"acc": 0.65, "mean_class_acc": 0.60}, "test": {"acc": 0.74}},
    {"epoch": 4, "val": {"acc": 0.70, "mean_class_acc": 0.55}, "test": {"acc": 0.70}},
    {"epoch": 5, "val": {"acc": 0.60, "mean_class_acc": 0.50}, "test": {"acc": 0.68}},
    {"epoch": 6, "val": {"acc": 0.62, "mean_class_acc": 0.52}, "test": {"acc": 0.64}},
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("val", 0.66),  # epoch 2: the first of the tied best val accuracies
        ("val_mca", 0.74),  # epoch 3
        ("last", 0.64),  # epoch 6
        ("last5", (0.66 + 0.74 + 0.70 + 0.68 + 0.64) / 5),  # epochs 2-6
        ("oracle", 0.74),  # best test epoch
    ],
)
def test_each_rule_on_a_hand_made_history(name, expected):
    assert rule(name).value(HISTORY, "acc") == pytest.approx(expected)


def test_rules_are_registered_and_only_oracle_is_optimistic():
    assert {"val", "val_mca", "last", "last5", "oracle"} <= set(SELECTIONS.names())
    assert [n for n in SELECTIONS.names() if rule(n).optimistic] == ["oracle"]


def test_last5_of_a_short_run_averages_what_there_is():
    assert rule("last5").value(HISTORY[:2], "acc") == pytest.approx((0.52 + 0.66) / 2)


def test_a_missing_metric_is_an_error_naming_the_epoch():
    with pytest.raises(ValueError, match="epoch 1 has no test.macro_f1"):
        rule("last5").value(HISTORY[:1], "macro_f1")
