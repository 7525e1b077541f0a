"""Long-tailed subsampling with imbalance factor IF = n_max / n_min.

Class order (head to tail) is the source split's own frequency order, most
frequent first (ties broken by class id), so the head is always the most
frequent class of the source data. Class rank r of C keeps
``n_max * IF ** (-r / (C - 1))`` images (``exp``) or, for ``step``, n_max for
the first half of the ranks and n_max / IF for the rest, where n_max is the
head class's count; a class never keeps more than it has.
"""

from __future__ import annotations

import numpy as np

from fer_bench.labels import ImbalanceProtocol
from fer_bench.registry import PROTOCOLS


def head_to_tail(labels: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=num_classes)
    return np.lexsort((np.arange(num_classes), -counts))


class _LongTail(ImbalanceProtocol):
    def target_counts(self, labels: np.ndarray) -> np.ndarray:
        num_classes = self.bundle.num_classes
        counts = np.bincount(labels, minlength=num_classes)
        order = head_to_tail(labels, num_classes)
        n_max = counts[order[0]]
        if n_max / self.factor < 1:
            raise ValueError(
                f"imbalance factor {self.factor} leaves the tail class under one image "
                f"(head class has {n_max})"
            )
        target = np.zeros(num_classes, dtype=np.int64)
        for rank, c in enumerate(order):
            target[c] = min(counts[c], int(n_max * self.profile(rank, num_classes)))
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


@PROTOCOLS.register("exp")
class ExpLongTail(_LongTail):
    def profile(self, rank: int, num_classes: int) -> float:
        return self.factor ** (-rank / (num_classes - 1))


@PROTOCOLS.register("step")
class StepLongTail(_LongTail):
    def profile(self, rank: int, num_classes: int) -> float:
        return 1.0 if rank < num_classes // 2 else 1.0 / self.factor
