"""Each dataset loader on a tiny copy of its published layout, the cache and `data info`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.config import DataConfig
from fer_bench.data import decoding, imaging, load_dataset
from fer_bench.data import testing as fx
from fer_bench.data.base import UNDETERMINED
from fer_bench.registry import DATASETS


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("FER_BENCH_CACHE", str(path))
    return path


def load(name: str, root: Path | None, **kw) -> object:
    return load_dataset(DataConfig(name=name, root=None if root is None else str(root), **kw))


def grey(split) -> list[int]:
    """The flat grey level of each image (fixtures draw image i at pixel_value(i))."""
    return split.images[:, 0, 0, 0].tolist()


def values(indices) -> list[int]:
    return [fx.pixel_value(i) for i in indices]


def test_all_loaders_registered() -> None:
    for name in ("ferplus", "fer2013", "rafdb", "affectnet", "folder", "hf", "synthetic"):
        assert name in DATASETS


def test_ferplus_majority(tmp_path: Path) -> None:
    root = fx.write_ferplus(tmp_path / "ferplus", original=fx.FERPLUS_ORIGINAL)
    b = load("ferplus", root)
    assert b.class_names[:2] == ("neutral", "happiness") and b.num_classes == 8
    assert b.class_names[7] == "contempt"
    assert b.train.labels.tolist() == [0, 1, 7, 2, 4]
    assert b.val.labels.tolist() == [1, 3]
    assert b.test.labels.tolist() == [5, 6]
    assert grey(b.train) == values([0, 1, 3, 5, 6])
    assert grey(b.test) == values([10, 11])
    assert b.train.names == [fx.ferplus_name(i) for i in (0, 1, 3, 5, 6)]
    assert b.image_shape == (1, 48, 48)
    # soft labels: raw votes (the outlier 1s included) over the 8 emotions, normalised
    np.testing.assert_allclose(b.train.soft_labels[1], [0, 0.8, 0.1, 0.1, 0, 0, 0, 0])
    np.testing.assert_allclose(b.test.soft_labels[1], [0, 0, 0, 0, 0, 0, 0.7, 0.3])
    assert b.info["dropped"] == {
        "train": {"no_majority": 2, "unknown_or_nf": 1},
        "val": {"no_majority": 0, "unknown_or_nf": 0},
        "test": {"no_majority": 0, "unknown_or_nf": 1},
    }
    assert b.train.original_labels.tolist() == [0, 1, 4, 6, 4]
    assert b.val.original_labels.tolist() == [1, UNDETERMINED]
    assert b.info["original_labels"]["undetermined"] == {"train": 0, "val": 1, "test": 0}
    assert set(b.info["label_files_sha256"]) == {
        "FER2013Train/label.csv",
        "FER2013Valid/label.csv",
        "FER2013Test/label.csv",
        "fer2013_labels.csv",
    }


def test_ferplus_basic7_resized_rgb_without_original(tmp_path: Path) -> None:
    root = fx.write_ferplus(tmp_path / "ferplus")
    b = load("ferplus", root, label_mode="basic7", image_size=32, channels=3)
    assert b.num_classes == 7 and "contempt" not in b.class_names
    assert b.train.labels.tolist() == [0, 1, 2, 4]
    assert b.info["dropped"]["train"]["contempt"] == 1
    assert b.info["dropped"]["test"]["contempt"] == 0
    # fear 7 / contempt 3 keeps fear, and contempt leaves the 7-class soft label
    np.testing.assert_allclose(b.test.soft_labels[1], [0, 0, 0, 0, 0, 0, 1.0])
    assert b.image_shape == (3, 32, 32)
    assert (b.train.images[1] == fx.pixel_value(1)).all()
    assert b.train.original_labels is None and not b.has_original_labels()


def test_ferplus_unknown_label_mode(tmp_path: Path) -> None:
    root = fx.write_ferplus(tmp_path / "ferplus")
    with pytest.raises(ValueError, match="unknown FER\\+ label mode 'plurality'"):
        load("ferplus", root, label_mode="plurality")


def test_fer2013_original_labels(tmp_path: Path) -> None:
    root = fx.write_fer2013(tmp_path / "fer", with_votes=False)
    b = load("fer2013", root)
    assert b.class_names == (
        "anger",
        "disgust",
        "fear",
        "happiness",
        "sadness",
        "surprise",
        "neutral",
    )
    assert [len(b.train), len(b.val), len(b.test)] == [9, 2, 3]
    # rows: neutral, angry (the extra row), happy, angry, angry, sad, fear, angry, sad
    assert b.train.labels.tolist() == [6, 0, 3, 0, 0, 4, 2, 0, 4]
    assert grey(b.test) == values([11, 12, 13])
    assert b.test.names == ["fer0000011.png", "fer0000012.png", "fer0000013.png"]
    assert b.train.soft_labels is None
    assert b.info["rows"] == {"train": 9, "val": 2, "test": 3}


def test_fer2013_with_ferplus_votes(tmp_path: Path) -> None:
    root = fx.write_fer2013(tmp_path / "fer")
    b = load("fer2013", root, label_mode="majority")
    assert b.num_classes == 8
    assert b.train.names == [fx.ferplus_name(i) for i in (0, 2, 4, 6, 7)]
    assert b.train.labels.tolist() == [0, 1, 7, 2, 4]
    assert b.train.original_labels.tolist() == [0, 1, 4, 6, 4]
    assert grey(b.train) == values([0, 2, 4, 6, 7])
    np.testing.assert_allclose(b.train.soft_labels[1], [0, 0.8, 0.1, 0.1, 0, 0, 0, 0])
    assert b.info["dropped"]["train"] == {"not_in_ferplus": 1, "no_majority": 2, "unknown_or_nf": 1}
    assert b.test.labels.tolist() == [5, 6]


def test_rafdb_layout_and_val_carve(tmp_path: Path) -> None:
    root = fx.write_rafdb(tmp_path / "raf")
    b = load("rafdb", root)
    assert b.class_names == (
        "surprise",
        "fear",
        "disgust",
        "happiness",
        "sadness",
        "anger",
        "neutral",
    )
    # 21 train images, 3 per class: one per class held out for validation
    assert [len(b.train), len(b.val), len(b.test)] == [14, 7, 7]
    assert sorted(b.val.labels.tolist()) == list(range(7))
    assert not set(b.train.names) & set(b.val.names)
    assert b.test.names[0] == "test_0001.jpg" and b.test.labels[0] == 0
    # line j of the label file names train_{j+1:05d}.jpg with RAF label j % 7 + 1
    for split in (b.train, b.val):
        for name, label, v in zip(split.names, split.labels, grey(split), strict=True):
            j = int(name[6:11]) - 1
            assert label == j % 7 and abs(v - fx.pixel_value(j)) <= 2
    names = b.train.names + b.val.names
    labels = np.concatenate([b.train.labels, b.val.labels])
    assert b.class_names[labels[names.index("train_00006.jpg")]] == "anger"  # RAF label 6
    assert np.abs(np.array(grey(b.test), dtype=int) - values(range(21, 28))).max() <= 2
    assert b.info["val_split"]["n_val"] == 7
    assert "seed 0" in b.info["val_split"]["source"]
    again = load("rafdb", root)
    assert again.val.names == b.val.names  # the carve is fixed


def test_affectnet_8_and_7_classes(tmp_path: Path) -> None:
    root = fx.write_affectnet(tmp_path / "an")
    b8 = load("affectnet", root)
    assert b8.num_classes == 8 and b8.class_names[1] == "happiness"
    assert len(b8.train) + len(b8.val) == 16 and len(b8.val) == 8
    assert b8.test.labels.tolist() == list(range(8))
    assert b8.info["dropped"]["train"] == {"none": 2, "uncertain": 2, "no_face": 2}
    assert b8.test.names[0] == "2/img_00022.jpg"
    assert abs(grey(b8.test)[0] - fx.pixel_value(22)) <= 2
    b7 = load("affectnet", root, label_mode="basic7", channels=3, image_size=40)
    assert b7.num_classes == 7 and len(b7.test) == 7
    assert b7.info["dropped"]["test"]["contempt"] == 1
    assert b7.image_shape == (3, 40, 40)


def test_affectnet_headerless_validation_csv(tmp_path: Path) -> None:
    root = fx.write_affectnet(tmp_path / "an", header_on_validation=False)
    b = load("affectnet", root)
    assert b.test.labels.tolist() == list(range(8))


def test_folder_with_carved_val(tmp_path: Path) -> None:
    root = fx.write_folder(tmp_path / "folder")
    b = load("folder", root)
    assert b.class_names == ("neutral", "happiness", "anger")  # vocabulary order
    assert [len(b.train), len(b.val), len(b.test)] == [9, 3, 6]
    assert b.info["skipped_files"]["train"] == 1
    assert b.test.names[0] == "neutral/000.png" and b.test.labels[0] == 0
    assert b.image_shape == (1, 48, 48)


def test_folder_with_val_folder(tmp_path: Path) -> None:
    root = fx.write_folder(tmp_path / "folder", {"train": 2, "val": 1, "test": 1})
    b = load("folder", root)
    assert [len(b.train), len(b.val), len(b.test)] == [6, 3, 3]
    assert "val_split" not in b.info
    # colour JPEG (odd j) and grey PNG (even j) both decode to the image's grey level
    assert np.abs(np.array(grey(b.train)) - values([4, 5, 2, 3, 0, 1])).max() <= 2


def test_hf_saved_to_disk(tmp_path: Path) -> None:
    root = fx.write_hf(tmp_path / "hfds")
    b = load(f"hf:{root}", None)
    assert b.class_names == ("anger", "happiness", "neutral")
    assert [len(b.train), len(b.val), len(b.test)] == [9, 3, 6]
    assert b.test.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert np.abs(np.array(grey(b.test)) - values(range(12, 18))).max() <= 1
    assert b.info["columns"] == {"image": "img", "label": "emotion"}
    named = load("hf:hfds", tmp_path, label_mode="image=img,label=emotion", channels=3)
    assert named.image_shape == (3, 48, 48)


def test_hf_bad_column(tmp_path: Path) -> None:
    root = fx.write_hf(tmp_path / "hfds")
    with pytest.raises(ValueError, match="no column 'face'"):
        load(f"hf:{root}", None, label_mode="image=face")
    with pytest.raises(ValueError, match="not a ClassLabel"):
        load(f"hf:{root}", None, label_mode="label=subject")


def test_second_load_comes_from_cache(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fx.write_ferplus(tmp_path / "ferplus", original=fx.FERPLUS_ORIGINAL)
    first = load("ferplus", root)
    assert len(list(cache.glob("ferplus-*"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr("fer_bench.data.cache.decode_to_npy", no_decoding)
    second = load("ferplus", root)
    assert second.class_names == first.class_names and second.info == first.info
    for split in ("train", "val", "test"):
        a, b = getattr(first, split), getattr(second, split)
        assert (a.images == b.images).all() and (a.labels == b.labels).all()
        np.testing.assert_array_equal(a.soft_labels, b.soft_labels)
        np.testing.assert_array_equal(a.original_labels, b.original_labels)
        assert a.names == b.names
    # a changed image (new mtime) or option gives a new key and decodes again
    image = root / "FER2013Train" / fx.ferplus_name(0)
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded again"):
        load("ferplus", root)


def test_cache_key_follows_label_file_and_options(tmp_path: Path, cache: Path) -> None:
    root = fx.write_ferplus(tmp_path / "ferplus")
    load("ferplus", root)
    load("ferplus", root, image_size=32)
    votes = {k: [list(r) for r in v] for k, v in fx.FERPLUS_VOTES.items()}
    votes["train"][2] = [0, 0, 0, 0, 10, 0, 0, 0, 0, 0]  # was no majority, now anger
    fx.write_ferplus(root, votes)
    b = load("ferplus", root)
    assert b.train.labels.tolist() == [0, 1, 4, 7, 2, 4]
    assert len(list(cache.glob("ferplus-*"))) == 3


def test_cache_command_lists_and_clears(tmp_path: Path, cache: Path) -> None:
    load("ferplus", fx.write_ferplus(tmp_path / "ferplus"))
    load("rafdb", fx.write_rafdb(tmp_path / "raf"))
    listed = CliRunner().invoke(app, ["data", "cache"])
    assert listed.exit_code == 0 and "2 entries" in " ".join(listed.output.split())
    cleared = CliRunner().invoke(app, ["data", "cache", "--dataset", "rafdb", "--clear"])
    assert cleared.exit_code == 0 and "deleted 1 entries" in cleared.output
    assert [p.name.split("-")[0] for p in cache.glob("*-*")] == ["ferplus"]


def test_unreadable_cache_entry_is_rebuilt(tmp_path: Path, cache: Path) -> None:
    root = fx.write_rafdb(tmp_path / "raf")
    first = load("rafdb", root)
    (entry,) = cache.glob("rafdb-*")
    (entry / "labels.npz").write_bytes(b"half-written")
    with pytest.warns(UserWarning, match="ignoring unreadable cache entry"):
        again = load("rafdb", root)
    assert (again.test.images == first.test.images).all()
    assert (entry / "labels.npz").stat().st_size > 100  # rewritten in full


def test_pool_decoding_matches_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fx.write_rafdb(tmp_path / "raf")
    refs = [imaging.ImageRef(p, str(p)) for p in sorted((root / "Image/aligned").iterdir())]
    serial = decoding.decode_to_npy(refs, tmp_path / "serial.npy", 24, 1)
    monkeypatch.setattr(decoding, "POOL_MIN_IMAGES", 1)
    monkeypatch.setattr(decoding, "CHUNK", 5)
    monkeypatch.setenv(decoding.WORKERS_ENV, "2")
    pooled = decoding.decode_to_npy(refs, tmp_path / "pool.npy", 24, 1)
    np.testing.assert_array_equal(pooled, serial)
    refs[7].path.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot decode image"):
        decoding.decode_to_npy(refs, tmp_path / "bad.npy", 24, 1)


def test_data_info_json(tmp_path: Path) -> None:
    root = fx.write_ferplus(tmp_path / "ferplus", original=fx.FERPLUS_ORIGINAL)
    result = CliRunner().invoke(
        app, ["data", "info", "ferplus", "--data-root", str(root), "--json"]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["sizes"] == {"train": 5, "val": 2, "test": 2}
    assert stats["class_counts"]["train"]["contempt"] == 1
    assert stats["image_shape"] == [1, 48, 48]
    assert stats["imbalance_ratio"] is None  # disgust and fear have no training image
    # only val's 6/4 split is under 70%; 7/3 rows sit exactly at 70% and do not count
    assert stats["vote_ambiguity"] == {"train": 0.0, "val": 0.5, "test": 0.0}
    # train: contempt vs angry and surprise vs fear differ; val: one row undetermined
    assert stats["original_disagreement"] == {"train": 0.4, "val": 0.0, "test": 0.0}
    assert stats["original_known"] == {"train": 5, "val": 1, "test": 2}
    assert stats["dropped"]["train"]["no_majority"] == 2
    assert len(stats["label_files_sha256"]) == 4


def test_data_info_table_and_errors(tmp_path: Path) -> None:
    root = fx.write_rafdb(tmp_path / "raf")
    result = CliRunner().invoke(app, ["data", "info", "rafdb", "--data-root", str(root)])
    assert result.exit_code == 0, result.output
    assert "imbalance ratio" in result.output and "1.0" in result.output
    assert "stratified 10%" in result.output
    missing = CliRunner().invoke(
        app, ["data", "info", "rafdb", "--data-root", str(tmp_path / "nope")]
    )
    assert missing.exit_code == 2 and "folder not found" in missing.output
    unknown = CliRunner().invoke(app, ["data", "info", "mnist", "--data-root", str(root)])
    assert unknown.exit_code == 2 and "unknown datasets 'mnist'" in unknown.output
