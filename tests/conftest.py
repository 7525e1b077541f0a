"""Shared fixtures: a small synthetic dataset and a fast run config."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import fer_bench.training.engine as engine
from fer_bench.config import RunConfig
from fer_bench.data.base import DatasetBundle
from fer_bench.data.testing import synthetic_bundle
from fer_bench.profiles import load_profile, with_overrides

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_bundle() -> DatasetBundle:
    """600/200/300 synthetic faces: enough to learn something in a few seconds."""
    return synthetic_bundle(600, 200, 300)


TINY = {"epochs": 2, "batch_size": 64, "eval_batch_size": 256}


@pytest.fixture
def tiny_config() -> RunConfig:
    return with_overrides(load_profile(), TINY)


@pytest.fixture(scope="session")
def micro_bundle() -> DatasetBundle:
    """192/64/64 synthetic faces at 24 px: for tests of run mechanics, not of learning."""
    return synthetic_bundle(192, 64, 64, size=24)


def _micro(cfg: RunConfig) -> RunConfig:
    cfg = replace(cfg, epochs=2, batch_size=64, bf16=False)
    cfg.data.image_size = 24
    return cfg


@pytest.fixture
def micro_config(tiny_config: RunConfig) -> RunConfig:
    return _micro(tiny_config)


@pytest.fixture(scope="session")
def micro_run(micro_bundle, tmp_path_factory) -> tuple[RunConfig, Path]:
    """(config, results root) of one finished CE micro run for the whole session: tests
    that read a finished run, or copy it to alter it, share this training."""
    cfg = _micro(with_overrides(load_profile(), TINY))
    root = tmp_path_factory.mktemp("micro-run")
    engine.train(cfg, root, progress=False, bundle=micro_bundle)
    return cfg, root


@pytest.fixture(scope="session")
def ferplus_root() -> Path:
    """The real FERPlus copy: $FER_BENCH_FERPLUS or ../shared/data/ferplus beside the repo.

    Tests that need it skip, with the path they looked at, where it is absent."""
    env = os.environ.get("FER_BENCH_FERPLUS")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared/data/ferplus"
    if not (root / "FER2013Train" / "label.csv").is_file():
        pytest.skip(f"real FERPlus copy not found at {root} (set FER_BENCH_FERPLUS)")
    return root
