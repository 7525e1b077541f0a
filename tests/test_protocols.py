"""Noise and imbalance protocols on tiny hand-built datasets (no images needed)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from fer_bench.config import ProtocolConfig
from fer_bench.data.base import UNDETERMINED, DatasetBundle, Split
from fer_bench.expressions import EXPRESSIONS, FER2013_ORDER, RAFDB_ORDER
from fer_bench.protocols import confusion, labelfile, pairflip, transition
from fer_bench.training.labels import build_split_labels, make_imbalance, make_noise

# Long-tailed counts over FER2013's 7 classes (about 40:1 head to tail).
IMBALANCED = (800, 20, 150, 1200, 400, 300, 900)


def make_split(labels, soft=None, original=None, names=None) -> Split:
    labels = np.asarray(labels, dtype=np.int64)
    return Split(
        images=np.zeros((len(labels), 1, 1, 1), dtype=np.uint8),
        labels=labels,
        soft_labels=soft,
        original_labels=original,
        names=names,
    )


def make_bundle(train, val=None, classes=FER2013_ORDER, **kwargs) -> DatasetBundle:
    val = val if val is not None else np.arange(len(classes))
    return DatasetBundle(
        name="tiny",
        class_names=classes,
        train=train if isinstance(train, Split) else make_split(train, **kwargs),
        val=val if isinstance(val, Split) else make_split(val),
        test=make_split(np.arange(len(classes))),
    )


def imbalanced_labels(counts=IMBALANCED, seed=0) -> np.ndarray:
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)


def noisy(bundle, noise="symmetric", rate=0.0, seed=0, split="train", **kwargs):
    cfg = ProtocolConfig(noise=noise, noise_rate=rate, noise_seed=seed, **kwargs)
    return build_split_labels(bundle, cfg, split)


# --- class-conditional noise: symmetric, pairflip, confusion -------------------------


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_symmetric_rate_is_exact_per_class_on_imbalanced_labels(rate):
    labels = imbalanced_labels()
    out = noisy(make_bundle(labels), rate=rate, seed=3)
    assert out.noise_rate == pytest.approx(rate, abs=0.005)
    for c, n in enumerate(IMBALANCED):
        flipped = out.flipped[out.clean == c].sum()
        # every chosen row really changed class: a "flip" to itself would lower the count
        assert flipped == round(rate * n)


def test_symmetric_destinations_are_uniform_over_the_other_classes():
    labels = np.zeros(70_000, dtype=np.int64)
    out = noisy(make_bundle(labels), rate=0.6)
    dest = np.bincount(out.observed[out.flipped], minlength=7)
    assert dest[0] == 0
    assert dest[1:] / dest.sum() == pytest.approx(np.full(6, 1 / 6), abs=0.01)


@pytest.mark.parametrize(
    ("noise", "rate"),
    [(n, r) for n in ("symmetric", "pairflip", "confusion") for r in (0.0, 0.1, 0.3)]
    + [("symmetric", 0.8), ("pairflip", 0.45)],
)
def test_transition_matrices_are_row_stochastic_on_imbalanced_data(noise, rate):
    for counts in (IMBALANCED, (5000, 1, 3, 40, 2, 700, 10), (0, 10, 10, 10, 10, 10, 10)):
        labels = imbalanced_labels(counts)
        bundle = make_bundle(labels)
        matrix = make_noise(ProtocolConfig(noise=noise, noise_rate=rate), bundle).transition_matrix(
            labels
        )
        assert (matrix >= 0).all()
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)
        # the true class stays the most likely label of its row
        off = matrix - np.diag(np.diag(matrix))
        assert (np.diag(matrix) > off.max(axis=1)).all()
        # expected overall rate, weighting rows by the class counts, is the requested one
        expected = (np.asarray(counts) * (1 - np.diag(matrix))).sum() / sum(counts)
        assert expected == pytest.approx(rate, abs=1e-9)


@pytest.mark.parametrize("noise", ["pairflip", "confusion"])
def test_class_conditional_realised_rate_matches(noise):
    out = noisy(make_bundle(imbalanced_labels()), noise, rate=0.3, seed=1)
    assert out.noise_rate == pytest.approx(0.3, abs=0.005)


def test_flip_by_matrix_never_maps_a_label_to_itself():
    labels = imbalanced_labels()
    # a matrix whose rows put most of their off-diagonal mass on a single class
    matrix = np.full((7, 7), 0.01)
    matrix[:, 0] = 0.4
    np.fill_diagonal(matrix, 0.0)
    matrix /= matrix.sum(axis=1, keepdims=True) / 0.35
    np.fill_diagonal(matrix, 0.65)
    observed = transition.flip_by_matrix(labels, matrix, np.random.default_rng(0))
    for c, n in enumerate(IMBALANCED):
        assert (observed[labels == c] != c).sum() == round(0.35 * n)


def test_pairflip_partner_map():
    eight = pairflip.partner_ids(EXPRESSIONS)
    assert (eight != np.arange(8)).all()
    assert (eight[eight] == np.arange(8)).all()  # a set of swaps on the FER+ classes
    seven = {
        FER2013_ORDER[c]: FER2013_ORDER[p]
        for c, p in enumerate(pairflip.partner_ids(FER2013_ORDER))
    }
    assert seven == {
        "anger": "disgust", "disgust": "anger", "fear": "surprise", "happiness": "surprise",
        "sadness": "neutral", "surprise": "fear", "neutral": "sadness",
    }  # fmt: skip
    # the same names give the same map in any class order
    raf = pairflip.partner_ids(RAFDB_ORDER)
    assert {RAFDB_ORDER[c]: RAFDB_ORDER[p] for c, p in enumerate(raf)} == seven
    # partners missing from the dataset: fall back to the next class id
    assert pairflip.partner_ids(("happiness", "neutral")).tolist() == [1, 0]


def test_pairflip_moves_every_flip_to_the_partner():
    labels = imbalanced_labels()
    out = noisy(make_bundle(labels), "pairflip", rate=0.4)
    partners = pairflip.partner_ids(FER2013_ORDER)
    assert (out.observed[out.flipped] == partners[out.clean[out.flipped]]).all()


def test_vote_confusion_matrix_is_a_stochastic_matrix_over_expressions():
    matrix = np.asarray(confusion.VOTE_CONFUSION)
    assert matrix.shape == (len(EXPRESSIONS), len(EXPRESSIONS))
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=2e-4)
    assert (np.diag(matrix) > 0.5).all()


@pytest.mark.ferplus
def test_vote_confusion_matrix_matches_the_ferplus_votes(ferplus_root):
    path = ferplus_root / "FER2013Train/label.csv"
    with path.open(newline="") as f:
        votes = np.array([[int(v) for v in row[2:12]] for row in csv.reader(f)])
    trimmed = np.where(votes == 1, 0, votes)
    win = trimmed.argmax(1)
    ok = (2 * trimmed.max(1) > trimmed.sum(1)) & (win < 8)
    share = votes[ok, :8] / votes[ok, :8].sum(1, keepdims=True)
    matrix = np.stack([share[win[ok] == c].mean(0) for c in range(8)])
    np.testing.assert_allclose(np.asarray(confusion.VOTE_CONFUSION), matrix, atol=5.1e-5)


def test_confusion_follows_human_difficulty_and_destinations():
    labels = imbalanced_labels()
    out = noisy(make_bundle(labels), "confusion", rate=0.2, seed=2)
    rate = {c: out.flipped[out.clean == i].mean() for i, c in enumerate(FER2013_ORDER)}
    assert rate["happiness"] < rate["neutral"] < rate["fear"]  # FER+ annotators agree likewise
    fear = FER2013_ORDER.index("fear")
    dest = np.bincount(out.observed[out.flipped & (out.clean == fear)], minlength=7)
    assert FER2013_ORDER[dest.argmax()] == "surprise"


def test_confusion_out_of_reach_is_refused():
    bundle = make_bundle(imbalanced_labels())
    with pytest.raises(
        ValueError, match="0.45 is out of reach.*fear would flip at 0.864.*rates below 0.349"
    ):
        noisy(bundle, "confusion", rate=0.45)


def test_confusion_reads_a_user_matrix(tmp_path):
    path = tmp_path / "m.csv"
    rows = [list(FER2013_ORDER)] + [
        [1 if j == (i + 1) % 7 else 0 for j in range(7)] for i in range(7)
    ]
    path.write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    labels = imbalanced_labels()
    out = noisy(make_bundle(labels), f"confusion:{path}", rate=0.25)
    assert (out.observed[out.flipped] == (out.clean[out.flipped] + 1) % 7).all()
    assert out.noise_rate == pytest.approx(0.25, abs=0.005)


# --- rate validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("noise", "rate", "match"),
    [
        ("symmetric", -0.1, r"\[0, 1\)"),
        ("symmetric", 1.0, r"\[0, 1\)"),
        ("confusion", float("nan"), r"\[0, 1\)"),
        ("symmetric", 6 / 7, r"\(C-1\)/C"),
        ("pairflip", 0.5, "partner"),
        ("votes", 0.2, "leave the noise rate at 0"),
        ("symmetric:x", 0.2, "takes no argument"),
        ("file:", 0.0, "needs PATH"),
        ("exp", 0.2, "unknown noise protocols 'exp'"),
        ("nonsense", 0.2, "unknown noise protocols 'nonsense'"),
    ],
)
def test_bad_noise_is_refused(noise, rate, match):
    soft = np.eye(7, dtype=np.float32)[imbalanced_labels()]
    bundle = make_bundle(imbalanced_labels(), soft=soft)
    with pytest.raises((ValueError, KeyError), match=match):
        make_noise(ProtocolConfig(noise=noise, noise_rate=rate), bundle)


# --- votes and fer2013 -------------------------------------------------------------------


def test_votes_samples_from_each_images_own_distribution():
    labels = np.repeat([0, 3], 5000)
    soft = np.zeros((10_000, 7), dtype=np.float32)
    soft[:5000, 0] = 1.0  # unanimous: never flips
    soft[5000:, 3], soft[5000:, 5] = 0.5, 0.5  # split vote: flips half the time
    out = noisy(make_bundle(labels, soft=soft), "votes", seed=4)
    assert not out.flipped[:5000].any()
    assert out.flipped[5000:].mean() == pytest.approx(0.5, abs=0.03)
    assert set(out.observed[5000:].tolist()) == {3, 5}


def test_votes_needs_votes():
    with pytest.raises(ValueError, match="needs annotator votes; dataset tiny has none"):
        noisy(make_bundle(imbalanced_labels()), "votes")


def test_fer2013_uses_original_labels_and_drops_undetermined():
    labels = np.array([0, 1, 2, 3, 4, 5, 6])
    original = np.array([0, 2, 2, UNDETERMINED, 4, 6, 6])
    out = noisy(make_bundle(labels, original=original), "fer2013")
    assert out.index.tolist() == [0, 1, 2, 4, 5, 6]
    assert out.observed.tolist() == [0, 2, 2, 4, 6, 6]
    assert out.flipped.tolist() == [False, True, False, False, True, False]


def test_fer2013_needs_original_labels():
    with pytest.raises(ValueError, match="needs the original FER2013 labels"):
        noisy(make_bundle(imbalanced_labels()), "fer2013")


# --- label files -------------------------------------------------------------------------


def raf_bundle(n_train=30, n_val=7) -> DatasetBundle:
    rng = np.random.default_rng(0)
    train = make_split(
        rng.integers(0, 7, n_train), names=[f"train_{i:05d}.jpg" for i in range(1, n_train + 1)]
    )
    val = make_split(
        np.arange(n_val) % 7, names=[f"train_{i:05d}_aligned.jpg" for i in range(900, 900 + n_val)]
    )
    return make_bundle(train, val, classes=RAFDB_ORDER)


def test_raf_list_round_trips(tmp_path):
    bundle = raf_bundle()
    noisy_train = (bundle.train.labels + 1) % 7
    text = labelfile.format_raf_list(bundle.train.names, noisy_train, bundle.class_names)
    assert text.splitlines()[0] == f"train_00001.jpg {noisy_train[0] + 1}"  # RAF ids are 1-7
    path = tmp_path / "noise01.txt"
    path.write_text(text)
    out = noisy(bundle, f"file:{path}")
    assert out.observed.tolist() == noisy_train.tolist()
    assert labelfile.format_raf_list(bundle.train.names, out.observed, bundle.class_names) == text
    # the file names no validation image: validation keeps its clean labels
    val = noisy(bundle, f"file:{path}", split="val")
    assert (val.observed == bundle.val.labels).all()


def test_raf_list_maps_raf_ids_by_name_and_covers_val(tmp_path):
    bundle = make_bundle(
        make_split([0, 1], names=["train_00001_aligned.jpg", "train_00002_aligned.jpg"]),
        make_split([6], names=["train_00003_aligned.jpg"]),
        classes=FER2013_ORDER,
    )
    path = tmp_path / "list.txt"
    # RAF 4 = happiness, 1 = surprise, 7 = neutral
    path.write_text("train_00002.jpg 4\ntrain_00001.jpg 1\n\ntrain_00003.jpg 7\n")
    train = noisy(bundle, f"file:{path}")
    assert [FER2013_ORDER[i] for i in train.observed] == ["surprise", "happiness"]
    val = noisy(bundle, f"file:{path}", split="val")
    assert val.observed.tolist() == [6] and not val.flipped.any()


def test_index_csv_and_saved_artifact_load_back(tmp_path):
    labels = imbalanced_labels((30, 5, 10, 40, 20, 15, 25))
    bundle = make_bundle(labels)
    first = noisy(bundle, rate=0.3, seed=5)
    artifact = tmp_path / "labels_train.csv"
    first.save(artifact)
    again = noisy(bundle, f"file:{artifact}")
    assert again.to_csv_bytes() == first.to_csv_bytes()
    plain = tmp_path / "plain.csv"
    plain.write_text(
        "index,label\n" + "".join(f"{i},{(y + 2) % 7}\n" for i, y in enumerate(labels))
    )
    out = noisy(bundle, f"file:{plain}")
    assert (out.observed == (labels + 2) % 7).all()


def test_index_csv_under_imbalance_needs_only_the_kept_rows(tmp_path):
    labels = imbalanced_labels((30, 5, 10, 40, 20, 15, 25))
    bundle = make_bundle(labels)
    path = tmp_path / "l.csv"
    path.write_text("index,label\n" + "".join(f"{i},{(y + 1) % 7}\n" for i, y in enumerate(labels)))
    out = noisy(bundle, f"file:{path}", imbalance=4.0)
    assert len(out.index) < len(labels)
    assert (out.observed == (labels[out.index] + 1) % 7).all()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("train_00001.jpg 3\ntrain_77777.jpg 2\n", r"list.txt line 2: train_77777.jpg is not"),
        ("train_00001.jpg 8\n", r"list.txt line 1: expected 'NAME LABEL' with LABEL 1-7"),
        ("train_00001.jpg 3 x\n", r"list.txt line 1: expected"),
        (
            "train_00001.jpg 3\ntrain_00001.jpg 2\n",
            r"list.txt line 2: train_00001.jpg is listed twice",
        ),
        ("train_00001.jpg 3\n", r"list.txt has no label for 29 train images, e.g. train_00002"),
        ("index,label\n0,1\n30,2\n", r"list.txt line 3: index 30 is outside the training split"),
        ("index,label\n0,7\n", r"list.txt line 2: label 7 is outside 0..6"),
        ("index,label\n0,x\n", r"list.txt line 2: expected integers"),
        ("index,label\n0,1\n0,2\n", r"list.txt line 3: index 0 is listed twice"),
        ("idx,label\n0,1\n", r"list.txt line 1: CSV header needs 'index' and 'label'"),
        ("index,label\n0,1\n", r"list.txt has no label for 29 train images, e.g. 1"),
        ("\n\n", "empty label file"),
    ],
)
def test_bad_label_files_name_file_and_line(tmp_path, content, match):
    path = tmp_path / "list.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        noisy(raf_bundle(), f"file:{path}")


def test_raf_list_partly_covering_val_is_refused(tmp_path):
    bundle = raf_bundle(n_train=2, n_val=2)
    path = tmp_path / "list.txt"
    path.write_text("train_00001.jpg 1\ntrain_00002.jpg 1\ntrain_00900.jpg 1\n")
    with pytest.raises(ValueError, match="no label for 1 val images, e.g. train_00901"):
        noisy(bundle, f"file:{path}", split="val")


def test_missing_label_file_and_unnamed_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="label file not found"):
        noisy(raf_bundle(), f"file:{tmp_path / 'nope.txt'}")
    path = tmp_path / "list.txt"
    path.write_text("train_00001.jpg 1\n")
    with pytest.raises(ValueError, match="no image names"):
        noisy(make_bundle(imbalanced_labels()), f"file:{path}")


def test_raf_list_of_a_class_without_raf_id_is_refused():
    with pytest.raises(ValueError, match="'contempt' has no RAF-DB label"):
        labelfile.format_raf_list(["a.jpg"], np.array([7]), EXPRESSIONS)


# --- imbalance ---------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [2.0, 10.0, 50.0])
def test_exp_profile_counts_match_the_formula(factor):
    # head: class 3, then 6, 0, 2, 5, 1, 4; every class has enough for IF 2
    counts = (2100, 1450, 1800, 2500, 1300, 1600, 2300)
    labels = imbalanced_labels(counts)
    keep = make_imbalance(ProtocolConfig(imbalance=factor), make_bundle(labels)).select(
        labels, np.random.default_rng(0)
    )
    kept = np.bincount(labels[keep], minlength=7)
    order = [3, 6, 0, 2, 5, 1, 4]
    expected = [int(np.floor(2500 * factor ** (-r / 6) + 1e-9)) for r in range(7)]
    assert kept[order].tolist() == expected
    assert kept.argmax() == 3  # the source's most frequent class stays the head
    assert kept.max() / kept.min() == pytest.approx(factor, rel=0.02)
    assert len(np.unique(keep)) == len(keep)


def test_exp_profile_shrinks_the_head_when_a_class_is_short():
    counts = (1000, 30, 600, 1000, 500, 400, 800)  # class 1 cannot give 1000 / 10 images
    labels = imbalanced_labels(counts)
    keep = make_imbalance(ProtocolConfig(imbalance=10.0), make_bundle(labels)).select(
        labels, np.random.default_rng(0)
    )
    kept = np.bincount(labels[keep], minlength=7)
    assert kept[0] == 300 and kept[1] == 30  # ties broken by class id: class 0 heads
    assert kept.max() / kept.min() == pytest.approx(10.0)


def test_step_profile():
    labels = imbalanced_labels((500, 100, 300, 600, 200, 400, 700))
    keep = make_imbalance(
        ProtocolConfig(imbalance=5.0, imbalance_type="step"), make_bundle(labels)
    ).select(labels, np.random.default_rng(0))
    kept = np.bincount(labels[keep], minlength=7)
    # head to tail: 6, 3, 0 | 5, 2, 4, 1; n_max limited by class 0's 500
    assert kept.tolist() == [500, 100, 100, 500, 100, 100, 500]


@pytest.mark.parametrize(
    ("factor", "kind", "match"),
    [
        (0.5, "exp", "must be finite and >= 1"),
        (5000.0, "exp", "larger than the data allows"),
        (2000.0, "step", "larger than the data allows"),
        (2.0, "symmetric", "unknown imbalance protocols 'symmetric'"),
    ],
)
def test_bad_imbalance_is_refused(factor, kind, match):
    labels = imbalanced_labels()
    with pytest.raises((ValueError, KeyError), match=match):
        noisy(make_bundle(labels), imbalance=factor, imbalance_type=kind)
