"""The built-in synthetic faces: deterministic, long-tailed, exact soft labels."""

from __future__ import annotations

import numpy as np
import torch

from fer_bench.data.loaders.synthetic import CLASSES, generate_split


def test_deterministic_and_seed_dependent():
    a, b, c = generate_split(64, 5), generate_split(64, 5), generate_split(64, 6)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)


def test_shapes_soft_labels_and_long_tail():
    s = generate_split(3000, 0)
    assert s.images.shape == (3000, 1, 48, 48) and s.images.dtype == np.uint8
    assert np.asarray(s.images).shape == s.images.shape
    np.testing.assert_allclose(s.soft_labels.sum(1), 1.0, atol=1e-6)
    assert (s.soft_labels[np.arange(3000), s.labels] >= 0.5).all()
    counts = np.bincount(s.labels, minlength=len(CLASSES))
    happy, disgust = CLASSES.index("happiness"), CLASSES.index("disgust")
    assert counts[happy] > 5 * counts[disgust] > 0
    assert np.asarray(s.images, dtype=np.float32).std() > 20  # not blank


def test_expressions_render_differently():
    s = generate_split(2000, 0)
    means = torch.stack(
        [torch.from_numpy(s.images[s.labels == c]).float().mean(0) for c in range(len(CLASSES))]
    )
    gaps = torch.cdist(means.flatten(1), means.flatten(1))
    assert gaps[~torch.eye(len(CLASSES), dtype=torch.bool)].min() > 1.0
