"""Tiny datasets for tests and demos: in memory (:func:`synthetic_bundle`), or written in
each published layout.

In a written layout, image ``i`` (numbered across the whole dataset) is a flat patch of
grey level :func:`pixel_value` ``(i)``, so a test can tell which image landed in which
row after any resizing or colour conversion.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from fer_bench.data.base import DatasetBundle
from fer_bench.data.loaders.synthetic import CLASSES, generate_split
from fer_bench.data.votes import VOTE_COLUMNS
from fer_bench.expressions import FER2013_ORDER, canonical

# FER+ vote rows per split (neutral ... contempt, unknown, NF), chosen to hit every rule.
FERPLUS_VOTES: dict[str, list[list[int]]] = {
    "train": [
        [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # neutral
        [0, 8, 1, 1, 0, 0, 0, 0, 0, 0],  # happiness, soft 0.8/0.1/0.1
        [4, 0, 0, 1, 3, 2, 0, 0, 0, 0],  # no majority once the 1 is dropped
        [0, 0, 0, 0, 0, 0, 0, 6, 2, 2],  # contempt (dropped by basic7)
        [1, 0, 0, 0, 0, 0, 0, 0, 9, 0],  # unknown wins
        [0, 0, 7, 0, 0, 0, 3, 0, 0, 0],  # surprise
        [0, 0, 0, 0, 6, 0, 0, 0, 0, 4],  # anger
        [0, 0, 0, 5, 0, 0, 0, 0, 0, 5],  # tie with NF: no majority
    ],
    "val": [[0, 6, 4, 0, 0, 0, 0, 0, 0, 0], [2, 0, 0, 8, 0, 0, 0, 0, 0, 0]],  # 0.6: ambiguous
    "test": [
        [0, 0, 0, 0, 0, 9, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 7, 3, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],
    ],
}
# Original FER2013 label of each image above, in order; "" = undetermined.
FERPLUS_ORIGINAL = [
    "neutral",
    "happy",
    "angry",
    "angry",
    "sad",
    "fear",
    "angry",
    "sad",
    "happy",
    "",
    "disgust",
    "fear",
    "neutral",
]
FERPLUS_FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}


def synthetic_bundle(
    train: int, val: int, test: int, size: int = 48, name: str = "synthetic"
) -> DatasetBundle:
    """Synthetic faces, ``size`` px, in splits of the given sizes (seeds 1, 2 and 3)."""
    return DatasetBundle(
        name=name,
        class_names=CLASSES,
        train=generate_split(train, 1, size),
        val=generate_split(val, 2, size),
        test=generate_split(test, 3, size),
    )


def pixel_value(i: int) -> int:
    return (37 * i + 11) % 256


def face(i: int, width: int = 48, height: int = 48, rgb: bool = False) -> Image.Image:
    v = pixel_value(i)
    return Image.new("RGB" if rgb else "L", (width, height), (v, v, v) if rgb else v)


def ferplus_name(i: int) -> str:
    return f"fer{i:07d}.png"


def write_ferplus(
    root: Path, votes: dict[str, list[list[int]]] | None = None, original: list[str] | None = None
) -> Path:
    """FER2013Train|Valid|Test/ with label.csv and PNGs, and fer2013_labels.csv
    (written when ``original`` is given; FERPLUS_ORIGINAL fits the default votes)."""
    votes = FERPLUS_VOTES if votes is None else votes
    i = 0
    image_rows = []
    for split, folder in FERPLUS_FOLDERS.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        with (root / folder / "label.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            for row in votes.get(split, []):
                face(i).save(root / folder / ferplus_name(i))
                writer.writerow([ferplus_name(i), "(0, 0, 48, 48)", *row])
                image_rows.append((ferplus_name(i), folder))
                i += 1
    if original is not None:
        with (root / "fer2013_labels.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "split", "fer2013_label"])
            for (name, folder), label in zip(image_rows, original, strict=True):
                writer.writerow([name, folder, label])
    return root


def write_fer2013(root: Path, with_votes: bool = True) -> Path:
    """Kaggle fer2013.csv from the FER+ fixture's votes and original labels, plus
    fer2013new.csv and one extra Training row FER+ left unnamed."""
    root.mkdir(parents=True, exist_ok=True)
    usage = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
    rows = [(usage[s], v) for s, vs in FERPLUS_VOTES.items() for v in vs]
    rows.insert(1, ("Training", [0] * 9 + [10]))  # unnamed in FER+ (not a face)
    labels = list(FERPLUS_ORIGINAL)
    labels.insert(1, "angry")
    with (root / "fer2013.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for i, ((use, _), label) in enumerate(zip(rows, labels, strict=True)):
            emotion = FER2013_ORDER.index(canonical(label or "neutral"))
            pixels = " ".join(str(x) for x in np.asarray(face(i)).ravel())
            writer.writerow([emotion, pixels, use])
    if with_votes:
        with (root / "fer2013new.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["Usage", "Image name", *VOTE_COLUMNS])
            for i, (use, vote) in enumerate(rows):
                writer.writerow([use, "" if i == 1 else ferplus_name(i), *vote])
    return root


def write_rafdb(root: Path, n_train: int = 21, n_test: int = 7) -> Path:
    """EmoLabel/list_patition_label.txt and Image/aligned/*_aligned.jpg (100x100 RGB);
    labels cycle through 1..7."""
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "Image" / "aligned").mkdir(parents=True, exist_ok=True)
    lines, i = [], 0
    for split, n in (("train", n_train), ("test", n_test)):
        for j in range(n):
            stem = f"{split}_{j + 1:05d}" if split == "train" else f"{split}_{j + 1:04d}"
            face(i, 100, 100, rgb=True).save(
                root / "Image" / "aligned" / f"{stem}_aligned.jpg", quality=95
            )
            lines.append(f"{stem}.jpg {j % 7 + 1}\n")
            i += 1
    (root / "EmoLabel" / "list_patition_label.txt").write_text("".join(lines))
    return root


AFFECTNET_HEADER = [
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
]


def write_affectnet(
    root: Path, n_train: int = 22, n_test: int = 11, header_on_validation: bool = True
) -> Path:
    """Manually_Annotated_file_lists/{training,validation}.csv and
    Manually_Annotated_Images/<dir>/<file>.jpg (non-square RGB); expressions cycle 0..10."""
    lists, images = root / "Manually_Annotated_file_lists", root / "Manually_Annotated_Images"
    lists.mkdir(parents=True, exist_ok=True)
    i = 0
    for name, n, header in (
        ("training.csv", n_train, True),
        ("validation.csv", n_test, header_on_validation),
    ):
        with (lists / name).open("w", newline="") as f:
            writer = csv.writer(f)
            if header:
                writer.writerow(AFFECTNET_HEADER)
            for j in range(n):
                rel = f"{i % 3 + 1}/img_{i:05d}.jpg"
                (images / rel).parent.mkdir(parents=True, exist_ok=True)
                face(i, 60, 72, rgb=True).save(images / rel, quality=95)
                writer.writerow([rel, 0, 0, 60, 72, "1;2", j % 11, 0.1, -0.2])
                i += 1
    return root


FOLDER_CLASSES = ("angry", "Happy", "neutral")


def write_folder(root: Path, per_split: dict[str, int] | None = None) -> Path:
    """ROOT/<split>/<class>/ with ``per_split[split]`` images per class: PNG grayscale
    and JPEG colour of different sizes, plus a non-image file to skip."""
    per_split = {"train": 4, "test": 2} if per_split is None else per_split
    i = 0
    for split, n in per_split.items():
        for cls in FOLDER_CLASSES:
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                if j % 2:
                    face(i, 64, 64, rgb=True).save(folder / f"{j:03d}.jpg", quality=95)
                else:
                    face(i, 40, 40).save(folder / f"{j:03d}.png")
                i += 1
        (root / split / FOLDER_CLASSES[0] / "notes.txt").write_text("not an image")
    return root


def write_hf(root: Path, splits: dict[str, int] | None = None) -> Path:
    """A DatasetDict saved with ``save_to_disk``: columns ``img`` (Image) and ``emotion``
    (ClassLabel angry/happy/neutral) plus an unrelated int column; labels cycle."""
    import datasets  # heavy; only this writer needs it

    splits = {"train": 12, "test": 6} if splits is None else splits
    features = datasets.Features(
        {
            "img": datasets.Image(),
            "emotion": datasets.ClassLabel(names=list(FOLDER_CLASSES)),
            "subject": datasets.Value("int64"),
        }
    )
    parts, i = {}, 0
    for split, n in splits.items():
        imgs = [face(i + j, 32, 32, rgb=True) for j in range(n)]
        parts[split] = datasets.Dataset.from_dict(
            {"img": imgs, "emotion": [j % 3 for j in range(n)], "subject": list(range(n))},
            features=features,
        )
        i += n
    datasets.DatasetDict(parts).save_to_disk(str(root))
    return root
