"""``dlib_face_resnet``: dlib's face-recognition ResNet as a harness backbone, its
weights read from the installed ``face-recognition-models`` (see dlib_resnet_file).

Sources: davisking/dlib@3d40bf5. The network is dlib's ``anet_type``
(examples/dnn_face_recognition_ex.cpp:47-70): a 7x7/2
stem, 3x3/2 max pool, 14 residual blocks at 32-64-128-256-256 channels, global average
pooling; the 128-D embedding fc is dropped for the task's classifier on the 256-D
pooled feature. dlib pads k//2 at stride 1 and nothing at stride 2 (dlib/dnn/layers.h:37
for ``con_``, :1165 and :1363 for the pools), down-samples the shortcut by a 2x2/2
average pool, and adds operands of different shapes over the larger shape, the smaller
zero-padded after its last channel, row and column (``add_prev_``, layers.h:3010-3014;
dlib/cuda/cpu_dlib.cpp:222 ``add``): all reproduced, so at
``last_stride=2`` the 128-D descriptor equals dlib's (tests/test_dlib_face_resnet.py).

Choices for fine-tuning on FER images, each documented where it is made:

* ``last_stride=1`` (the default): the last down-sampling block runs at stride 1
  (padding 1, identity shortcut), the "last stride 1" of re-identification ResNets
  (Luo et al. 2019, Bag of Tricks and a Strong Baseline for Deep Person Re-ID), so
  that methods built on class activation maps (EAC) get a 3x3 map at 112 px, where
  dlib's geometry ends in 1x1 (103-134 px). Its weights are dlib's, unchanged.
* :meth:`DlibFaceResNet.fold_input_normalisation`: dlib feeds ``(pixel - mean_c)/256``
  per RGB channel (dlib/dnn/input.h:111-115); the harness feeds
  ``(pixel/255 - mean)/std`` with its own statistics, one channel or three. The stem
  convolution has no padding, so that affine change of the input folds exactly into
  its kernel and a per-channel shift after it.
* The fine-tuning trap: the file holds batch norm folded into per-channel affine
  layers over tiny convolution weights (RMS 0.0006-0.017, affine scales 3-14), on
  which each Adam step moves a weight by a large share of itself with nothing to
  renormalise it, and naive fine-tuning collapses. Two function-preserving steps
  undo the folding: :meth:`DlibFaceResNet.rescale_convs` gives each convolution the
  scale of PyTorch's Kaiming initialisation (the affine takes the rest), then
  :meth:`DlibFaceResNet.affines_to_batch_norm` turns each affine into batch norm
  whose running statistics are measured on training images and whose scale and
  shift make it, in eval mode, the affine it replaces. The network then fine-tunes
  as the papers' batch-norm ResNets do, with the same relative step sizes.
* A batch-norm neck on the last map (BNNeck, Luo et al. 2019): dlib's pooled features
  vary little between faces against their mean (an embedding trained for distances),
  which a new classifier at the papers' learning rate barely separates; standardised,
  they train it at the usual pace. Pooling is a plain mean after it, so class
  activation maps stay the logits' own decomposition.

The registered builder loads and rescales; the trainer does the rest through
:meth:`DlibFaceResNet.adapt_to_inputs` (fer_bench.backbones.create_backbone with the
run's ``TrainingInputs``). The features before training are dlib's, then standardised
by the neck for the new classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

from fer_bench.registry import BACKBONES

# (channels, blocks, down-sampling first) per level, input side to output side
_LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
INPUT_SIZE = 112  # the harness's default side for this backbone (profile ferplus-face)


class Affine(nn.Module):
    """Per-channel scale and shift: dlib's ``affine_`` (batch norm folded at training)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias.view(1, -1, 1, 1), x, self.weight.view(1, -1, 1, 1))


def _norm(channels: int, affine: bool) -> nn.Module:
    return Affine(channels) if affine else nn.BatchNorm2d(channels)


