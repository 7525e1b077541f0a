"""The protocol contract: a noise protocol maps clean labels to observed ones, an
imbalance protocol picks the rows of a long-tailed training set.

Each kind has its own registry (:data:`fer_bench.registry.NOISE`,
:data:`fer_bench.registry.IMBALANCE`); a member of this folder subclasses one of
the two classes below and registers under a name. Their randomness comes only
from the ``rng`` they are given (derived from the protocol seed, never the
training seed); :mod:`fer_bench.training.labels` applies them, imbalance first.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fer_bench.config import check_imbalance, check_noise_rate
from fer_bench.data.base import DatasetBundle, Split


class NoiseProtocol:
    """Maps clean labels of one split to observed labels.

    Subclasses are built as ``cls(rate, bundle)``, or ``cls(rate, bundle, arg)``
    for ``name:arg`` when they set ``arg_help``. ``corrupt`` may return
    ``UNDETERMINED`` (-1) for rows it cannot label (e.g. FER2013 duplicates);
    those rows are left out of the split.
    """

    # False: the noise level comes from the data (votes, original labels, a file),
    # so any rate other than 0 is refused rather than silently ignored.
    takes_rate: ClassVar[bool] = True
    arg_help: ClassVar[str | None] = None  # what ``name:arg`` means; None = no argument

    def __init__(self, rate: float, bundle: DatasetBundle) -> None:
        check_noise_rate(rate)
        if not self.takes_rate and rate != 0.0:
            raise ValueError(
                "this noise protocol takes its noise level from the data (votes, original "
                f"labels or a label file); leave the noise rate at 0 (got {rate})"
            )
        self.rate = rate
        self.bundle = bundle

    def corrupt(
        self, split: Split, split_name: str, rng: np.random.Generator, rows: np.ndarray
    ) -> np.ndarray:
        """Observed labels for ``split``, whose rows sit at ``rows`` of the source split."""
        raise NotImplementedError


class ImbalanceProtocol:
    """Chooses which rows of a split to keep for a long-tailed class profile."""

    def __init__(self, factor: float, bundle: DatasetBundle) -> None:
        check_imbalance(factor)
        self.factor = factor
        self.bundle = bundle

    def select(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError
