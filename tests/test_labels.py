"""Label sets end to end: imbalance then noise, seeds, the saved artifact, ``fer-bench labels``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
from test_protocols import imbalanced_labels, make_bundle, make_split
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.config import ProtocolConfig
from fer_bench.registry import DATASETS
from fer_bench.training.labels import build_labels

COUNTS = (300, 40, 90, 500, 200, 120, 400)


def voted_split(counts):
    labels = imbalanced_labels(counts)
    soft = np.full((len(labels), 7), 0.05, dtype=np.float32)
    soft[np.arange(len(labels)), labels] = 0.7
    return make_split(labels, soft=soft)


def bundle():
    return make_bundle(voted_split(COUNTS), voted_split((30, 5, 10, 50, 20, 15, 40)))


@DATASETS.register("tiny-labels-test")
def _tiny_dataset(cfg):
    return bundle()


@pytest.mark.parametrize("noise", ["symmetric", "pairflip", "confusion", "votes"])
def test_same_seed_same_bytes_other_seed_other_labels(noise):
    rate = 0.0 if noise == "votes" else 0.3
    cfg = ProtocolConfig(noise=noise, noise_rate=rate, noise_seed=7, imbalance=5.0)
    first, again = build_labels(bundle(), cfg), build_labels(bundle(), cfg)
    other = build_labels(bundle(), replace(cfg, noise_seed=8))
    for split in ("train", "val"):
        assert first[split].to_csv_bytes() == again[split].to_csv_bytes()
        assert first[split].sha256() == again[split].sha256()
        assert not np.array_equal(first[split].observed, other[split].observed)
    assert not np.array_equal(first["train"].index, other["train"].index)  # subsampling too


def test_imbalance_first_then_noise_on_the_kept_rows():
    cfg = ProtocolConfig(noise_rate=0.2, noise_seed=1, imbalance=10.0)
    train = build_labels(bundle(), cfg)["train"]
    kept = np.bincount(train.clean, minlength=7)
    assert kept.max() == 400 and kept.min() == 40  # head 500 shrinks so the tail's 40 fits
    assert (np.diff(train.index) > 0).all()
    assert (train.clean == bundle().train.labels[train.index]).all()
    for c in range(7):
        assert train.flipped[train.clean == c].sum() == round(0.2 * kept[c])


def test_val_gets_the_protocol_unless_told_otherwise_and_keeps_its_profile():
    b = bundle()
    noisy = build_labels(b, ProtocolConfig(noise_rate=0.4, imbalance=5.0))["val"]
    clean = build_labels(b, ProtocolConfig(noise_rate=0.4, imbalance=5.0, noise_on_val=False))
    assert len(noisy.index) == len(b.val)  # never subsampled
    assert noisy.noise_rate == pytest.approx(0.4, abs=0.02)
    assert clean["val"].noise_rate == 0.0
    assert clean["train"].noise_rate == pytest.approx(0.4, abs=0.01)
    assert set(build_labels(b, ProtocolConfig())) == {"train", "val"}  # test labels: clean


def test_saved_artifact_is_the_hashed_bytes(tmp_path):
    labels = build_labels(bundle(), ProtocolConfig(noise_rate=0.3, noise_seed=2))["train"]
    digest = labels.save(tmp_path / "labels_train.csv")
    data = (tmp_path / "labels_train.csv").read_bytes()
    assert digest == labels.sha256() == hashlib.sha256(data).hexdigest()
    rows = np.loadtxt(tmp_path / "labels_train.csv", delimiter=",", skiprows=1, dtype=np.int64)
    assert data.startswith(b"index,observed,clean,flipped\n")
    assert (rows[:, 1] == labels.observed).all() and (rows[:, 2] == labels.clean).all()
    assert (rows[:, 3] == (rows[:, 1] != rows[:, 2])).all()
    assert not list(tmp_path.glob("*.tmp"))


# --- fer-bench labels --------------------------------------------------------------------

runner = CliRunner()


def labels_cmd(*args: str):
    return runner.invoke(app, ["labels", "--dataset", "tiny-labels-test", *args])


def test_labels_json_reports_the_realised_protocol():
    result = labels_cmd("--noise", "0.3", "--noise-type", "pairflip", "--imbalance", "10", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["protocol"]["noise"] == "pairflip" and out["split"] == "train"
    assert out["counts_source"] == list(COUNTS)
    assert sum(out["counts_clean"]) == sum(out["counts_observed"]) == out["n_used"]
    assert max(out["counts_clean"]) / min(out["counts_clean"]) == pytest.approx(10.0)
    assert out["noise_rate"] == pytest.approx(0.3, abs=0.01)
    assert all(row["rate"] == pytest.approx(0.3, abs=0.02) for row in out["per_class"])
    matrix = np.array(out["transition"])
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(matrix), 0.7, atol=0.02)
    expected = build_labels(
        bundle(), ProtocolConfig(noise="pairflip", noise_rate=0.3, imbalance=10.0)
    )["train"]
    assert out["sha256"] == expected.sha256()


def test_labels_table_and_save(tmp_path):
    path = tmp_path / "labels.csv"
    result = labels_cmd("--noise", "0.2", "--split", "val", "--save", str(path))
    assert result.exit_code == 0, result.output
    assert "realised transition" in result.output and "realised noise rate" in result.output
    expected = build_labels(bundle(), ProtocolConfig(noise_rate=0.2))["val"]
    assert path.read_bytes() == expected.to_csv_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--noise", "1.0"], "noise rate must be in [0, 1)"),
        (["--noise", "0.9"], "symmetric rate 0.9 >= (C-1)/C"),
        (["--imbalance", "0.5"], "--imbalance: the factor must be finite and >= 1 (got 0.5)"),
        (["--imbalance", "1000"], "larger than the data allows"),
        (["--noise-type", "fer2013"], "needs the original FER2013 labels"),
        (["--noise-type", "file:missing.txt"], "label file not found"),
        (["--split", "test"], "--split must be train or val"),
    ],
)
def test_labels_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    path = tmp_path / "labels.csv"
    result = labels_cmd(*args, "--save", str(path))
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not path.exists()
