"""The engine's view of a split's images: batches gathered by index, on the device.

Here the data layer's numpy arrays become tensors (``torch.from_numpy``: no copy,
the same values). In memory, the training images move to the device once and a
batch is one index op there, as before this module existed. Memory-mapped
(:class:`MappedImages`), each batch is read from the map, pinned, and copied
asynchronously, so only a few batches are ever resident; during an epoch a
thread reads the next batch while the current one trains.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from fer_bench.data.mapped import MappedImages

_STATS_CHUNK = 1024  # images per block when computing channel statistics from a map


def as_tensor(images: ArrayLike | torch.Tensor | MappedImages) -> torch.Tensor | MappedImages:
    """A split's in-memory images (an array, or what reads as one: the synthetic faces) as
    a tensor sharing the array's memory; a tensor or a map as is."""
    if isinstance(images, torch.Tensor | MappedImages):
        return images
    return torch.from_numpy(np.asarray(images))


@dataclass(eq=False)
class ImageStore:
    images: torch.Tensor | MappedImages  # an array given is wrapped (:func:`as_tensor`)
    device: torch.device

    def __post_init__(self) -> None:
        self.images = as_tensor(self.images)

    @classmethod
    def for_training(
        cls, images: ArrayLike | torch.Tensor | MappedImages, device: str
    ) -> ImageStore:
        """Training images, read every epoch: held in memory, they move to the device up
        front."""
        images = as_tensor(images)
        if isinstance(images, torch.Tensor):
            images = images.to(device)
        return cls(images, torch.device(device))

    @property
    def kind(self) -> str:
        """The data path, as the run record names it: "memory" or "mmap"."""
        return "mmap" if isinstance(self.images, MappedImages) else "memory"

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: torch.Tensor | slice) -> torch.Tensor:
        """uint8 (B, C, H, W) on the device."""
        if isinstance(self.images, torch.Tensor):
            if isinstance(index, torch.Tensor):
                index = index.to(self.images.device)
            return self.images[index].to(self.device)
        return self._read(index).to(self.device, non_blocking=True)

    def batches(
        self, order: torch.Tensor, batch_size: int, steps: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(index, images on the device) of each of an epoch's ``steps`` batches; the index
        is on the device too for images held there, on the CPU for a map."""
        if isinstance(self.images, torch.Tensor):
            order = order.to(self.images.device)  # once: each batch's index stays there
        indices = [order[s * batch_size : (s + 1) * batch_size] for s in range(steps)]
        if isinstance(self.images, torch.Tensor) or not indices:
            for idx in indices:
                yield idx, self[idx]
            return
        # Reading from the map (numpy and pinning release the GIL) overlaps the step.
        with ThreadPoolExecutor(1) as reader:
            pending = reader.submit(self._read, indices[0])
            for s, idx in enumerate(indices):
                batch = pending.result()
                if s + 1 < steps:
                    pending = reader.submit(self._read, indices[s + 1])
                yield idx, batch.to(self.device, non_blocking=True)

    def _read(self, index: torch.Tensor | slice) -> torch.Tensor:
        """A batch of the map in host memory, pinned when it is bound for a GPU."""
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        batch = torch.from_numpy(self.images[index])
        if self.device.type == "cuda":
            batch = batch.pin_memory()  # a pinned source lets the copy run asynchronously
        return batch


def channel_stats(
    images: ArrayLike | torch.Tensor | MappedImages,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the pixels on a 0-1 scale.

    A tensor is reduced exactly as the engine always did (float32), so existing runs
    keep their numbers. A map is reduced block by block through per-channel pixel
    histograms, exact in float64, without a float copy of the whole set.
    """
    images = as_tensor(images)
    if isinstance(images, torch.Tensor):
        pixels = images.float().div(255)
        return pixels.mean((0, 2, 3)), pixels.std((0, 2, 3))
    channels = images.shape[1]
    counts = np.zeros((channels, 256), dtype=np.int64)
    for start in range(0, len(images), _STATS_CHUNK):
        block = images[start : start + _STATS_CHUNK]
        for c in range(channels):
            counts[c] += np.bincount(block[:, c].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255
    n = counts.sum(1)
    mean = counts @ values / n
    var = (counts @ values**2 - n * mean**2) / (n - 1)
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(np.sqrt(var), dtype=torch.float32)
