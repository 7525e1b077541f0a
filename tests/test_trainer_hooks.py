"""Trainer hooks: a method written here, with two networks, per-sample state and an
epoch-start pass over the training set, trains and resumes bit for bit without any
change to the engine; views come from a registry."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from resume_helpers import crash_after_save, rows_without_times, same_method_state

import fer_bench.training.engine as engine
from fer_bench.config import AugConfig
from fer_bench.methods.base import Batch, Method, StepOutput, TrainingImages
from fer_bench.records import layout
from fer_bench.registry import METHODS, VIEWS, RegistryError
from fer_bench.training.augment import BatchAugmenter


@METHODS.register("test-peers")
class Peers(Method):
    """Two networks; each epoch starts with a pass over the training set recording
    each sample's loss under the peer (per-sample state), and a step trains each
    network on the half of the batch its peer finds easiest."""

    second_view = "independent"
    score_name = "neg_peer_loss"
    calls: list[tuple[str, int]] = []

    def __init__(self, backbone, info, hparams) -> None:
        super().__init__(backbone, info, hparams)
        self.peer = info.new_backbone()
        self.register_buffer("peer_loss", torch.zeros(info.num_train))
        self.register_buffer("seen", torch.zeros(info.num_train, dtype=torch.long))

    def before_training(self, images: TrainingImages) -> None:
        Peers.calls.append(("before", len(images)))

    def on_epoch_start(self, epoch: int, images: TrainingImages) -> None:
        Peers.calls.append(("start", epoch))
        assert not torch.is_grad_enabled()
        self.peer.eval()
        for batch in images.batches(batch_size=50):
            loss = F.cross_entropy(self.peer(batch.x).float(), batch.y, reduction="none")
            self.peer_loss[batch.index] = loss
            self.seen[batch.index] += 1

    def on_epoch_end(self, epoch: int) -> None:
        Peers.calls.append(("end", epoch))

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        assert self.training and self.peer.training  # the engine restored training mode
        assert batch.x2 is not None and not torch.equal(batch.x, batch.x2)
        easy = self.peer_loss[batch.index].argsort()[: len(batch.y) // 2]
        own = F.cross_entropy(self.backbone(batch.x)[easy], batch.y[easy])
        peer = F.cross_entropy(self.peer(batch.x2)[easy], batch.y[easy])
        return StepOutput(loss=own + peer, scores=-self.peer_loss[batch.index])


def test_a_two_network_plugin_trains_through_its_hooks(micro_bundle, micro_config, tmp_path):
    cfg = replace(micro_config, method="test-peers")
    cfg.protocol.noise_rate = 0.3
    Peers.calls.clear()
    final = engine.train(cfg, tmp_path, progress=False, bundle=micro_bundle)
    assert final["status"] == "done"
    n = final["labels"]["n_train"]
    assert Peers.calls == [("before", n), ("start", 0), ("end", 0), ("start", 1), ("end", 1)]
    state = torch.load(engine.run_dir(cfg, tmp_path) / layout.CHECKPOINT)["method"]
    assert any(k.startswith("peer.") for k in state)  # the second network is checkpointed
    assert torch.equal(state["seen"], torch.full((n,), 2))  # each image read once per epoch
    backbone, peer = (
        {k.removeprefix(p): v for k, v in state.items() if k.startswith(p)}
        for p in ("backbone.", "peer.")
    )
    assert backbone.keys() == peer.keys()
    assert any(not torch.equal(backbone[k], peer[k]) for k in backbone)  # two draws
    rows = [json.loads(r) for r in (engine.run_dir(cfg, tmp_path) / "metrics.jsonl").open()]
    assert all(r["noise"]["score_name"] == "neg_peer_loss" for r in rows)


@pytest.mark.slow
def test_resume_of_a_two_network_method_is_bit_identical(
    micro_bundle, micro_config, tmp_path, monkeypatch
):
    cfg = replace(micro_config, method="test-peers", epochs=3)
    cfg.protocol.noise_rate = 0.3
    engine.train(cfg, tmp_path / "full", progress=False, bundle=micro_bundle)
    crash_after_save(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        engine.train(cfg, tmp_path / "cut", progress=False, bundle=micro_bundle)
    Peers.calls.clear()
    engine.train(cfg, tmp_path / "cut", progress=False, bundle=micro_bundle)
    assert ("before", 192) not in Peers.calls and Peers.calls[0] == ("start", 1)
    full, cut = (engine.run_dir(cfg, tmp_path / d) for d in ("full", "cut"))
    same_method_state(full, cut)
    assert rows_without_times(full) == rows_without_times(cut)


def _augmenter(cfg: AugConfig) -> BatchAugmenter:
    gen = torch.Generator().manual_seed(0)
    return BatchAugmenter(cfg, torch.tensor([0.5]), torch.tensor([0.25]), 16, gen)


def test_views_are_a_registry():
    assert {"mirror", "mirror_aug", "independent", "strong"} <= set(VIEWS.names())
    images = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8)
    x1, x2 = _augmenter(AugConfig(erase_p=0.0, noise_p=0.0)).train_views(images, "mirror")
    assert torch.equal(x2, x1.flip(-1))
    # strong: noise and erasing on every image, so no image equals its clean crop
    plain = AugConfig(pad=0, flip=False, erase_p=0.0, noise_p=0.0)
    _, strong = _augmenter(plain).train_views(images, "strong")
    _, calm = _augmenter(plain).train_views(images, "independent")
    assert all(not torch.equal(s, c) for s, c in zip(strong, calm, strict=True))
    with pytest.raises(RegistryError, match="unknown views 'sideways'"):
        _augmenter(plain).train_views(images, "sideways")


def test_a_registered_view_reaches_the_method():
    @VIEWS.register("test-negative")
    def negative(aug, images, geometry):
        return lambda x1: -x1

    x1, x2 = _augmenter(AugConfig()).train_views(
        torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8), "test-negative"
    )
    assert torch.equal(x2, -x1)
