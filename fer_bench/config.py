"""Run configuration: plain dataclasses (their identity and hash: fer_bench.records.identity)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DataConfig:
    name: str = "synthetic"
    root: str | None = None
    label_mode: str | None = None  # dataset-specific; None = the dataset's default
    image_size: int = 48
    channels: int = 1


@dataclass
class ProtocolConfig:
    noise: str = "symmetric"  # a registered noise protocol, or file:PATH
    noise_rate: float = 0.0
    noise_seed: int = 0  # independent of the training seed
    noise_on_val: bool = True  # validation labels get the same protocol (realistic selection)
    imbalance: float = 1.0  # imbalance factor n_max / n_min; 1 = untouched
    imbalance_type: str = "exp"


@dataclass
class AugConfig:
    pad: int = 4  # zero padding before the random crop
    crop: int | None = None  # crop side; None = the input size (translation only)
    flip: bool = True
    flip_p: float = 0.5  # probability of the random mirror when ``flip``
    # SCN and RUL: with p 0.5 one of {mirror, Gaussian noise}, never both. True: one draw
    # u per sample, mirror if u < flip_p, noise if flip_p <= u < flip_p + noise_p.
    flip_noise_exclusive: bool = False
    erase_p: float = 0.5
    erase_max: float = 0.25  # largest erased area fraction (SCN, RUL, EAC: 0.25; NLA: 0.30)
    noise_p: float = 0.5  # Gaussian pixel noise, variance 30 on 0-255 as in all four repos
    noise_var: float = 30.0
    second_view_noise: bool = True  # pixel noise on the "mirror_aug" view too (EAC official: no)
    tta_flip: bool = False  # evaluate on the mean of the image and its mirror


@dataclass
class OptimConfig:
    name: str = "adamw"  # adam | adamw | sgd
    lr: float = 2e-3
    weight_decay: float = 5e-4
    momentum: float = 0.9
    schedule: str = "onecycle"  # onecycle | cosine | exponential | constant
    gamma: float = 0.9  # exponential decay per epoch
    warmup_frac: float = 0.2  # onecycle's rising share


@dataclass
class RunConfig:
    method: str = "ce"
    hparams: dict[str, str] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    backbone: str = "fer_resnet10_w16"
    pretrained: str | None = None
    epochs: int = 12
    batch_size: int = 128
    eval_batch_size: int = 512
    seed: int = 0
    device: str = "cpu"
    bf16: bool = True
    channels_last: bool = True
    # torch.compile each backbone (fer_bench.backbones.compile_backbone): off, as the
    # compilation every run starts with pays only on long GPU runs; not part of the identity.
    torch_compile: bool = False
    plugin: str | None = None  # user file that registers the method
    recipe: str = "shared"  # "shared" (the profile's) | "official" (the method's own code)
    sampler: str = "uniform"  # "uniform" | "balanced" (see fer_bench.training.sampling)

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1 (got {self.epochs})")
        if self.data.image_size < 1:
            raise ValueError(f"--image-size must be at least 1 (got {self.data.image_size})")
        if self.batch_size < 2:
            raise ValueError(f"--batch-size must be at least 2 (got {self.batch_size})")
        if not self.optim.lr > 0:
            raise ValueError(f"--lr must be positive (got {self.optim.lr})")
        check_noise_rate(self.protocol.noise_rate)
        if self.sampler not in ("uniform", "balanced"):
            raise ValueError(f"sampler must be uniform or balanced (got {self.sampler!r})")
        check_imbalance(self.protocol.imbalance)
        self._check_ranges()

    def _check_ranges(self) -> None:
        """Every other numeric value in its range, named by its --cfg key."""
        checks: list[tuple[str, float | int | None, float, float, bool]] = [
            # key, value, low, high, high included
            ("eval_batch_size", self.eval_batch_size, 1, math.inf, False),
            ("seed", self.seed, 0, 2**32 - 1, True),  # numpy's seeding takes no other
            ("protocol.noise_seed", self.protocol.noise_seed, 0, 2**32 - 1, True),
            ("data.channels", self.data.channels, 1, 3, True),
            ("aug.pad", self.aug.pad, 0, math.inf, False),
            ("aug.flip_p", self.aug.flip_p, 0, 1, True),
            ("aug.erase_p", self.aug.erase_p, 0, 1, True),
            ("aug.erase_max", self.aug.erase_max, 0, 1, True),
            ("aug.noise_p", self.aug.noise_p, 0, 1, True),
            ("aug.noise_var", self.aug.noise_var, 0, math.inf, False),
            ("optim.lr", self.optim.lr, 0, math.inf, False),
            ("optim.weight_decay", self.optim.weight_decay, 0, math.inf, False),
            ("optim.momentum", self.optim.momentum, 0, 1, True),
            ("optim.gamma", self.optim.gamma, 0, 1, True),
            ("optim.warmup_frac", self.optim.warmup_frac, 0, 1, False),
        ]
        if self.aug.crop is not None:  # 0, as None: the input size
            checks.append(("aug.crop", self.aug.crop, 0, math.inf, False))
        for key, value, low, high, closed in checks:
            inside = low <= value <= high if closed else low <= value < high
            if not inside:
                upper = _num(high) + ("]" if closed else ")")
                raise ValueError(f"--cfg {key}={value}: outside [{_num(low)}, {upper}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        sub = {
            "data": DataConfig,
            "protocol": ProtocolConfig,
            "aug": AugConfig,
            "optim": OptimConfig,
        }
        kwargs = {k: (sub[k](**v) if k in sub else v) for k, v in d.items()}
        return cls(**kwargs)


def check_noise_rate(rate: float) -> None:
    """The one check of a noise rate, for a run's config and for every noise protocol
    (``fer-bench labels`` builds one without a RunConfig)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise rate must be in [0, 1) (got {rate})")


def check_imbalance(factor: float) -> None:
    """The one check of an imbalance factor, for a run's config and for every imbalance
    protocol (``fer-bench labels`` builds one without a RunConfig)."""
    if not 1.0 <= factor < math.inf:
        raise ValueError(f"--imbalance: the factor must be finite and >= 1 (got {factor})")


def _num(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and x == int(x) else f"{x:g}"
