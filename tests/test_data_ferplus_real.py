"""The FERPlus loader on the real copy (../shared/data/ferplus or $FER_BENCH_FERPLUS).

Expected numbers were computed once from that copy with the FER+ majority rule.
The first run decodes 35k PNGs (a few seconds); later runs read the dataset cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_bench.config import DataConfig
from fer_bench.data import load_dataset
from fer_bench.data.base import DatasetBundle
from fer_bench.data.loaders.ferplus import read_label_csv, read_original_labels
from fer_bench.data.summary import summarize
from fer_bench.data.votes import FERPLUS_CLASSES

pytestmark = pytest.mark.ferplus


@pytest.fixture(scope="module")
def bundle(ferplus_root: Path) -> DatasetBundle:
    return load_dataset(DataConfig(name="ferplus", root=str(ferplus_root)))


MAJORITY_COUNTS = {  # neutral, happiness, surprise, sadness, anger, disgust, fear, contempt
    "train": [8733, 7284, 3136, 3022, 2098, 116, 536, 120],
    "val": [1180, 862, 411, 348, 289, 25, 60, 16],
    "test": [1083, 892, 394, 382, 269, 16, 86, 15],
}


def test_majority_counts(bundle: DatasetBundle) -> None:
    assert bundle.class_names == FERPLUS_CLASSES
    for split, expected in MAJORITY_COUNTS.items():
        labels = getattr(bundle, split).labels
        assert np.bincount(labels, minlength=8).tolist() == expected, split
    assert bundle.info["rows"] == {"train": 28558, "val": 3579, "test": 3573}
    assert bundle.info["dropped"] == {
        "train": {"no_majority": 3434, "unknown_or_nf": 79},
        "val": {"no_majority": 377, "unknown_or_nf": 11},
        "test": {"no_majority": 425, "unknown_or_nf": 11},
    }
    assert bundle.image_shape == (1, 48, 48)


def test_original_labels_and_disagreement(bundle: DatasetBundle) -> None:
    # 171 rows of fer2013_labels.csv are undetermined; 131 of them survive the majority rule
    assert bundle.info["original_labels"]["undetermined"] == {"train": 96, "val": 15, "test": 20}
    stats = summarize(bundle)
    assert stats["original_known"] == {"train": 24949, "val": 3176, "test": 3117}
    assert stats["original_disagreement"]["train"] == pytest.approx(8045 / 24949)
    assert stats["original_disagreement"]["test"] == pytest.approx(1010 / 3117)
    assert stats["vote_ambiguity"]["train"] == pytest.approx(6294 / 25045)


def test_known_images(bundle: DatasetBundle, ferplus_root: Path) -> None:
    root = ferplus_root
    rows = read_label_csv(root / "FER2013Train" / "label.csv")
    original = read_original_labels(root / "fer2013_labels.csv", FERPLUS_CLASSES)
    # fer0000000.png: votes 4,0,0,1,3,2,0,0,0,0, FER2013 "angry"; after dropping the
    # single vote no emotion holds a majority (4 of 9), so the rule leaves it out
    assert rows.names[0] == "fer0000000.png"
    assert rows.votes[0].tolist() == [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]
    assert original["fer0000000.png"] == FERPLUS_CLASSES.index("anger")
    assert "fer0000000.png" not in bundle.train.names
    # fer0000001.png: votes 6,0,1,1,0,0,0,0,2,0 -> neutral (6 of 8), FER2013 "angry"
    i = bundle.train.names.index("fer0000001.png")
    assert bundle.class_names[bundle.train.labels[i]] == "neutral"
    assert bundle.class_names[bundle.train.original_labels[i]] == "anger"
    np.testing.assert_allclose(bundle.train.soft_labels[i], [0.75, 0, 0.125, 0.125, 0, 0, 0, 0])
    with Image.open(root / "FER2013Train" / "fer0000001.png") as image:
        pixels = np.asarray(image)
    np.testing.assert_array_equal(bundle.train.images[i, 0], pixels)
