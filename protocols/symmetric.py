"""Symmetric noise: a fraction R of labels moved to a class drawn uniformly from the others.

"Symmetric" here means uniform over the C-1 *other* classes (as in the
SCN/RUL/EAC generator), not over all C classes. The count is exact per class
(``round(R * n_c)`` rows of each class flipped, see :mod:`.transition`), not a
Bernoulli draw per sample as in SCN's generator: the realised rate then equals
the requested rate on every class and on imbalanced data, and tables do not
carry the generator's sampling variance. Rates >= (C-1)/C are refused: the
true class would no longer be the most likely observed label.
"""

from __future__ import annotations

import numpy as np

from fer_bench.data.base import DatasetBundle
from fer_bench.registry import NOISE

from .transition import ClassConditional


@NOISE.register("symmetric")
class Symmetric(ClassConditional):
    """Rate R moved uniformly to the other classes, exact count per class."""

    def __init__(self, rate: float, bundle: DatasetBundle) -> None:
        super().__init__(rate, bundle)
        c = bundle.num_classes
        if rate >= (c - 1) / c:
            raise ValueError(
                f"symmetric rate {rate} >= (C-1)/C = {(c - 1) / c:.3f}: "
                "the true class would no longer be the most likely label"
            )

    def transition_matrix(self, labels: np.ndarray) -> np.ndarray:
        c = self.bundle.num_classes
        matrix = np.full((c, c), self.rate / (c - 1))
        np.fill_diagonal(matrix, 1.0 - self.rate)
        return matrix
