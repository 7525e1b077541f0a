"""Batched augmentation: exact repetition from a seed, second views, eval view."""

from __future__ import annotations

import torch

from fer_bench.config import AugConfig
from fer_bench.training.augment import BatchAugmenter


def _aug(cfg: AugConfig, seed: int = 0) -> BatchAugmenter:
    return BatchAugmenter(
        cfg, torch.tensor([0.5]), torch.tensor([0.25]), 48, torch.Generator().manual_seed(seed)
    )


def _images(n: int = 16) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, 1, 48, 48), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )


def test_same_seed_same_batch():
    a, _ = _aug(AugConfig()).train_views(_images(), None)
    b, _ = _aug(AugConfig()).train_views(_images(), None)
    c, _ = _aug(AugConfig(), seed=1).train_views(_images(), None)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (16, 1, 48, 48) and a.dtype == torch.float32


def test_mirror_view_is_exact_mirror():
    x1, x2 = _aug(AugConfig()).train_views(_images(), "mirror")
    assert torch.equal(x2, x1.flip(-1))


def test_mirror_aug_shares_geometry_but_not_erasing():
    geometric_only = AugConfig(erase_p=0.0, noise_p=0.0)
    x1, x2 = _aug(geometric_only).train_views(_images(), "mirror_aug")
    assert torch.equal(x2, x1.flip(-1))
    x1, x2 = _aug(AugConfig(erase_p=1.0, noise_p=0.0)).train_views(_images(), "mirror_aug")
    assert not torch.equal(x2, x1.flip(-1))  # boxes drawn independently per view


def test_crop_without_padding_gives_crop_size():
    aug = _aug(AugConfig(pad=0, crop=40))
    x, _ = aug.train_views(_images(), None)
    assert x.shape[-2:] == (40, 40)
    ev = aug.eval_view(_images())
    assert ev.shape[-2:] == (40, 40)
    expected = (_images()[:, :, 4:44, 4:44].float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(ev, expected)


def test_erasing_zeroes_a_box_of_bounded_area():
    x, _ = _aug(AugConfig(pad=0, flip=False, noise_p=0.0, erase_p=1.0, erase_max=0.25)).train_views(
        torch.full((64, 1, 48, 48), 255, dtype=torch.uint8), None
    )
    erased = (x == 0).float().mean((1, 2, 3))
    assert (erased > 0).all() and (erased <= 0.25 + 0.02).all()
