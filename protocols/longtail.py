"""Long-tailed subsampling with imbalance factor IF = n_max / n_min.

Class order (head to tail) is the source split's own frequency order, most
frequent first (ties broken by class id), so the head is always the most
frequent class of the source data. Class rank r of C keeps
``floor(n_max * p(r))`` images, ``p(r) = IF ** (-r / (C - 1))`` for ``exp``
and, for ``step``, ``p = 1`` on the first ``C // 2`` ranks and ``1 / IF`` on
the rest.

n_max is the largest head count the data supports: the head class's own
count when every class has enough images, otherwise the largest n for which
each class still has its ``floor(n * p(r))``. Counts then follow the formula
exactly and the realised n_max / n_min is IF (up to the floor), where
letting short classes keep all they have would push the real factor past
the requested one unnoticed. On data that is already long-tailed (FERPlus) this
shrinks the head; ``fer-bench labels`` shows the counts before and after.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from fer_bench.protocols.base import ImbalanceProtocol
from fer_bench.registry import IMBALANCE


def _floor(x: float) -> int:
    # floor with slack, so float round-off (999 * 3 ** -1 = 332.99...) never costs an image
    return math.floor(x + 1e-9)


def head_to_tail(labels: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=num_classes)
    return np.lexsort((np.arange(num_classes), -counts))


class _LongTail(ImbalanceProtocol):
    name: ClassVar[str]  # the registered name, for messages

    def target_counts(self, labels: np.ndarray) -> np.ndarray:
        num_classes = self.bundle.num_classes
        counts = np.bincount(labels, minlength=num_classes)
        order = head_to_tail(labels, num_classes)
        shares = [self.profile(rank, num_classes) for rank in range(num_classes)]
        n_max = min(_floor(counts[c] / shares[rank]) for rank, c in enumerate(order))
        if _floor(n_max / self.factor) < 1:
            raise ValueError(
                f"imbalance factor {self.factor} ({self.name}) is larger than the data allows: "
                f"the tail class would keep under one image (counts head to tail: "
                f"{counts[order].tolist()})"
            )
        target = np.zeros(num_classes, dtype=np.int64)
        for rank, c in enumerate(order):
            target[c] = _floor(n_max * shares[rank])
        return target

    def profile(self, rank: int, num_classes: int) -> float:
        raise NotImplementedError

    def select(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        target = self.target_counts(labels)
        keep = [
            rng.choice(np.flatnonzero(labels == c), size=n, replace=False)
            for c, n in enumerate(target)
        ]
        return np.sort(np.concatenate(keep))


@IMBALANCE.register("exp")
class ExpLongTail(_LongTail):
    """Exponential long tail: rank r keeps n_max * IF^(-r/(C-1))."""

    name = "exp"

    def profile(self, rank: int, num_classes: int) -> float:
        return self.factor ** (-rank / (num_classes - 1))


@IMBALANCE.register("step")
class StepLongTail(_LongTail):
    """Step long tail: first half of the classes n_max, the rest n_max / IF."""

    name = "step"

    def profile(self, rank: int, num_classes: int) -> float:
        return 1.0 if rank < num_classes // 2 else 1.0 / self.factor
