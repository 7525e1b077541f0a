"""The training engine: records, resume to identical numbers, divergence, selection."""

from __future__ import annotations

import json
from dataclasses import fields, replace

import numpy as np
import pytest
import torch
from resume_helpers import crash_after_save

import fer_bench.training.engine as engine
import fer_bench.training.precision as precision
from fer_bench.methods.base import Batch, Method, StepOutput
from fer_bench.records import checkpoint
from fer_bench.records.identity import run_hash
from fer_bench.registry import METHODS


def test_run_writes_complete_records(micro_run):
    cfg, root = micro_run
    out = engine.run_dir(cfg, root)
    final = json.loads((out / "final.json").read_text())
    assert final["status"] == "done"
    assert (out / "done").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["hash"] == run_hash(cfg) and config["method"] == "ce"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        assert set(row["test"]) >= {
            "acc",
            "mean_class_acc",
            "macro_f1",
            "top2",
            "confusion",
            "ece",
            "nll",
            "vote_ce",
            "vote_kl",
        }
        assert sum(map(sum, row["test"]["confusion"])) == 64
    assert final["labels"]["train_sha256"] and final["labels"]["n_train"] == 192
    assert final["environment"]["code"]["fer_bench"]
    assert set(final["selection"]) == {"val", "last", "oracle"}
    best_val = max(rows, key=lambda r: r["val"]["acc"])
    assert final["selection"]["val"]["epoch"] == best_val["epoch"]
    assert final["selection"]["last"]["test"] == rows[-1]["test"]


def test_finished_run_is_not_retrained(micro_run, micro_bundle):
    cfg, root = micro_run
    first = json.loads((engine.run_dir(cfg, root) / "final.json").read_text())
    again = engine.train(cfg, root, resume=True, progress=False, bundle=micro_bundle)
    assert again == first


def test_resume_reaches_the_same_numbers(micro_bundle, micro_config, tmp_path, monkeypatch):
    cfg = replace(micro_config, epochs=2)
    cfg.protocol.noise_rate = 0.2
    full = engine.train(cfg, tmp_path / "full", progress=False, bundle=micro_bundle)

    crash_after_save(monkeypatch)  # the process dies after epoch 1's checkpoint
    with pytest.raises(KeyboardInterrupt):
        engine.train(cfg, tmp_path / "cut", progress=False, bundle=micro_bundle)
    out = engine.run_dir(cfg, tmp_path / "cut")
    assert not (out / "done").exists() and (out / "checkpoint.pt").exists()
    # The wall time before the crash counts: pretend it was 1000 s.
    # Re-sealed with a fresh content digest, as a checkpoint edited behind its back is refused.
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    del state[checkpoint.DIGEST_KEY]
    state["elapsed_s"] = 1000.0
    torch.save(
        {**state, checkpoint.DIGEST_KEY: checkpoint.content_digest(state)}, out / "checkpoint.pt"
    )
    resumed = engine.train(cfg, tmp_path / "cut", resume=True, progress=False, bundle=micro_bundle)
    assert resumed["selection"] == full["selection"]
    assert resumed["labels"] == full["labels"]
    assert resumed["time_s"] > 1000


def test_bf16_without_native_support_trains_in_fp32(
    micro_bundle, micro_config, tmp_path, monkeypatch
):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        asked = engine.train(
            replace(micro_config, bf16=True, epochs=1),
            tmp_path,
            progress=False,
            bundle=micro_bundle,
        )
    fp32 = engine.train(
        replace(micro_config, bf16=False, epochs=1), tmp_path, progress=False, bundle=micro_bundle
    )
    assert asked["precision"] == fp32["precision"] == "fp32"
    assert asked["config"]["bf16"] is True  # the record keeps what was asked for
    assert asked["selection"] == fp32["selection"]


def test_resume_refuses_to_switch_precision(micro_bundle, micro_config, tmp_path, monkeypatch):
    cfg = replace(micro_config, bf16=True)
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    crash_after_save(monkeypatch)
    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning):
        engine.train(cfg, tmp_path, progress=False, bundle=micro_bundle)
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    with pytest.raises(
        RuntimeError, match="trained for 1 epochs in fp32; here it would go on in bf16"
    ):
        engine.train(cfg, tmp_path, resume=True, progress=False, bundle=micro_bundle)
    assert not (engine.run_dir(cfg, tmp_path) / "done").exists()


@METHODS.register("test-diverge")
class Diverge(Method):
    """Returns an infinite loss on its second step."""

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        self.calls = getattr(self, "calls", 0) + 1
        loss = torch.nn.functional.cross_entropy(self.backbone(batch.x), batch.y)
        return StepOutput(loss=loss * (float("inf") if self.calls == 2 else 1.0))


def test_divergent_run_fails_with_reason(micro_bundle, micro_config, tmp_path):
    cfg = replace(micro_config, method="test-diverge")
    final = engine.train(cfg, tmp_path, progress=False, bundle=micro_bundle)
    assert final["status"] == "failed"
    assert "non-finite loss" in final["reason"] and "step 2" in final["reason"]
    saved = json.loads((engine.run_dir(cfg, tmp_path) / "final.json").read_text())
    assert saved["status"] == "failed"


@METHODS.register("test-spy")
class Spy(Method):
    """Records the labels and indices it is shown."""

    shown: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __init__(self, backbone, info, hparams) -> None:
        super().__init__(backbone, info, hparams)
        Spy.init_labels = info.observed_labels.clone()

    def loss(self, batch: Batch, epoch: int) -> StepOutput:
        Spy.shown.append((batch.index.clone(), batch.y.clone()))
        return StepOutput(loss=torch.nn.functional.cross_entropy(self.backbone(batch.x), batch.y))


def test_methods_see_observed_labels_only(micro_bundle, micro_config, tmp_path):
    cfg = replace(micro_config, method="test-spy", epochs=1)
    cfg.protocol.noise_rate = 0.4
    Spy.shown.clear()
    engine.train(cfg, tmp_path, progress=False, bundle=micro_bundle)
    table = np.loadtxt(
        engine.run_dir(cfg, tmp_path) / "labels_train.csv",
        delimiter=",",
        skiprows=1,
        dtype=np.int64,
    )
    observed, clean = torch.from_numpy(table[:, 1]), torch.from_numpy(table[:, 2])
    assert (observed != clean).float().mean() == pytest.approx(0.4, abs=0.01)
    assert torch.equal(Spy.init_labels, observed)
    index = torch.cat([i for i, _ in Spy.shown])
    labels = torch.cat([y for _, y in Spy.shown])
    assert torch.equal(labels, observed[index])
    assert (labels != clean[index]).any()  # flipped samples arrive with their noisy label
    assert {f.name for f in fields(Batch)} == {"x", "y", "index", "x2"}
