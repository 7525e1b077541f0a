"""Backbones: compact CPU ResNets registered into timm, and the one interface
methods use (feature map, pooled features, classifier, logits).

Any timm model name works as a backbone; the project's own models are
registered both in timm's registry (so ``timm.create_model`` builds them) and
in :data:`fer_bench.registry.BACKBONES` (so ``fer-bench list backbones`` shows them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch
from timm.models import adapt_input_conv, register_model
from torch import nn

from fer_bench.data.mapped import MappedImages
from fer_bench.pretrained import dlib_face_resnet  # noqa: F401  (registers dlib_face_resnet)
from fer_bench.registry import BACKBONES, RegistryError


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class FerResNet(nn.Module):
    """Small ResNet for 40-64 px faces: 3x3 stem (optionally stride 2), no max-pool.

    Follows timm's model API (forward_features / forward_head / get_classifier /
    reset_classifier, num_features) so methods treat it like any timm model.
    """

    def __init__(
        self,
        layers: tuple[int, ...] = (1, 1, 1, 1),
        widths: tuple[int, ...] = (32, 64, 128, 256),
        stem_stride: int = 1,
        num_classes: int = 7,
        in_chans: int = 1,
        drop_rate: float = 0.0,
        **_: object,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = widths[-1]
        self.drop_rate = drop_rate
        self.last_stage_depth = layers[-1]  # blocks of the last stage, for split_last_stage
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, widths[0], 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        cin = widths[0]
        for i, (n, w) in enumerate(zip(layers, widths, strict=True)):
            for j in range(n):
                blocks.append(_BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.stages = nn.Sequential(*blocks)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))
        if self.drop_rate:
            x = nn.functional.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _fer_cfg() -> dict:
    return {"num_classes": 7, "input_size": (1, 48, 48), "mean": (0.5,), "std": (0.25,)}


@BACKBONES.register("fer_resnet10_w16")
@register_model
def fer_resnet10_w16(pretrained: bool = False, **kwargs: object) -> FerResNet:
    """10-layer ResNet, widths 16-128, stride-2 stem: the fast default for the built-in data."""
    model = FerResNet(layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), stem_stride=2, **kwargs)
    model.pretrained_cfg = _fer_cfg()
    return model


@BACKBONES.register("fer_resnet10_w32")
@register_model
def fer_resnet10_w32(pretrained: bool = False, **kwargs: object) -> FerResNet:
    """10-layer ResNet at half width (32-256), stride-2 stem: the FERPlus CPU profile."""
    model = FerResNet(layers=(1, 1, 1, 1), widths=(32, 64, 128, 256), stem_stride=2, **kwargs)
    model.pretrained_cfg = _fer_cfg()
    return model


@BACKBONES.register("fer_resnet18")
@register_model
def fer_resnet18(pretrained: bool = False, **kwargs: object) -> FerResNet:
    """ResNet-18 layout (2-2-2-2, widths 64-512) with a stride-1 stem, for GPU runs."""
    model = FerResNet(layers=(2, 2, 2, 2), widths=(64, 128, 256, 512), stem_stride=1, **kwargs)
    model.pretrained_cfg = _fer_cfg()
    return model


class Backbone(nn.Module):
    """What a method may use of a network: feature map, pooled feature, classifier.

    ``pretrained_load``: what :func:`load_pretrained` reported (None when untrained).
    """

    def __init__(
        self, model: nn.Module, pretrained_load: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.pretrained_load = pretrained_load

    @property
    def num_features(self) -> int:
        return int(self.model.num_features)

    @property
    def classifier(self) -> nn.Linear:
        fc = self.model.get_classifier()
        if not isinstance(fc, nn.Linear):
            raise TypeError(f"backbone classifier is {type(fc).__name__}, expected nn.Linear")
        return fc

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(fmap, pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def split_last_stage(self) -> tuple[nn.Module, nn.Module]:
        """(trunk, last stage) of the feature extractor, built from this backbone's own
        modules (shared, not copied): ``last(trunk(x))`` is ``feature_map(x)``. For methods
        that branch the last stage (DMUE); the project's FerResNets and timm ResNets."""
        model = self.model
        if hasattr(model, "split_last_stage"):  # dlib_face_resnet
            return model.split_last_stage()
        if isinstance(model, FerResNet):
            depth = model.last_stage_depth
            return nn.Sequential(model.stem, *model.stages[:-depth]), model.stages[-depth:]
        if isinstance(model, timm.models.ResNet):
            stem = (model.conv1, model.bn1, model.act1, model.maxpool)
            return nn.Sequential(*stem, model.layer1, model.layer2, model.layer3), model.layer4
        raise TypeError(f"cannot split the last stage off a {type(model).__name__} backbone")


def compile_backbone(backbone: Backbone) -> Backbone:
    """``torch.compile`` the backbone's feature extractor, in place. ``forward_features``
    is what each method's pass goes through (logits and ``feature_map`` alike), and the
    state dict keeps its keys, so checkpoints are those of an uncompiled run."""
    backbone.model.forward_features = torch.compile(backbone.model.forward_features)
    return backbone


