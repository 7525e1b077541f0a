"""Class-conditional noise with human-like confusions, at a chosen overall rate.

``confusion`` uses :data:`VOTE_CONFUSION` (or the matrix in ``confusion:PATH``,
a CSV whose header names the classes and whose rows follow the header order).
Only the off-diagonal pattern is used: for class c, ``d_c`` = its off-diagonal
row sum says how often humans disagree on c, and the row divided by ``d_c``
says where its labels go. Entries for classes the dataset lacks are dropped.

Class c flips at ``r_c = s * d_c``, keeping the human ratios between classes,
with s solved from ``sum_c n_c r_c = R * N`` over the class counts of the
labels being corrupted: the realised overall rate is R on imbalanced data too
(a matrix scaled without the counts realises another rate once the head class
dominates). Rows are ``1 - r_c`` on the diagonal and ``r_c * dest[c, j]``
elsewhere (``dest`` = the off-diagonal row divided by ``d_c``), so every row
is stochastic. A rate at which some class's most common wrong label would
become as likely as the class itself is refused, as for symmetric noise; on
FERPlus (majority labels) that caps R near 0.35, since fear and disgust are
confused three to five times as often as happiness.

:data:`VOTE_CONFUSION` row c is, over FER+ training images whose FER+ majority
label is c, the mean share of the 8 emotion votes given to each class (raw
votes, before the majority rule drops single votes). Computed once from
``FER2013Train/label.csv`` with::

    votes = np.array([[int(v) for v in row[2:12]] for row in csv.reader(f)])
    v = np.where(votes == 1, 0, votes)  # FER+ majority rule: drop single votes,
    win = v.argmax(1)                   # the winner holds more than half the rest
    ok = (2 * v.max(1) > v.sum(1)) & (win < 8)  # and is an emotion
    share = votes[ok, :8] / votes[ok, :8].sum(1, keepdims=True)
    matrix = np.stack([share[win[ok] == c].mean(0) for c in range(8)]).round(4)

(images per class: 8733 neutral, 7284 happiness, 3136 surprise, 3022 sadness,
2098 anger, 116 disgust, 536 fear, 120 contempt).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fer_bench.data.base import DatasetBundle
from fer_bench.expressions import EXPRESSIONS, canonical
from fer_bench.registry import NOISE

from .transition import ClassConditional

# Rows and columns in fer_bench.expressions.EXPRESSIONS order.
VOTE_CONFUSION: tuple[tuple[float, ...], ...] = (
    (0.7840, 0.0305, 0.0178, 0.1050, 0.0273, 0.0083, 0.0050, 0.0222),  # neutral
    (0.0424, 0.9200, 0.0211, 0.0049, 0.0042, 0.0021, 0.0018, 0.0035),  # happiness
    (0.0575, 0.0346, 0.7901, 0.0109, 0.0151, 0.0034, 0.0853, 0.0030),  # surprise
    (0.1647, 0.0144, 0.0104, 0.7458, 0.0235, 0.0130, 0.0175, 0.0108),  # sadness
    (0.0747, 0.0276, 0.0609, 0.0331, 0.7342, 0.0349, 0.0246, 0.0100),  # anger
    (0.0862, 0.0192, 0.0226, 0.0785, 0.1314, 0.6092, 0.0170, 0.0359),  # disgust
    (0.0459, 0.0129, 0.1728, 0.0729, 0.0312, 0.0158, 0.6443, 0.0042),  # fear
    (0.1450, 0.0225, 0.0125, 0.0535, 0.0390, 0.0616, 0.0093, 0.6566),  # contempt
)


def read_matrix_csv(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names (canonical) and the square matrix of a confusion CSV."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty confusion matrix file")
    try:
        names = tuple(canonical(n) for n in rows[0])
    except ValueError as err:
        raise ValueError(f"{path} line 1: {err}") from None
    body = [r for r in rows[1:] if r]
    if len(body) != len(names):
        raise ValueError(f"{path}: {len(body)} matrix rows for {len(names)} classes in the header")
    matrix = np.zeros((len(names), len(names)))
    for i, row in enumerate(body):
        try:
            matrix[i] = [float(x) for x in row]
        except ValueError:
            raise ValueError(
                f"{path} line {i + 2}: expected {len(names)} numbers, got {row}"
            ) from None
    if (matrix < 0).any():
        raise ValueError(f"{path}: negative entries in the confusion matrix")
    return names, matrix


def off_diagonal_pattern(
    names: tuple[str, ...], matrix: np.ndarray, class_names: tuple[str, ...]
) -> np.ndarray:
    """The matrix restricted to a dataset's classes, in its order, diagonal zeroed."""
    missing = [c for c in class_names if c not in names]
    if missing:
        raise ValueError(f"confusion matrix has no row for {', '.join(missing)}")
    pos = [names.index(c) for c in class_names]
    off = matrix[np.ix_(pos, pos)].astype(np.float64)
    np.fill_diagonal(off, 0.0)
    return off


def class_rates(
    off: np.ndarray, counts: np.ndarray, rate: float, class_names: tuple[str, ...]
) -> np.ndarray:
    """Per-class flip rates in proportion to the off-diagonal mass, averaging ``rate``."""
    d = off.sum(axis=1)
    mass = float((counts * d).sum())
    if rate == 0.0:
        return np.zeros_like(d)
    if mass == 0.0:
        raise ValueError("confusion noise: no class present in these labels is ever confused")
    rates = d * (rate * counts.sum() / mass)
    dest_max = np.divide(off.max(axis=1), d, out=np.zeros_like(d), where=d > 0)
    # the rate at which a class's most common wrong label becomes as likely as the class
    tie = 1.0 / (1.0 + dest_max)
    if (rates >= tie).any():
        # the first class to lose its lead sets the highest reachable rate
        headroom = np.divide(tie, rates, out=np.full_like(d, np.inf), where=rates > 0)
        worst = int(np.argmin(headroom))
        raise ValueError(
            f"confusion rate {rate} is out of reach on these labels: {class_names[worst]} "
            f"would flip at {rates[worst]:.3f}, so its true label would no longer be the most "
            f"likely; rates below {rate * headroom[worst]:.3f} keep every class's the most likely"
        )
    return rates


@NOISE.register("confusion")
class Confusion(ClassConditional):
    """Human-like confusions (FER+ vote matrix, or confusion:PATH) at overall rate R."""

    arg_help = "PATH of a CSV transition matrix (header: class names)"

    def __init__(self, rate: float, bundle: DatasetBundle, arg: str | None = None) -> None:
        super().__init__(rate, bundle)
        if arg is None:
            names, matrix = EXPRESSIONS, np.asarray(VOTE_CONFUSION)
        else:
            path = Path(arg)
            if not path.is_file():
                raise FileNotFoundError(f"confusion matrix file not found: {path}")
            names, matrix = read_matrix_csv(path)
        self.off = off_diagonal_pattern(names, matrix, bundle.class_names)

    def transition_matrix(self, labels: np.ndarray) -> np.ndarray:
        counts = np.bincount(labels, minlength=self.bundle.num_classes)
        rates = class_rates(self.off, counts, self.rate, self.bundle.class_names)
        d = self.off.sum(axis=1)
        dest = np.divide(self.off, d[:, None], out=np.zeros_like(self.off), where=d[:, None] > 0)
        matrix = rates[:, None] * dest
        np.fill_diagonal(matrix, 1.0 - rates)
        return matrix
