"""Real-noise protocols on the real FERPlus copy (../shared/data/ferplus or $FER_BENCH_FERPLUS).

Loads FERPlus once (cached after the first decode) and checks the noise each
protocol realises: FER2013's own labels disagree with the FER+ majority on
about a third of the images; sampling from the votes flips about a fifth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_bench.config import DataConfig, ProtocolConfig
from fer_bench.data import load_dataset
from fer_bench.data.base import DatasetBundle
from fer_bench.training.labels import build_labels

pytestmark = pytest.mark.ferplus


@pytest.fixture(scope="module")
def bundle(ferplus_root: Path) -> DatasetBundle:
    if not (ferplus_root / "fer2013_labels.csv").is_file():
        pytest.skip(f"real FERPlus copy with fer2013_labels.csv not found at {ferplus_root}")
    return load_dataset(DataConfig(name="ferplus", root=str(ferplus_root)))


def test_fer2013_labels_are_real_human_noise(bundle):
    labels = build_labels(bundle, ProtocolConfig(noise="fer2013"))
    train = labels["train"]
    dropped = (bundle.train.original_labels < 0).sum()
    assert len(train.index) == len(bundle.train) - dropped > 24_900
    assert train.noise_rate == pytest.approx(0.3225, abs=0.001)
    contempt = bundle.class_names.index("contempt")
    assert train.flipped[train.clean == contempt].all()  # FER2013 has no contempt
    assert not (train.observed == contempt).any()
    assert 0.25 < labels["val"].noise_rate < 0.4


def test_votes_and_confusion_on_ferplus(bundle):
    votes = build_labels(bundle, ProtocolConfig(noise="votes"))["train"]
    assert 0.17 < votes.noise_rate < 0.22
    confusion = build_labels(bundle, ProtocolConfig(noise="confusion", noise_rate=0.3))["train"]
    assert confusion.noise_rate == pytest.approx(0.3, abs=0.002)
    rate = np.array([confusion.flipped[confusion.clean == c].mean() for c in range(8)])
    assert rate.argmin() == bundle.class_names.index("happiness")
