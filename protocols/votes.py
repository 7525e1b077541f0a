"""Instance-dependent noise from real ambiguity: sample each label from its own votes.

Each image's observed label is drawn from its annotator distribution
(``Split.soft_labels``, one column per class of the dataset), so ambiguous
images are relabelled often and clear ones rarely. The noise level is the
data's own; the rate must be left at 0. A row without votes keeps its label.
"""

from __future__ import annotations

import numpy as np

from fer_bench.data.base import DatasetBundle, Split
from fer_bench.protocols.base import NoiseProtocol
from fer_bench.registry import NOISE


@NOISE.register("votes")
class Votes(NoiseProtocol):
    """Each label sampled from the image's own annotator votes."""

    takes_rate = False

    def __init__(self, rate: float, bundle: DatasetBundle) -> None:
        super().__init__(rate, bundle)
        if not bundle.has_votes():
            raise ValueError(f"votes noise needs annotator votes; dataset {bundle.name} has none")

    def corrupt(
        self, split: Split, split_name: str, rng: np.random.Generator, rows: np.ndarray
    ) -> np.ndarray:
        if split.soft_labels is None:
            raise ValueError(f"votes noise: {self.bundle.name} {split_name} split has no votes")
        votes = np.asarray(split.soft_labels, dtype=np.float64)
        if votes.shape[1] != self.bundle.num_classes or (votes < 0).any():
            raise ValueError(
                f"votes noise: {split_name} votes must be non-negative with one column per "
                f"class ({self.bundle.num_classes}), got shape {votes.shape}"
            )
        mass = votes.sum(axis=1)
        has_votes = mass > 0
        cum = np.cumsum(votes[has_votes] / mass[has_votes, None], axis=1)
        u = rng.random(len(cum))
        # Inverse CDF; the clip guards against a last cumulative sum a hair under 1.
        drawn = np.minimum((cum <= u[:, None]).sum(axis=1), votes.shape[1] - 1)
        observed = split.labels.copy()
        observed[has_votes] = drawn
        return observed
