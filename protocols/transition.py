"""Class-conditional noise from a row-stochastic transition matrix T.

T[c, j] is the probability that a clean label c is observed as j. Flips are
exact per class, not Bernoulli per sample: ``round((1 - T[c, c]) * n_c)`` rows
of class c (chosen uniformly) get a new label drawn from row c of T with the
diagonal removed, so a label never "flips" to itself and the realised rate of
each class is its matrix rate up to rounding, however imbalanced the data.
"""

from __future__ import annotations

import numpy as np

from fer_bench.data.base import Split
from fer_bench.protocols.base import NoiseProtocol


def check_stochastic(matrix: np.ndarray) -> None:
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"transition matrix must be square (got shape {matrix.shape})")
    if (matrix < 0).any() or not np.allclose(matrix.sum(axis=1), 1.0):
        raise ValueError("transition matrix rows must be non-negative and sum to 1")


def flip_by_matrix(labels: np.ndarray, matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    check_stochastic(matrix)
    observed = labels.copy()
    for c in range(matrix.shape[0]):
        rows = np.flatnonzero(labels == c)
        n_flip = int(round((1.0 - matrix[c, c]) * len(rows)))
        if n_flip == 0:
            continue
        dest = matrix[c].copy()
        dest[c] = 0.0
        chosen = rng.choice(rows, size=n_flip, replace=False)
        observed[chosen] = rng.choice(len(dest), size=n_flip, p=dest / dest.sum())
    return observed


class ClassConditional(NoiseProtocol):
    """A noise protocol defined by its transition matrix for the labels at hand."""

    def transition_matrix(self, labels: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def corrupt(
        self, split: Split, split_name: str, rng: np.random.Generator, rows: np.ndarray
    ) -> np.ndarray:
        return flip_by_matrix(split.labels, self.transition_matrix(split.labels), rng)
