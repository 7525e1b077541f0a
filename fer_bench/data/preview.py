"""A labelled image grid of a dataset split, for looking at the data."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fer_bench.data.base import DatasetBundle  # noqa: E402


def save_grid(bundle: DatasetBundle, out: Path, per_class: int = 8, split: str = "train") -> Path:
    """``per_class`` images of each class, one row per class, titled with the soft label."""
    data = getattr(bundle, split)
    rng = np.random.default_rng(0)
    k = bundle.num_classes
    fig, axes = plt.subplots(k, per_class, figsize=(per_class * 1.1, k * 1.25), squeeze=False)
    for c in range(k):
        rows = np.flatnonzero(data.labels == c)
        picks = rng.choice(rows, size=min(per_class, len(rows)), replace=False) if len(rows) else []
        for j in range(per_class):
            ax = axes[c][j]
            ax.axis("off")
            if j >= len(picks):
                continue
            img = data.images[picks[j]].transpose(1, 2, 0)
            ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
            title = bundle.class_names[c]
            if data.soft_labels is not None:
                title = f"{title[:5]} {data.soft_labels[picks[j], c]:.2f}"
            ax.set_title(title, fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