def _conv(cin: int, cout: int, k: int, stride: int) -> nn.Conv2d:
    # dlib's padding rule (layers.h:37, con_): k//2 at stride 1, none otherwise
    return nn.Conv2d(cin, cout, k, stride, k // 2 if stride == 1 else 0, bias=False)


def add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum over the larger shape, the smaller operand zero-padded
    after its last channel, row and column."""
    if a.shape == b.shape:
        return a + b
    shape = [max(x, y) for x, y in zip(a.shape, b.shape, strict=True)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        pad = (0, shape[3] - t.shape[3], 0, shape[2] - t.shape[2], 0, shape[1] - t.shape[1])
        return F.pad(t, pad)

    return grow(a) + grow(b)


class DlibBlock(nn.Module):
    """conv3x3-affine-ReLU-conv3x3-affine added to the shortcut, then ReLU; a stride-2
    block's shortcut is a 2x2/2 average pool (no parameters)."""

    def __init__(self, cin: int, cout: int, stride: int, affine: bool) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = _conv(cin, cout, 3, stride)
        self.norm1 = _norm(cout, affine)
        self.conv2 = _conv(cout, cout, 3, 1)
        self.norm2 = _norm(cout, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.stride == 2 else x
        return F.relu(add_padded(out, shortcut))


def output_side(side: int, last_stride: int = 1) -> int:
    """The last feature map's side for a ``side`` x ``side`` input (< 1: too small)."""
    side = (side - 7) // 2 + 1  # stem
    side = (side - 3) // 2 + 1  # max pool
    for i, (_, _, down) in enumerate(_LEVELS):
        if down and not (i == len(_LEVELS) - 1 and last_stride == 1):
            side = max((side - 3) // 2 + 1, side // 2) if side >= 3 else 0
    return side


def min_input_side(last_stride: int = 1) -> int:
    return next(s for s in range(1, 1024) if output_side(s, last_stride) >= 1)


class DlibFaceResNet(nn.Module):
    """dlib's face ResNet with timm's model API (forward_features / forward_head /
    get_classifier / reset_classifier, num_features).

    ``affine``: dlib's affine layers (for its weights); False: batch norm (the same
    network trained from random init). ``last_stride``: 2 is dlib's geometry.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 3,
        last_stride: int = 1,
        affine: bool = True,
        drop_rate: float = 0.0,
        neck: bool = True,
        **_: object,
    ) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2 (got {last_stride})")
        self.num_classes = num_classes
        self.num_features = _LEVELS[-1][0]
        self.drop_rate = drop_rate
        self.last_stride = last_stride
        self.last_stage_depth = _LEVELS[-1][1]  # dlib's last level: one block
        self.input_folded = False
        self.weights_sha256: str | None = None
        self.pretrained_cfg = _cfg(in_chans)  # timm's: RUL reads its native input size
        self.stem = nn.Sequential(_conv(in_chans, 32, 7, 2), _norm(32, affine), nn.ReLU())
        blocks: list[nn.Module] = []
        cin = 32
        for i, (width, depth, down) in enumerate(_LEVELS):
            for j in range(depth):
                last = i == len(_LEVELS) - 1
                stride = 2 if (down and j == 0 and not (last and last_stride == 1)) else 1
                blocks.append(DlibBlock(cin, width, stride, affine))
                cin = width
        self.stages = nn.Sequential(*blocks)
        # Batch norm over the last map's channels (a BNNeck, Luo et al. 2019): dlib's
        # pooled features vary little between faces against their mean (an embedding
        # trained for distances), which a new classifier at the papers' rate barely moves.
        self.neck: nn.Module = nn.BatchNorm2d(self.num_features) if neck else nn.Identity()
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
        side = min(x.shape[-2:])
        if output_side(side, self.last_stride) < 1:
            raise ValueError(
                f"dlib_face_resnet needs inputs of at least {min_input_side(self.last_stride)} "
                f"px (got {x.shape[-2]}x{x.shape[-1]}); set --image-size"
            )
        x = F.max_pool2d(self.stem(x), 3, 2)
        return self.neck(self.stages(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))
        if self.drop_rate:
            x = F.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def split_last_stage(self) -> tuple[nn.Module, nn.Module]:
        """(trunk, last stage) sharing this model's modules: dlib's last level (one block)."""
        depth = self.last_stage_depth
        trunk = nn.Sequential(self.stem, nn.MaxPool2d(3, 2), *self.stages[:-depth])
        return trunk, nn.Sequential(*self.stages[-depth:], self.neck)

    def norm_pairs(self) -> list[tuple[nn.Conv2d, nn.Module]]:
        """Each convolution with the norm layer right after it, in forward order."""
        pairs = [(self.stem[0], self.stem[1])]
        for block in self.stages:
            pairs += [(block.conv1, block.norm1), (block.conv2, block.norm2)]
        return pairs

    @torch.no_grad()
    def load_dlib(self, weights: dict) -> None:
        """dlib's weights (dlib_resnet_file.converted_weights), conv biases folded into
        the affine shifts: affine(conv(x) + b) = g * conv(x) + (g * b + beta)."""
        pairs = self.norm_pairs()
        if len(weights["convs"]) != len(pairs) or not isinstance(pairs[0][1], Affine):
            raise ValueError("dlib weights need the affine DlibFaceResNet")
        stem_in = self.stem[0].in_channels
        for (conv, norm), (kernel, bias), (gamma, beta) in zip(
            pairs, weights["convs"], weights["affines"], strict=True
        ):
            if conv is self.stem[0]:  # R, G, B kept apart for the normalisation fold
                self._stem_rgb_sums = kernel.sum((2, 3)).float()
                if stem_in != kernel.shape[1]:
                    kernel = kernel.sum(1, keepdim=True)  # grey: R = G = B
            conv.weight.copy_(kernel)
            norm.weight.copy_(gamma)
            norm.bias.copy_(gamma * bias + beta)
        self.dlib_mean = weights["input_mean"].float()  # R, G, B on 0-255
        self.weights_sha256 = weights["sha256"]

    @torch.no_grad()
    def fold_input_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Take ``(pixel/255 - mean)/std`` inputs (the harness's, per input channel)
        instead of dlib's ``(pixel - dlib_mean)/256``: exact, as the stem conv has no
        padding. A one-channel input stands for R = G = B. Once, after :meth:`load_dlib`."""
        if self.weights_sha256 is None or self.input_folded:
            raise RuntimeError("fold_input_normalisation: only once, on dlib's weights")
        conv, norm = self.stem[0], self.stem[1]
        # dlib's input from the harness's x: (255 (x std + mean) - m) / 256 per RGB
        # channel, a scale on the kernel and, through it, a constant after the conv
        # (one mean for grey, broadcast over R, G, B)
        offset = (255 * mean.float() - self.dlib_mean) / 256
        shift = (self._stem_rgb_sums * offset.view(1, 3)).sum(1)
        conv.weight.mul_((255 * std.float() / 256).view(1, -1, 1, 1))
        norm.bias.add_(norm.weight * shift)
        self.input_folded = True

    @torch.no_grad()
    def affines_to_batch_norm(self, images: torch.Tensor, batch: int = 64) -> None:
        """Replace each affine by batch norm whose running statistics are its input's on
        ``images`` (normalised as the model takes them) and whose scale and shift make
        it, in eval mode, the affine it replaces: the same function, and in training
        the normalisation the rest of the network was trained under."""
        pairs = self.norm_pairs()
        sums: dict[int, list[torch.Tensor]] = {}

        def record(i: int):
            def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
                x = args[0].double()
                s = sums.setdefault(i, [0, 0, 0])
                s[0] = s[0] + x.sum((0, 2, 3))
                s[1] = s[1] + x.pow(2).sum((0, 2, 3))
                s[2] += x.numel() // x.shape[1]

            return hook

        norms = [norm for _, norm in pairs] + [self.neck]
        handles = [norm.register_forward_pre_hook(record(i)) for i, norm in enumerate(norms)]
        was_training = self.training
        self.eval()
        try:
            for start in range(0, len(images), batch):
                self.forward_features(images[start : start + batch])
        finally:
            for h in handles:
                h.remove()
            self.train(was_training)
        for i, (conv, norm) in enumerate(pairs):
            total, squares, n = sums[i]
            mean = total / n
            var = (squares / n - mean**2).clamp_min(0)
            bn = nn.BatchNorm2d(conv.out_channels).to(norm.weight.device)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            # eval: gamma (x - mean) / sqrt(var + eps) + beta = g x + b
            root = (var + bn.eps).sqrt()
            bn.weight.copy_(norm.weight.double() * root)
            bn.bias.copy_(norm.bias.double() + norm.weight.double() * mean)
            self._replace(norm, bn)
        if isinstance(self.neck, nn.BatchNorm2d):  # a new layer: it standardises
            total, squares, n = sums[len(pairs)]
            self.neck.running_mean.copy_(total / n)
            self.neck.running_var.copy_((squares / n - (total / n) ** 2).clamp_min(0))

    def _replace(self, old: nn.Module, new: nn.Module) -> None:
        for module in self.modules():
            for name, child in module.named_children():
                if child is old:
                    setattr(module, name, new)

    @torch.no_grad()
    def rescale_convs(self) -> None:
        """Each convolution's output channels rescaled to the RMS of PyTorch's Kaiming
        (fan-out) initialisation, the scale moved into the following affine: the same
        function (see the module docstring). Before :meth:`affines_to_batch_norm`."""
        for conv, norm in self.norm_pairs():
            if not isinstance(norm, Affine):
                raise RuntimeError("rescale_convs: on the affine layers only")
            out, _, kh, kw = conv.weight.shape
            target = (2 / (out * kh * kw)) ** 0.5
            rms = conv.weight.pow(2).mean((1, 2, 3)).sqrt().clamp_min(1e-12)
            conv.weight.mul_((target / rms).view(-1, 1, 1, 1))
            norm.weight.mul_(rms / target)
            if conv is self.stem[0] and self.weights_sha256 is not None:
                self._stem_rgb_sums.mul_((target / rms).view(-1, 1))

    def adapt_to_inputs(self, mean: torch.Tensor, std: torch.Tensor, sample: torch.Tensor) -> None:
        """Before training on the harness's inputs (fer_bench.backbones.create_backbone):
        fold their normalisation into the stem, then turn the affines into batch norm
        calibrated on ``sample`` (training images, normalised), neck included."""
        self.fold_input_normalisation(mean, std)
        self.affines_to_batch_norm(sample)


def _cfg(in_chans: int) -> dict:
    # no mean/std: the harness's own statistics are folded into the stem
    return {"num_classes": 7, "input_size": (in_chans, INPUT_SIZE, INPUT_SIZE)}


@BACKBONES.register("dlib_face_resnet")
@register_model
def dlib_face_resnet(pretrained: bool = False, **kwargs: object) -> DlibFaceResNet:
    """dlib's face-recognition ResNet (29 convs, 5.6 M parameters), its weights from the
    installed face-recognition-models, convs rescaled for fine-tuning; 112 px and up."""
    from fer_bench.pretrained.dlib_resnet_file import converted_weights

    model = DlibFaceResNet(**kwargs)  # type: ignore[arg-type]
    model.load_dlib(converted_weights())
    model.rescale_convs()
    return model
