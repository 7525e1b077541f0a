"""The order in which an epoch visits the training images.

``uniform`` (default): a permutation, each image once per epoch. ``balanced``:
AffectNet's usual convention (torchsampler's ImbalancedDatasetSampler): n draws
with replacement, each image weighted by 1 / the count of its OBSERVED label,
so every observed class is drawn about equally often. The weights use the
labels the method sees, never the clean ones.
"""

from __future__ import annotations

import torch

SAMPLERS = ("uniform", "balanced")


def epoch_order(sampler: str, observed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Indices of one epoch's len(observed) training draws."""
    n = len(observed)
    if sampler == "uniform":
        return torch.randperm(n, generator=generator)
    if sampler == "balanced":
        counts = torch.bincount(observed)
        weights = 1.0 / counts[observed].double()
        return torch.multinomial(weights, n, replacement=True, generator=generator)
    raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
