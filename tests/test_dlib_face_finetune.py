"""dlib_face_resnet fine-tunes: on real FERPlus faces, a short fine-tune of the
pretrained network (the profile's optimiser and learning rate) beats the same network
trained from random initialisation with the same budget, by a wide margin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_bench.backbones import Backbone, TrainingInputs, calibration_sample, create_backbone
from fer_bench.config import DataConfig
from fer_bench.data import load_dataset
from fer_bench.pretrained.dlib_face_resnet import DlibFaceResNet
from fer_bench.pretrained.dlib_resnet_file import model_file

pytestmark = [pytest.mark.slow, pytest.mark.ferplus]
N_TRAIN, N_TEST, BATCH = 2048, 512, 64


def fine_tune(net: Backbone, x: torch.Tensor, y: torch.Tensor) -> None:
    """One epoch of Adam (lr 1e-4, weight decay 1e-4: ferplus-face's), random mirror."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=1e-4)
    net.train()
    order = torch.randperm(len(y), generator=gen)
    for start in range(0, len(y) - BATCH + 1, BATCH):
        idx = order[start : start + BATCH]
        flip = (torch.rand(BATCH, generator=gen) < 0.5).view(-1, 1, 1, 1)
        batch = torch.where(flip, x[idx].flip(-1), x[idx])
        loss = F.cross_entropy(net(batch), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def accuracy(net: Backbone, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()


def test_fine_tuning_beats_the_same_network_from_random_init(ferplus_root: Path) -> None:
    try:
        model_file()
    except ImportError as e:
        pytest.skip(str(e))
    data = load_dataset(
        DataConfig(name="ferplus", root=str(ferplus_root), label_mode="majority", image_size=112)
    )
    rng = np.random.default_rng(0)
    train = np.sort(rng.choice(len(data.train.labels), N_TRAIN, replace=False))
    test = np.sort(rng.choice(len(data.test.labels), N_TEST, replace=False))
    pixels = torch.as_tensor(np.asarray(data.train.images[train])).float() / 255
    mean, std = pixels.mean((0, 2, 3)), pixels.std((0, 2, 3))

    def normalised(split, index) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(np.asarray(split.images[index])).float() / 255
        return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1), torch.as_tensor(
            split.labels[index]
        )

    (x, y), (x_test, y_test) = normalised(data.train, train), normalised(data.test, test)
    k = len(data.class_names)
    torch.manual_seed(0)
    inputs = TrainingInputs(mean, std, calibration_sample(data.train.images[train], mean, std))
    pretrained = create_backbone("dlib_face_resnet", k, 1, inputs=inputs)
    torch.manual_seed(0)
    scratch = Backbone(DlibFaceResNet(num_classes=k, in_chans=1, affine=False))
    results = {}
    for name, net in (("pretrained", pretrained), ("scratch", scratch)):
        fine_tune(net, x, y)
        results[name] = accuracy(net, x_test, y_test)
    majority = (y_test == torch.bincount(y).argmax()).float().mean().item()
    assert results["pretrained"] > max(results["scratch"], majority) + 0.1, (results, majority)
