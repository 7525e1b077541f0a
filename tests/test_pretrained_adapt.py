"""An RGB torchvision ResNet-18 checkpoint under 'state_dict' (the format of
resnet18_msceleb.pth, which NLA, RUL and EAC load) into a grayscale backbone."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from fer_bench.backbones import create_backbone, load_pretrained


def _checkpoint(tmp_path, prefix: str = "") -> tuple[dict, object]:
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": {prefix + k: v for k, v in state.items()}}, path)
    return state, path


@pytest.mark.parametrize("prefix", ["", "module."])
def test_rgb_checkpoint_into_one_channel_resnet18(tmp_path, prefix):
    state, path = _checkpoint(tmp_path, prefix)
    net = create_backbone("resnet18", num_classes=7, in_chans=1, pretrained=path)
    m = net.model
    assert m.conv1.weight.shape == (64, 1, 7, 7)
    assert torch.equal(m.conv1.weight.detach(), state["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(m.layer3[1].conv2.weight.detach(), state["layer3.1.conv2.weight"])
    assert torch.equal(
        m.layer2[0].downsample[0].weight.detach(), state["layer2.0.downsample.0.weight"]
    )
    assert torch.equal(m.bn1.running_var, state["bn1.running_var"])
    assert net.pretrained_load == {
        "missing": ["fc.bias", "fc.weight"],
        "unexpected": [],
        "adapted": ["conv1.weight"],
    }
    assert net(torch.zeros(2, 1, 48, 48)).shape == (2, 7)


def test_load_pretrained_reports_the_adaptation(tmp_path):
    state, path = _checkpoint(tmp_path)
    model = timm.create_model("resnet18", num_classes=7, in_chans=1)
    report = load_pretrained(model, path)
    assert report["adapted"] == ["conv1.weight"]
    rgb = timm.create_model("resnet18", num_classes=7, in_chans=3)
    assert load_pretrained(rgb, path)["adapted"] == []
    assert torch.equal(rgb.conv1.weight.detach(), state["conv1.weight"])


def test_without_pretrained_nothing_is_reported():
    assert create_backbone("resnet18", 7, 1).pretrained_load is None


def test_torchvision_checkpoint_does_not_fit_fer_resnet18(tmp_path):
    _, path = _checkpoint(tmp_path)  # 7x7 stem, torchvision names: another layout
    with pytest.raises(ValueError, match="does not match the backbone"):
        create_backbone("fer_resnet18", 7, 1, pretrained=path)


def test_first_conv_of_another_width_is_still_an_error(tmp_path):
    state, path = _checkpoint(tmp_path)
    state["conv1.weight"] = torch.zeros(32, 3, 7, 7)
    torch.save({"state_dict": state}, path)
    with pytest.raises(ValueError, match="1 with other shapes"):
        create_backbone("resnet18", 7, 1, pretrained=path)
