"""The rafdb-paper profile (ResNet-18 at 224 px RGB, batch 64, the official recipe) and
``--compile``: recorded in the run's record, outside the experiment's identity."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import timm
import torch
from typer.testing import CliRunner

import fer_bench.backbones as backbones
import fer_bench.training.engine as engine
from fer_bench.backbones import create_backbone
from fer_bench.cli import app
from fer_bench.profiles import load_profile, with_overrides
from fer_bench.records.identity import run_name
from fer_bench.sweeps.sweep import one_job

FERPLUS_224 = {"data": {"name": "ferplus", "root": "../shared/data/ferplus"}}


def test_paper_profile_is_the_official_setting():
    cfg = load_profile("rafdb-paper")
    assert (cfg.backbone, cfg.batch_size, cfg.epochs) == ("resnet18", 64, 60)
    assert (cfg.data.name, cfg.data.image_size, cfg.data.channels) == ("rafdb", 224, 3)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 2e-4, 1e-4)
    assert (cfg.optim.schedule, cfg.optim.gamma) == ("exponential", 0.9)
    assert cfg.aug.crop == 0 and not cfg.aug.tta_flip and not cfg.torch_compile


def test_paper_profile_resolves_on_ferplus_at_224_rgb_and_its_model_takes_the_batch():
    cfg = one_job("ce", "rafdb-paper", FERPLUS_224, {})
    assert (cfg.data.name, cfg.data.image_size, cfg.data.channels) == ("ferplus", 224, 3)
    net = create_backbone(cfg.backbone, 8, cfg.data.channels).eval()
    with torch.no_grad():
        logits = net(torch.zeros(2, 3, cfg.data.image_size, cfg.data.image_size))
    assert logits.shape == (2, 8)


def test_paper_backbone_takes_torchvision_resnet18_weights(tmp_path):
    """``--pretrained resnet18_msceleb.pth`` is a torchvision ResNet-18 state dict (keys
    under ``module.``, its own head): timm's resnet18 has the same keys."""
    source = timm.create_model("resnet18", num_classes=12)
    path = tmp_path / "face.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    net = create_backbone(load_profile("rafdb-paper").backbone, 7, 3, path)
    assert net.pretrained_load["missing"] == ["fc.bias", "fc.weight"]
    assert torch.equal(net.model.conv1.weight, source.conv1.weight)


def test_paper_profile_is_listed():
    output = " ".join(CliRunner().invoke(app, ["list", "profiles"]).output.split())
    assert "rafdb-paper" in output and "backbone=resnet18" in output


def test_compile_is_recorded_and_not_the_experiment(
    tmp_path, micro_config, micro_bundle, monkeypatch
):
    compiled = []

    def fake_compile(fn):  # the plumbing only: a real compile takes a minute on a CPU
        compiled.append(fn)
        return fn

    monkeypatch.setattr(backbones.torch, "compile", fake_compile)
    cfg = replace(micro_config, torch_compile=True, epochs=1)
    assert run_name(cfg) == run_name(replace(cfg, torch_compile=False))
    final = engine.train(cfg, tmp_path, progress=False, bundle=micro_bundle)
    assert final["status"] == "done" and len(compiled) == 1
    assert final["config"]["torch_compile"] is True
    stored = json.loads((engine.run_dir(cfg, tmp_path) / "config.json").read_text())
    assert stored["torch_compile"] is True and "torch_compile" not in stored["experiment"]
    # a method that builds a second network (co-teaching's peer) gets both compiled
    engine.train(replace(cfg, method="coteach"), tmp_path, progress=False, bundle=micro_bundle)
    assert len(compiled) == 3


def test_compile_option_sets_the_config():
    from fer_bench.commands.run import build_config

    assert build_config("ce", "synthetic-cpu", torch_compile=True).torch_compile is True
    assert build_config("ce", "synthetic-cpu").torch_compile is False


@pytest.mark.slow
def test_a_tiny_run_trains_with_a_real_compile(tmp_path, micro_config, micro_bundle):
    cfg = with_overrides(micro_config, {"torch_compile": True, "epochs": 1})
    final = engine.train(cfg, tmp_path, progress=False, bundle=micro_bundle)
    assert final["status"] == "done" and final["config"]["torch_compile"] is True
