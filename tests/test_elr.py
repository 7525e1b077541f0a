"""ELR's target update under repeated indices (``--sampler balanced`` draws with
replacement): each occurrence one visit, in batch order; without repeats, the official
update (ELR/model/loss.py:20-21) bit for bit."""

from __future__ import annotations

import torch
from test_methods_new_facts import make

from fer_bench.methods.base import Batch
from fer_bench.methods.elr import updated_targets

N, K, BETA = 6, 3, 0.7


def _state(seed: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(N, K, generator=gen)
    seen = torch.rand(batch, K, generator=gen)
    return target, seen / seen.sum(1, keepdim=True)


def test_without_repeats_the_update_is_the_official_one_bit_for_bit():
    target, seen = _state(0, 4)
    index = torch.tensor([4, 0, 2, 5])
    official = BETA * target[index] + (1 - BETA) * seen
    assert torch.equal(updated_targets(target, index, seen, BETA), official)


def test_a_repeated_index_takes_each_visit_in_batch_order():
    target, seen = _state(1, 5)
    index = torch.tensor([3, 1, 3, 0, 3])  # index 3 three times, at positions 0, 2, 4
    new = updated_targets(target, index, seen, BETA)
    # by hand, visit after visit: t <- beta t + (1 - beta) p
    t3 = target[3]
    for position in (0, 2, 4):
        t3 = BETA * t3 + (1 - BETA) * seen[position]
    for position in (0, 2, 4):  # every occurrence reads the final target
        torch.testing.assert_close(new[position], t3)
    torch.testing.assert_close(new[1], BETA * target[1] + (1 - BETA) * seen[1])
    torch.testing.assert_close(new[3], BETA * target[0] + (1 - BETA) * seen[3])
    # the closed form the docstring gives: beta^3 t + (1 - beta)(beta^2 p0 + beta p2 + p4)
    closed = BETA**3 * target[3] + (1 - BETA) * (BETA**2 * seen[0] + BETA * seen[2] + seen[4])
    torch.testing.assert_close(new[0], closed)


def test_the_method_stores_every_visit_of_a_repeated_index():
    method = make("elr", torch.tensor([0, 1, 2, 0, 1, 2]))
    x = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    twice = Batch(x=x.expand(2, -1, -1, -1), y=torch.tensor([2, 2]), index=torch.tensor([2, 2]))
    p = method.backbone(x).softmax(1).clamp(1e-4, 1 - 1e-4)
    p = (p / p.sum(1, keepdim=True)).detach()[0]
    method.loss(twice, 0)  # from zero: two visits of the same p, (1 - beta)(beta p + p)
    torch.testing.assert_close(method.target[2], (1 - BETA) * (BETA * p + p))
