"""Pair-flip noise: each class flips to one fixed partner class at rate R.

Partner map over the canonical expression names, a set of swaps (so no class
only gains) between classes FER+ annotators confuse (see
:data:`.confusion.VOTE_CONFUSION`):

    neutral <-> sadness, surprise <-> fear, anger <-> disgust,
    happiness <-> contempt

neutral/sadness and surprise/fear are each other's most-voted other class,
anger is disgust's; happiness and contempt are the two smiling expressions.
On the 8 FER+ classes this is a permutation. When the partner is not among
the dataset's classes the next listed alternative is used: happiness ->
surprise on the 7 basic expressions (happiness's most-voted class after
neutral, which already pairs with sadness). A class with no listed partner in
the dataset flips to the next class id (c + 1 mod C). A class never maps to
itself. Flips are exact per class (see :mod:`.transition`); rates >= 0.5 are
refused since the partner would then be at least as likely as the true class.
"""

from __future__ import annotations

import numpy as np

from fer_bench.data.base import DatasetBundle
from fer_bench.registry import NOISE

from .transition import ClassConditional

PARTNERS: dict[str, tuple[str, ...]] = {
    "neutral": ("sadness",),
    "sadness": ("neutral",),
    "surprise": ("fear",),
    "fear": ("surprise",),
    "anger": ("disgust",),
    "disgust": ("anger",),
    "happiness": ("contempt", "surprise"),
    "contempt": ("happiness",),
}


def partner_ids(class_names: tuple[str, ...]) -> np.ndarray:
    """Partner class id of each class id, for a dataset's class order."""
    ids = {name: i for i, name in enumerate(class_names)}
    out = np.empty(len(class_names), dtype=np.int64)
    for c, name in enumerate(class_names):
        present = [ids[p] for p in PARTNERS.get(name, ()) if p in ids]
        out[c] = present[0] if present else (c + 1) % len(class_names)
    return out


@NOISE.register("pairflip")
class PairFlip(ClassConditional):
    """Rate R moved to one fixed partner class (neutral<->sadness, ...)."""

    def __init__(self, rate: float, bundle: DatasetBundle) -> None:
        super().__init__(rate, bundle)
        if rate >= 0.5:
            raise ValueError(
                f"pairflip rate {rate} >= 0.5: the partner class would be at least as "
                "likely as the true class"
            )
        self.partners = partner_ids(bundle.class_names)

    def transition_matrix(self, labels: np.ndarray) -> np.ndarray:
        c = self.bundle.num_classes
        matrix = np.eye(c) * (1.0 - self.rate)
        matrix[np.arange(c), self.partners] += self.rate
        return matrix
