"""Batched augmentation of uint8 image tensors: no per-sample Python in the hot loop.

Geometry (pad + random crop, horizontal flip) is drawn once per sample and
can be shared, mirrored, by a second view; photometric parts (Gaussian pixel
noise, random erasing) are drawn independently per view. All randomness comes
from one ``torch.Generator`` so runs and resumed runs repeat exactly.

SCN and RUL mirror or add pixel noise, never both (``flip_noise_exclusive``):
one uniform draw per sample decides both, made before the crop's draws. The
default configuration draws exactly what it drew before that option existed.
"""

from __future__ import annotations

import copy
import math

import torch

from fer_bench.config import AugConfig
from fer_bench.registry import VIEWS


class BatchAugmenter:
    def __init__(
        self,
        cfg: AugConfig,
        mean: torch.Tensor,
        std: torch.Tensor,
        input_size: int,
        gen: torch.Generator,
    ) -> None:
        self.cfg = cfg
        self.mean = mean.view(1, -1, 1, 1).to(gen.device)
        self.std = std.view(1, -1, 1, 1).to(gen.device)
        self.crop = cfg.crop or input_size
        self.gen = gen
        if cfg.flip_noise_exclusive and cfg.flip_p + cfg.noise_p > 1:
            raise ValueError(
                f"exclusive mirror/noise needs flip_p + noise_p <= 1 "
                f"(got {cfg.flip_p} + {cfg.noise_p})"
            )

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.gen, device=self.gen.device)

    def exclusive_draw(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mirror, noise) masks (B,) from one draw u per sample: mirror where u < flip_p,
        noise where flip_p <= u < flip_p + noise_p."""
        u = self._rand(b)
        lo, hi = self.cfg.flip_p, self.cfg.flip_p + self.cfg.noise_p
        return u < lo, (u >= lo) & (u < hi)

    def geometry(self, images: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
        """Random crop from the zero-padded uint8 batch and random flip, as one gather;
        float in [0, 1]. ``flip``: a given mirror mask (B,) instead of a draw."""
        b, chans, h, w = images.shape
        p, c = self.cfg.pad, self.crop
        x = torch.nn.functional.pad(images, (p, p, p, p)) if p else images
        wp = w + 2 * p
        oy = (self._rand(b) * (h + 2 * p - c + 1)).long()
        ox = (self._rand(b) * (wp - c + 1)).long()
        dev = images.device
        rows = torch.arange(c, device=dev).view(c, 1) * wp
        cols = torch.arange(c, device=dev).view(1, c)
        offsets = (oy * wp + ox).view(b, 1)
        index = offsets + (rows + cols).view(1, -1)
        if self.cfg.flip:
            if flip is None:
                flip = self._rand(b) < self.cfg.flip_p
            index = torch.where(flip.view(b, 1), offsets + (rows + cols.flip(1)).view(1, -1), index)
        index = index.view(b, 1, c * c).expand(b, chans, c * c)
        return x.flatten(2).gather(2, index).view(b, chans, c, c).float().div_(255)

    def photometric(
        self, x: torch.Tensor, noise_on: torch.Tensor | None = None, add_noise: bool = True
    ) -> torch.Tensor:
        """Gaussian pixel noise (before normalising), normalisation, random erasing (after).

        Works in place on ``x`` (a fresh float batch from :meth:`geometry`): at 48 px
        the elementwise passes cost as much as the network, so none is spent on copies.
        ``noise_on``: a given noise mask (B,) instead of a draw; ``add_noise=False``: none.
        """
        b = x.shape[0]
        if add_noise and self.cfg.noise_p > 0:
            sigma = math.sqrt(self.cfg.noise_var) / 255
            if noise_on is None:
                noise_on = self._rand(b) < self.cfg.noise_p
            scale = noise_on.to(x.dtype).mul_(sigma).view(b, 1, 1, 1)
            noise = torch.randn(x.shape, generator=self.gen, device=x.device)
            x.addcmul_(noise, scale).clamp_(0, 1)  # clamping un-noised pixels is a no-op
        x.sub_(self.mean).div_(self.std)
        if self.cfg.erase_p > 0:
            x.masked_fill_(self._erase_mask(x), 0.0)
        return x

    def _erase_mask(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision.RandomErasing's box law: area in (0.02, erase_max), log-uniform ratio
        # in (0.3, 3.3), value 0; boxes that do not fit are clipped rather than retried.
        b, _, h, w = x.shape
        area = h * w * (0.02 + (self.cfg.erase_max - 0.02) * self._rand(b))
        ratio = torch.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * self._rand(b))
        eh = (area * ratio).sqrt().round().clamp(1, h)
        ew = (area / ratio).sqrt().round().clamp(1, w)
        top = (self._rand(b) * (h - eh + 1)).floor()
        left = (self._rand(b) * (w - ew + 1)).floor()
        on = self._rand(b) < self.cfg.erase_p
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        box = (
            (ys >= top.view(b, 1, 1))
            & (ys < (top + eh).view(b, 1, 1))
            & (xs >= left.view(b, 1, 1))
            & (xs < (left + ew).view(b, 1, 1))
        )
        return (box & on.view(b, 1, 1)).unsqueeze(1)

    def with_config(self, cfg: AugConfig) -> BatchAugmenter:
        """This augmenter under other settings, drawing from the same generator."""
        other = copy.copy(self)
        other.cfg = cfg
        return other

    def train_views(
        self, images: torch.Tensor, second_view: str | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """View 1 and, if ``second_view`` names a registered view, the second view."""
        make_second = VIEWS.get(second_view) if second_view is not None else None
        flip = noise_on = None
        if self.cfg.flip_noise_exclusive:
            flip, noise_on = self.exclusive_draw(images.shape[0])
        geo = self.geometry(images, flip)
        finish = make_second(self, images, geo) if make_second is not None else None
        x1 = self.photometric(geo, noise_on)
        return x1, (finish(x1) if finish is not None else None)

    def eval_view(self, images: torch.Tensor) -> torch.Tensor:
        """Centre crop, normalised; no randomness."""
        _, _, h, w = images.shape
        top, left = (h - self.crop) // 2, (w - self.crop) // 2
        x = images[:, :, top : top + self.crop, left : left + self.crop].float().div_(255)
        return x.sub_(self.mean).div_(self.std)
