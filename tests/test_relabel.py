"""SCN's relabelling table (SCN, RUL's option) under repeated indices (``--sampler
balanced`` draws with replacement): the last occurrence the rule relabels sets the label;
without repeats, the plain write of the rule's labels bit for bit."""

from __future__ import annotations

import torch
from test_methods_new_facts import make

from fer_bench.methods.base import Batch
from fer_bench.methods.relabel import LabelTable, relabel

N, K, MARGIN = 8, 3, 0.2


def _probs(seed: int, batch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(batch, K, generator=gen)).softmax(1)


def test_without_repeats_the_table_is_the_plain_write_bit_for_bit():
    observed = torch.randint(0, K, (N,), generator=torch.Generator().manual_seed(0))
    index = torch.tensor([5, 0, 7, 2, 3, 6])
    probs = _probs(1, len(index))
    for candidates in (None, torch.tensor([True, False, True, True, False, True])):
        table = LabelTable(observed)
        before = table.labels.clone()
        new = relabel(probs, before[index], MARGIN)  # the update before: labels[index] = new
        if candidates is not None:
            new = torch.where(candidates, new, before[index])
        plain = before.clone()
        plain[index] = new
        table.update(index, probs, MARGIN, candidates)
        assert torch.equal(table.labels, plain)
        assert not torch.equal(plain, before)  # the rule did relabel some rows


def test_the_last_relabelled_occurrence_sets_the_label():
    table = LabelTable(torch.zeros(N, dtype=torch.long))
    index = torch.tensor([2, 0, 2, 2, 4])
    probs = torch.tensor(
        [
            [0.1, 0.8, 0.1],  # index 2 -> 1
            [0.9, 0.05, 0.05],  # index 0 kept
            [0.1, 0.1, 0.8],  # index 2 -> 2: the last occurrence relabelled
            [0.7, 0.2, 0.1],  # index 2 kept: does not undo the relabelling before
            [0.5, 0.4, 0.1],  # index 4 kept (gap 0)
        ]
    )
    table.update(index, probs, MARGIN)
    assert table.labels.tolist() == [0, 0, 2, 0, 0, 0, 0, 0]
    # the third occurrence not a candidate (SCN's "low" scope): the first one's label stays
    table = LabelTable(torch.zeros(N, dtype=torch.long))
    table.update(index, probs, MARGIN, torch.tensor([True, True, False, True, True]))
    assert table.labels[2] == 1


def test_scn_keeps_a_relabelling_a_later_occurrence_does_not_repeat():
    method = make("scn", torch.tensor([0, 1, 2, 0, 1, 2]), relabel_epoch="1")
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 1, 16, 16, generator=gen)
    with torch.no_grad():
        probs = method._forward(x)[1].softmax(1)
    gaps = probs.max(1).values - probs[:, 0]
    moved, kept = int(gaps.argmax()), int(gaps.argmin())
    # an untrained net's gaps are small: a margin between them, so the rule fires on one only
    method.hparams.margin_2 = float(gaps[moved] + gaps[kept]) / 2
    assert gaps[moved] > method.hparams.margin_2 >= gaps[kept]
    batch = Batch(x=x[[moved, kept]], y=torch.tensor([0, 0]), index=torch.tensor([3, 3]))
    method.loss(batch, 0)
    method.after_step(batch, 0)
    assert method.table.labels[3] == probs[moved].argmax() != 0
