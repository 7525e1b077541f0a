"""Second views of a training batch: a registry of small functions, not a closed list.

A method names the view it wants in ``second_view``; the engine passes the
result as ``Batch.x2``. A view is registered as ``make(aug, images, geometry)``
and called once per batch after the shared geometry (crop and flip, drawn for
view 1) and before view 1's photometric pass, which works in place on that
geometry: a view that reuses it copies it here. ``make`` returns the function
that builds the second view from the finished view 1. All randomness comes from
the augmenter's generator, so a resumed run draws the same views.

``mirror``: the exact mirror of view 1 (NLA). ``mirror_aug``: the mirror of the
same crop with its own erasing and pixel noise (EAC). ``independent``: a second,
independent draw of the whole augmentation. ``strong``: an independent draw with
pixel noise and erasing always on (the strongest the harness's operations give).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from fer_bench.registry import VIEWS

if TYPE_CHECKING:
    from fer_bench.training.augment import BatchAugmenter

FinishView = Callable[[torch.Tensor], torch.Tensor]  # view 1 -> the second view


@VIEWS.register("mirror")
def mirror(aug: BatchAugmenter, images: torch.Tensor, geometry: torch.Tensor) -> FinishView:
    """The exact mirror of view 1."""
    return lambda x1: x1.flip(-1)


@VIEWS.register("mirror_aug")
def mirror_aug(aug: BatchAugmenter, images: torch.Tensor, geometry: torch.Tensor) -> FinishView:
    """The mirror of view 1's crop with its own erasing and noise (none with
    ``second_view_noise=False``)."""
    mirrored = geometry.flip(-1)  # a copy, taken before view 1 is finished in place
    return lambda x1: aug.photometric(mirrored, add_noise=aug.cfg.second_view_noise)


@VIEWS.register("independent")
def independent(aug: BatchAugmenter, images: torch.Tensor, geometry: torch.Tensor) -> FinishView:
    """A second draw of crop, flip, noise and erasing, independent of view 1."""
    return lambda x1: aug.photometric(aug.geometry(images))


@VIEWS.register("strong")
def strong(aug: BatchAugmenter, images: torch.Tensor, geometry: torch.Tensor) -> FinishView:
    """An independent draw with pixel noise and erasing on every image."""
    always = dataclasses.replace(aug.cfg, noise_p=1.0, erase_p=1.0)
    return lambda x1: aug.with_config(always).photometric(aug.geometry(images))
