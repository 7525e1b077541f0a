"""Backbones through timm: our models in timm's registry, the method interface,
and loading local checkpoints with a report of what did not match."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from fer_bench.backbones import Backbone, create_backbone
from fer_bench.registry import BACKBONES, RegistryError


@pytest.mark.parametrize("name", ["fer_resnet10_w16", "fer_resnet10_w32", "fer_resnet18"])
def test_own_backbones_build_through_timm(name):
    assert name in BACKBONES.names() and timm.is_model(name)
    model = timm.create_model(name, num_classes=8, in_chans=1)
    assert model(torch.randn(2, 1, 48, 48)).shape == (2, 8)


def test_backbone_interface_parts_agree():
    net = create_backbone("fer_resnet10_w16", num_classes=7, in_chans=1).eval()
    x = torch.randn(3, 1, 48, 48)
    fmap = net.feature_map(x)
    assert fmap.ndim == 4 and fmap.shape[1] == net.num_features
    feat = net.pool(fmap)
    assert feat.shape == (3, net.num_features)
    torch.testing.assert_close(net.classifier(feat), net(x))


@pytest.mark.parametrize(
    ("name", "in_chans", "last_blocks"),
    [("fer_resnet10_w16", 1, 1), ("fer_resnet18", 1, 2), ("resnet18", 3, 2)],
)
def test_split_last_stage_shares_modules_and_gives_the_same_logits(name, in_chans, last_blocks):
    net = create_backbone(name, num_classes=7, in_chans=in_chans).eval()
    trunk, last = net.split_last_stage()
    assert len(last) == last_blocks
    x = torch.randn(2, in_chans, 32, 32)
    with torch.no_grad():
        assert torch.equal(last(trunk(x)), net.feature_map(x))
        assert torch.equal(net.classifier(net.pool(last(trunk(x)))), net(x))
    split = {id(p) for p in [*trunk.parameters(), *last.parameters()]}
    head = {id(p) for p in net.classifier.parameters()}
    assert split == {id(p) for p in net.parameters()} - head  # shared, nothing left out


def test_split_last_stage_refuses_an_unknown_architecture():
    with pytest.raises(TypeError, match="Linear"):
        Backbone(torch.nn.Linear(4, 7)).split_last_stage()


def test_timm_model_by_name():
    net = create_backbone("resnet18", num_classes=7, in_chans=3)
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_unknown_backbone_lists_names():
    with pytest.raises(RegistryError, match="fer_resnet10_w16"):
        create_backbone("no_such_net", 7, 1)


def test_torchvision_checkpoint_with_prefix_and_wrapper(tmp_path):
    source = torchvision.models.resnet18(num_classes=1000)
    state = {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}
    path = tmp_path / "tv.pth"
    torch.save(state, path)
    net = create_backbone("resnet18", num_classes=7, in_chans=3, pretrained=path)
    torch.testing.assert_close(net.model.conv1.weight, source.conv1.weight)
    assert net.classifier.out_features == 7  # the ImageNet head is dropped, not loaded


def test_own_checkpoint_roundtrip(tmp_path):
    a = create_backbone("fer_resnet10_w16", 7, 1)
    path = tmp_path / "a.pt"
    torch.save(a.model.state_dict(), path)
    b = create_backbone("fer_resnet10_w16", 7, 1, pretrained=path)
    torch.testing.assert_close(a.model.fc.weight, b.model.fc.weight)


def test_mismatched_checkpoint_is_an_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(create_backbone("fer_resnet10_w32", 7, 1).model.state_dict(), path)
    with pytest.raises(ValueError, match="does not match the backbone"):
        create_backbone("fer_resnet10_w16", 7, 1, pretrained=path)
