"""Real single-annotator noise: train on the original FER2013 labels.

The observed label is ``Split.original_labels`` (the label the image carried
in the FER2013 release, mapped to the dataset's class ids); the clean label
stays the dataset's reference (the FER+ majority), and test labels are always
clean. Rows whose original label is unknown (``UNDETERMINED``: FER2013
duplicates carrying two labels) are dropped. FER2013 has no contempt, so a
contempt image is always "flipped". The noise level is the data's own; the
rate must be left at 0.
"""

from __future__ import annotations

import numpy as np

from fer_bench.data.base import UNDETERMINED, DatasetBundle, Split
from fer_bench.protocols.base import NoiseProtocol
from fer_bench.registry import NOISE


@NOISE.register("fer2013")
class Fer2013(NoiseProtocol):
    """Original single-annotator FER2013 labels (real human noise)."""

    takes_rate = False

    def __init__(self, rate: float, bundle: DatasetBundle) -> None:
        super().__init__(rate, bundle)
        if not bundle.has_original_labels():
            raise ValueError(
                f"fer2013 noise needs the original FER2013 labels; dataset {bundle.name} has none"
            )

    def corrupt(
        self, split: Split, split_name: str, rng: np.random.Generator, rows: np.ndarray
    ) -> np.ndarray:
        if split.original_labels is None:
            raise ValueError(
                f"fer2013 noise: {self.bundle.name} {split_name} split has no original labels"
            )
        observed = np.asarray(split.original_labels, dtype=np.int64).copy()
        bad = (observed != UNDETERMINED) & ((observed < 0) | (observed >= self.bundle.num_classes))
        if bad.any():
            raise ValueError(
                f"fer2013 noise: {split_name} original label {observed[bad][0]} is outside "
                f"0..{self.bundle.num_classes - 1}"
            )
        return observed