def check_backbone_name(name: str) -> None:
    if name not in BACKBONES and not timm.is_model(name):
        raise RegistryError(
            f"unknown backbone {name!r}; registered: {', '.join(BACKBONES.names())} "
            "(or any timm model name, see timm.list_models())"
        )


@dataclass(frozen=True)
class TrainingInputs:
    """The training inputs as a backbone sees them: the per-channel ``mean`` and ``std``
    (0-1 pixels) the harness normalises with, and ``sample``, a fixed set of training
    images so normalised (:func:`calibration_sample`)."""

    mean: torch.Tensor
    std: torch.Tensor
    sample: torch.Tensor


def calibration_sample(
    images: torch.Tensor | MappedImages, mean: torch.Tensor, std: torch.Tensor, n: int = 256
) -> torch.Tensor:
    """``n`` training images evenly spaced over the set, normalised, unaugmented."""
    index = np.unique(np.linspace(0, len(images) - 1, min(n, len(images))).round().astype(int))
    x = torch.as_tensor(np.asarray(images[index])).float().div_(255)
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def create_backbone(
    name: str,
    num_classes: int,
    in_chans: int,
    pretrained: str | Path | None = None,
    inputs: TrainingInputs | None = None,
) -> Backbone:
    """``inputs``: what a backbone with ``adapt_to_inputs`` (dlib_face_resnet) adapts
    its own weights to before training; ignored by the others."""
    check_backbone_name(name)
    model = timm.create_model(name, num_classes=num_classes, in_chans=in_chans)
    if inputs is not None and hasattr(model, "adapt_to_inputs"):
        model.adapt_to_inputs(inputs.mean, inputs.std, inputs.sample)
    report = load_pretrained(model, pretrained) if pretrained is not None else None
    return Backbone(model, report)


def load_pretrained(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load a timm/torchvision state dict (optionally under 'state_dict'/'model',
    with DataParallel 'module.' prefixes). The classifier may differ (new task);
    any other missing or unexpected key is an error, never silence.

    A first convolution trained on other input channels (an RGB checkpoint such as
    ``resnet18_msceleb.pth`` into a grayscale model) is adapted with timm's
    ``adapt_input_conv``: for one channel, the kernel summed over its input channels.
    timm's ``resnet18`` has torchvision's ResNet-18 keys exactly (no renames);
    ``fer_resnet18`` does not (3x3 stem, ``stem``/``stages`` names) and refuses one.

    Returns {"missing": keys left at their initialisation (the classifier),
    "unexpected": [], "adapted": first-conv weights adapted to the input channels}.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a zip/pickle file, truncated, or holding code
        first = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(
            f"--pretrained {path}: not a readable PyTorch checkpoint ({type(err).__name__}: "
            f"{first[:200]})"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    adapted = _adapt_first_conv(model, state, own)
    head = {k for k in own if k.startswith(_classifier_prefix(model))}
    # A classifier of another size (ImageNet head, 8 vs 7 classes) is dropped, not loaded.
    state = {k: v for k, v in state.items() if not _is_foreign_head(k, v, own, head)}
    mismatched = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    missing = sorted(set(own) - set(state) - head)
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{path} does not match the backbone: {len(missing)} missing "
            f"({', '.join(missing[:3])}...), {len(unexpected)} unexpected "
            f"({', '.join(unexpected[:3])}...), {len(mismatched)} with other shapes "
            f"({', '.join(mismatched[:3])}...)"
        )
    model.load_state_dict(state, strict=False)
    return {"missing": sorted(set(own) - set(state)), "unexpected": unexpected, "adapted": adapted}


def _first_conv_weights(model: nn.Module) -> list[str]:
    """State-dict keys of the input convolution(s): timm's ``first_conv``, else the
    first Conv2d of the model."""
    first = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    if first:
        return [f"{name}.weight" for name in ([first] if isinstance(first, str) else first)]
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return [f"{name}.weight"]
    return []


def _adapt_first_conv(model: nn.Module, state: dict, own: dict) -> list[str]:
    """Adapt, in ``state``, first-conv kernels that differ from the model's in input
    channels only; the keys adapted."""
    adapted = []
    for key in _first_conv_weights(model):
        if key not in state or key not in own:
            continue
        theirs, mine = state[key], own[key]
        if theirs.ndim != 4 or theirs.shape == mine.shape:
            continue
        if theirs.shape[0] != mine.shape[0] or theirs.shape[2:] != mine.shape[2:]:
            continue  # another layer shape altogether: reported as a mismatch
        try:
            state[key] = adapt_input_conv(mine.shape[1], theirs, base_chans=theirs.shape[1])
        except NotImplementedError:
            continue
        adapted.append(key)
    return adapted


def _is_foreign_head(key: str, value: torch.Tensor, own: dict, head: set[str]) -> bool:
    if key in head:
        return value.shape != own[key].shape
    return key not in own and key.split(".")[0] in ("fc", "head", "classifier")


def _classifier_prefix(model: nn.Module) -> str:
    fc = model.get_classifier()
    for name, module in model.named_modules():
        if module is fc:
            return name + "."
    return "fc."
