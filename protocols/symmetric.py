"""Symmetric noise: a fraction R of labels moved to a class drawn uniformly from the others.

Count is exact per class (round(R * n_c) rows of each class flipped), not a
Bernoulli draw per sample as in SCN's generator: the realised rate then equals
the requested rate on every class and on imbalanced data, and tables do not
carry the generator's sampling variance. The destination class is uniform
over the C-1 other classes, so a label never "flips" to itself.
"""

from __future__ import annotations

import numpy as np

from fer_bench.data.base import Split
from fer_bench.labels import NoiseProtocol
from fer_bench.registry import PROTOCOLS


@PROTOCOLS.register("symmetric")
class Symmetric(NoiseProtocol):
    def corrupt(self, split: Split, split_name: str, rng: np.random.Generator) -> np.ndarray:
        labels = split.labels.copy()
        num_classes = self.bundle.num_classes
        if self.rate >= (num_classes - 1) / num_classes:
            raise ValueError(
                f"symmetric rate {self.rate} >= (C-1)/C = {(num_classes - 1) / num_classes:.3f}: "
                "the true class would no longer be the most likely label"
            )
        for c in range(num_classes):
            rows = np.flatnonzero(split.labels == c)
            n_flip = int(round(self.rate * len(rows)))
            chosen = rng.choice(rows, size=n_flip, replace=False)
            # uniform over the other classes: draw from C-1 and skip c
            dest = rng.integers(0, num_classes - 1, size=n_flip)
            labels[chosen] = dest + (dest >= c)
        return labels
