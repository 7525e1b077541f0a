"""Bad dataset input: a clear error naming the file (and line), and nothing cached."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.config import DataConfig
from fer_bench.data import load_dataset
from fer_bench.data import testing as fx


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("FER_BENCH_CACHE", str(path))
    yield path
    # every test here ends in an error: the cache must stay empty
    assert not path.exists() or not any(path.iterdir())


def load(name: str, root: Path, **kw) -> None:
    load_dataset(DataConfig(name=name, root=str(root), **kw))


@pytest.fixture
def ferplus(tmp_path: Path) -> Path:
    return fx.write_ferplus(tmp_path / "ferplus", original=fx.FERPLUS_ORIGINAL)


def rewrite_csv(path: Path, edit) -> None:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    rows = edit(rows)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


# --- missing folders and files ---------------------------------------------------------


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="folder not found: .*nowhere"):
        load("ferplus", tmp_path / "nowhere")


def test_no_root_given() -> None:
    with pytest.raises(ValueError, match="needs a data root"):
        load_dataset(DataConfig(name="rafdb"))


def test_missing_split_folder(ferplus: Path) -> None:
    for f in (ferplus / "FER2013Valid").iterdir():
        f.unlink()
    (ferplus / "FER2013Valid").rmdir()
    with pytest.raises(FileNotFoundError, match="file not found: .*FER2013Valid/label.csv"):
        load("ferplus", ferplus)


def test_missing_label_file(tmp_path: Path) -> None:
    root = fx.write_rafdb(tmp_path / "raf")
    (root / "EmoLabel" / "list_patition_label.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_patition_label.txt"):
        load("rafdb", root)


def test_affectnet_missing_csv(tmp_path: Path) -> None:
    root = fx.write_affectnet(tmp_path / "an")
    (root / "Manually_Annotated_file_lists" / "validation.csv").unlink()
    with pytest.raises(FileNotFoundError, match="validation.csv"):
        load("affectnet", root)


def test_folder_missing_test(tmp_path: Path) -> None:
    root = fx.write_folder(tmp_path / "folder", {"train": 2})
    with pytest.raises(FileNotFoundError, match="folder not found: .*test"):
        load("folder", root)


# --- label file naming a missing image -------------------------------------------------


@pytest.mark.parametrize("index", [5, 2])  # a kept row, and a row the majority rule drops
def test_label_names_missing_image(ferplus: Path, index: int) -> None:
    (ferplus / "FER2013Train" / fx.ferplus_name(index)).unlink()
    with pytest.raises(
        FileNotFoundError,
        match=f"FER2013Train/label.csv:{index + 1}: image not found: .*{fx.ferplus_name(index)}",
    ):
        load("ferplus", ferplus)


def test_rafdb_missing_image(tmp_path: Path) -> None:
    root = fx.write_rafdb(tmp_path / "raf")
    (root / "Image" / "aligned" / "test_0003_aligned.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="list_patition_label.txt:24: image not found"):
        load("rafdb", root)


# --- corrupt and truncated images ------------------------------------------------------


def test_corrupt_image(ferplus: Path) -> None:
    (ferplus / "FER2013Train" / fx.ferplus_name(1)).write_bytes(b"not a png at all")
    with pytest.raises(
        ValueError, match=f"FER2013Train/label.csv:2: cannot decode image .*{fx.ferplus_name(1)}"
    ):
        load("ferplus", ferplus)


def test_truncated_image(ferplus: Path) -> None:
    path = ferplus / "FER2013Test" / fx.ferplus_name(11)
    noise = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="FER2013Test/label.csv:2: cannot decode image"):
        load("ferplus", ferplus)


def test_truncated_jpeg(tmp_path: Path) -> None:
    root = fx.write_affectnet(tmp_path / "an")
    path = root / "Manually_Annotated_Images" / "1/img_00000.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (72, 60, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(ValueError, match="training.csv:2: cannot decode image"):
        load("affectnet", root)


def test_fer2013_corrupt_pixels(tmp_path: Path) -> None:
    root = fx.write_fer2013(tmp_path / "fer", with_votes=False)

    def edit(rows):
        rows[5][1] = rows[5][1].rsplit(" ", 10)[0]  # a row cut short
        return rows

    rewrite_csv(root / "fer2013.csv", edit)
    with pytest.raises(ValueError, match="fer2013.csv:6: 2294 pixels, expected 2304"):
        load("fer2013", root)


def test_hf_corrupt_image_bytes(tmp_path: Path) -> None:
    import datasets

    root = fx.write_hf(tmp_path / "hfds")
    dd = datasets.load_from_disk(str(root))
    raw = dd["test"].cast_column("img", datasets.Image(decode=False))
    broken = raw.map(
        lambda row, i: {"img": {"bytes": b"junk" if i == 2 else row["img"]["bytes"], "path": None}},
        with_indices=True,
    )
    dd["test"] = broken.cast_column("img", datasets.Image())
    dd.save_to_disk(str(tmp_path / "broken"))
    with pytest.raises(ValueError, match="broken/test row 2: cannot decode image"):
        load_dataset(DataConfig(name=f"hf:{tmp_path / 'broken'}"))


# --- labels out of range ----------------------------------------------------------------


def test_rafdb_label_out_of_range(tmp_path: Path) -> None:
    root = fx.write_rafdb(tmp_path / "raf")
    path = root / "EmoLabel" / "list_patition_label.txt"
    lines = path.read_text().splitlines()
    lines[2] = "train_00003.jpg 8"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="list_patition_label.txt:3: label 8 outside 1..7"):
        load("rafdb", root)


def test_affectnet_label_out_of_range(tmp_path: Path) -> None:
    root = fx.write_affectnet(tmp_path / "an")

    def edit(rows):
        rows[4][6] = "11"
        return rows

    rewrite_csv(root / "Manually_Annotated_file_lists" / "training.csv", edit)
    with pytest.raises(ValueError, match="training.csv:5: expression 11 outside 0..10"):
        load("affectnet", root)


def test_fer2013_label_out_of_range(tmp_path: Path) -> None:
    root = fx.write_fer2013(tmp_path / "fer", with_votes=False)

    def edit(rows):
        rows[3][0] = "7"
        return rows

    rewrite_csv(root / "fer2013.csv", edit)
    with pytest.raises(ValueError, match="fer2013.csv:4: emotion 7 outside 0..6"):
        load("fer2013", root)


def test_ferplus_bad_votes(ferplus: Path) -> None:
    def edit(rows):
        rows[1][4] = "-2"
        return rows

    rewrite_csv(ferplus / "FER2013Valid" / "label.csv", edit)
    with pytest.raises(ValueError, match="FER2013Valid/label.csv:2: negative vote count"):
        load("ferplus", ferplus)


def test_ferplus_original_label_not_fer2013(ferplus: Path) -> None:
    def edit(rows):
        rows[2][2] = "contempt"
        return rows

    rewrite_csv(ferplus / "fer2013_labels.csv", edit)
    with pytest.raises(ValueError, match="fer2013_labels.csv:3: 'contempt' is not a FER2013"):
        load("ferplus", ferplus)


def test_ferplus_original_label_row_missing(ferplus: Path) -> None:
    rewrite_csv(ferplus / "fer2013_labels.csv", lambda rows: rows[:-2])
    with pytest.raises(ValueError, match="fer2013_labels.csv: no row for image 'fer0000011.png'"):
        load("ferplus", ferplus)


# --- wrong columns ----------------------------------------------------------------------


def test_fer2013_wrong_columns(tmp_path: Path) -> None:
    root = fx.write_fer2013(tmp_path / "fer", with_votes=False)

    def edit(rows):
        rows[0] = ["label", "pixels", "Usage"]
        return rows

    rewrite_csv(root / "fer2013.csv", edit)
    with pytest.raises(
        ValueError, match="fer2013.csv:1: expected columns emotion, pixels, Usage; missing emotion"
    ):
        load("fer2013", root)


def test_fer2013new_wrong_columns(tmp_path: Path) -> None:
    root = fx.write_fer2013(tmp_path / "fer")

    def edit(rows):
        rows[0][11] = "not_face"
        return rows

    rewrite_csv(root / "fer2013new.csv", edit)
    with pytest.raises(ValueError, match="fer2013new.csv:1: .*missing NF"):
        load("fer2013", root, label_mode="majority")


def test_affectnet_wrong_columns(tmp_path: Path) -> None:
    root = fx.write_affectnet(tmp_path / "an")

    def edit(rows):
        rows[0] = ["file", *rows[0][1:6], "emo", *rows[0][7:]]
        return rows

    rewrite_csv(root / "Manually_Annotated_file_lists" / "training.csv", edit)
    with pytest.raises(ValueError, match="training.csv:1: expected an image-path column"):
        load("affectnet", root)


def test_ferplus_label_row_wrong_length(ferplus: Path) -> None:
    def edit(rows):
        rows[2] = rows[2][:7]
        return rows

    rewrite_csv(ferplus / "FER2013Train" / "label.csv", edit)
    with pytest.raises(ValueError, match="FER2013Train/label.csv:3: expected 12 fields"):
        load("ferplus", ferplus)


def test_ferplus_original_labels_wrong_header(ferplus: Path) -> None:
    def edit(rows):
        rows[0] = ["name", "split", "label"]
        return rows

    rewrite_csv(ferplus / "fer2013_labels.csv", edit)
    with pytest.raises(ValueError, match="fer2013_labels.csv:1: expected header"):
        load("ferplus", ferplus)


# --- duplicate names --------------------------------------------------------------------


def test_ferplus_duplicate_across_splits(ferplus: Path) -> None:
    rewrite_csv(
        ferplus / "FER2013Test" / "label.csv",
        lambda rows: [*rows, [fx.ferplus_name(0), *rows[0][1:]]],
    )
    with pytest.raises(
        ValueError,
        match="FER2013Test/label.csv:4: duplicate image name "
        "'fer0000000.png' \\(first at .*FER2013Train/label.csv:1",
    ):
        load("ferplus", ferplus)


def test_rafdb_duplicate_line(tmp_path: Path) -> None:
    root = fx.write_rafdb(tmp_path / "raf")
    path = root / "EmoLabel" / "list_patition_label.txt"
    path.write_text(path.read_text() + "train_00002.jpg 3\n")
    with pytest.raises(ValueError, match="list_patition_label.txt:29: duplicate image name"):
        load("rafdb", root)


def test_affectnet_duplicate_path(tmp_path: Path) -> None:
    root = fx.write_affectnet(tmp_path / "an")
    rewrite_csv(
        root / "Manually_Annotated_file_lists" / "validation.csv", lambda rows: [*rows, rows[1]]
    )
    with pytest.raises(ValueError, match="validation.csv:13: duplicate image path"):
        load("affectnet", root)


# --- empty splits -----------------------------------------------------------------------


def test_ferplus_empty_label_file(ferplus: Path) -> None:
    (ferplus / "FER2013Test" / "label.csv").write_text("")
    with pytest.raises(ValueError, match="FER2013Test/label.csv: no rows \\(empty split\\)"):
        load("ferplus", ferplus)


def test_ferplus_split_emptied_by_rule(tmp_path: Path) -> None:
    votes = {**fx.FERPLUS_VOTES, "val": [[0, 0, 0, 0, 0, 0, 0, 0, 10, 0]]}
    root = fx.write_ferplus(tmp_path / "ferplus", votes)
    with pytest.raises(ValueError, match="FER2013Valid/label.csv: no image has a FER\\+ label"):
        load("ferplus", root)


def test_rafdb_no_test_images(tmp_path: Path) -> None:
    root = fx.write_rafdb(tmp_path / "raf", n_test=0)
    with pytest.raises(ValueError, match="list_patition_label.txt: no test_ images"):
        load("rafdb", root)


def test_affectnet_split_without_expressions(tmp_path: Path) -> None:
    root = fx.write_affectnet(tmp_path / "an")
    rewrite_csv(
        root / "Manually_Annotated_file_lists" / "validation.csv", lambda rows: [rows[0], *rows[9:]]
    )  # keeps only expressions 8, 9, 10
    with pytest.raises(ValueError, match="validation.csv: no rows with an expression"):
        load("affectnet", root)


def test_fer2013_missing_usage(tmp_path: Path) -> None:
    root = fx.write_fer2013(tmp_path / "fer", with_votes=False)
    rewrite_csv(root / "fer2013.csv", lambda rows: [r for r in rows if r[2] != "PrivateTest"])
    with pytest.raises(ValueError, match="fer2013.csv: no usable rows with Usage PrivateTest"):
        load("fer2013", root)


def test_folder_empty_class(tmp_path: Path) -> None:
    root = fx.write_folder(tmp_path / "folder")
    for f in (root / "test" / "Happy").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="test/Happy: class folder has no images"):
        load("folder", root)


def test_folder_class_not_an_expression(tmp_path: Path) -> None:
    root = fx.write_folder(tmp_path / "folder")
    (root / "train" / "neutral").rename(root / "train" / "3")
    with pytest.raises(ValueError, match="train/3: class folder is not an expression name"):
        load("folder", root)


def test_hf_empty_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    root = fx.write_hf(tmp_path / "hfds")
    dd = datasets.load_from_disk(str(root))
    # datasets cannot read an empty split back from disk, so serve one from memory
    dd["test"] = dd["test"].select([])
    monkeypatch.setattr(datasets, "load_from_disk", lambda path: dd)
    with pytest.raises(ValueError, match="hfds/test: no rows \\(empty split\\)"):
        load_dataset(DataConfig(name=f"hf:{root}"))


def test_hf_unreadable_folder(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    with pytest.raises(ValueError, match="junk: load_from_disk failed"):
        load_dataset(DataConfig(name=f"hf:{tmp_path / 'junk'}"))


# --- the CLI turns all of this into one line --------------------------------------------


def test_cli_one_line_error(ferplus: Path) -> None:
    (ferplus / "FER2013Train" / fx.ferplus_name(1)).write_bytes(b"junk")
    result = CliRunner().invoke(app, ["data", "info", "ferplus", "--data-root", str(ferplus)])
    assert result.exit_code == 2
    assert "label.csv:2: cannot decode image" in result.output
    assert "Traceback" not in result.output
