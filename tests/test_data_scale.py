"""Large-dataset paths: the memory-mapped cache, its integrity, resumable decoding and the
class-balanced sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fer_bench.config import DataConfig, RunConfig
from fer_bench.data import decoding, load_dataset
from fer_bench.data import testing as fx
from fer_bench.data.base import DatasetBundle
from fer_bench.data.cache import ImageSink, read_entry, write_entry
from fer_bench.data.loaders.synthetic import CLASSES, generate_split
from fer_bench.data.mapped import MappedImages
from fer_bench.data.placement import PATH_ENV
from fer_bench.data.store import ImageStore, channel_stats
from fer_bench.profiles import with_overrides
from fer_bench.records.identity import run_hash
from fer_bench.training import engine, trainer
from fer_bench.training.sampling import epoch_order


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("FER_BENCH_CACHE", str(path))
    return path


def load_rafdb(root: Path) -> DatasetBundle:
    return load_dataset(DataConfig(name="rafdb", root=str(root), image_size=16))


def stored(bundle: DatasetBundle, folder: Path, path: str, monkeypatch) -> DatasetBundle:
    """``bundle`` written as a cache entry and read back on the given data path."""
    folder.mkdir()
    write_entry(bundle, ImageSink(folder))
    monkeypatch.setenv(PATH_ENV, path)
    return read_entry(folder)


def test_mmap_and_memory_give_identical_batches(tmp_path: Path, monkeypatch) -> None:
    root = fx.write_affectnet(tmp_path / "affectnet", n_train=66, n_test=22)
    cfg = DataConfig(name="affectnet", root=str(root), image_size=16, channels=3)
    monkeypatch.setenv(PATH_ENV, "memory")
    memory = load_dataset(cfg)
    monkeypatch.setenv(PATH_ENV, "mmap")
    mapped = load_dataset(cfg)
    assert isinstance(memory.train.images, np.ndarray)
    assert isinstance(mapped.train.images, MappedImages)
    assert mapped.image_shape == memory.image_shape == (3, 16, 16)
    order = torch.Generator().manual_seed(0)
    for split in ("train", "val", "test"):
        a, b = getattr(memory, split), getattr(mapped, split)
        np.testing.assert_array_equal(a.labels, b.labels)
        perm = torch.randperm(len(a), generator=order)
        sub = np.sort(perm[: len(a) // 2].numpy())
        stores = [ImageStore.for_training(s.subset(sub).images, "cpu") for s in (a, b)]
        assert [s.kind for s in stores] == ["memory", "mmap"]
        idx = torch.randperm(len(sub), generator=order)[:7]
        assert torch.equal(stores[0][idx], stores[1][idx])
        assert torch.equal(stores[0][2:9], stores[1][2:9])
        order_sub = torch.randperm(len(sub), generator=order)
        for (i, x), (j, y) in zip(
            *(s.batches(order_sub, 5, len(sub) // 5) for s in stores), strict=True
        ):
            assert torch.equal(i, j) and torch.equal(x, y) and torch.equal(x, stores[0][i])
    stats = [channel_stats(b.train.images) for b in (memory, mapped)]
    for x, y in zip(*stats, strict=True):
        torch.testing.assert_close(x, y)


def test_engine_metrics_match_on_both_paths(
    tiny_config: RunConfig, tmp_path: Path, monkeypatch
) -> None:
    small = DatasetBundle(
        name="synthetic",
        class_names=CLASSES,
        **{s: generate_split(96, seed) for seed, s in enumerate(("train", "val", "test"))},
    )
    cfg = with_overrides(tiny_config, {"epochs": 1, "batch_size": 32, "eval_batch_size": 40})
    # The two paths' normalisation statistics agree to float32 rounding (checked above); a
    # few ulps would still move a trained model's metrics, so both use the in-memory ones.
    monkeypatch.setattr(trainer, "channel_stats", lambda images: channel_stats(images[:]))
    finals = {}
    for path in ("memory", "mmap"):
        bundle = stored(small, tmp_path / f"entry-{path}", path, monkeypatch)
        finals[path] = engine.train(cfg, tmp_path / path, progress=False, bundle=bundle)
        assert finals[path]["data_path"] == path
    assert finals["memory"]["selection"] == finals["mmap"]["selection"]


def test_truncated_cache_is_rebuilt(tmp_path: Path, cache: Path) -> None:
    root = fx.write_rafdb(tmp_path / "raf")
    first = load_rafdb(root)
    (entry,) = cache.glob("rafdb-*")
    (images,) = entry.glob("images-*.npy")
    size = images.stat().st_size
    with images.open("r+b") as f:
        f.truncate(size - 100)
    with pytest.warns(UserWarning, match="ignoring unreadable cache entry"):
        again = load_rafdb(root)
    assert images.stat().st_size == size
    assert np.array_equal(again.train.images, first.train.images)


def test_bad_data_path_setting_fails_and_keeps_the_entry(
    tmp_path: Path, cache: Path, monkeypatch
) -> None:
    root = fx.write_rafdb(tmp_path / "raf")
    load_rafdb(root)
    monkeypatch.setenv(PATH_ENV, "disk")
    with pytest.raises(ValueError, match="must be memory, mmap or auto"):
        load_rafdb(root)
    assert len(list(cache.glob("rafdb-*/meta.json"))) == 1


def test_interrupted_decode_resumes(tmp_path: Path, cache: Path, monkeypatch) -> None:
    root = fx.write_rafdb(tmp_path / "raf")  # 28 images: 6 chunks of 5
    monkeypatch.setattr(decoding, "CHUNK", 5)
    monkeypatch.setenv(decoding.WORKERS_ENV, "1")
    real = decoding.decode_chunk
    calls: list[int] = []

    def interrupted(path, refs, start, size, channels):  # noqa: ANN001
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(start)
        return real(path, refs, start, size, channels)

    monkeypatch.setattr(decoding, "decode_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_rafdb(root)
    assert not list(cache.glob("rafdb-*"))  # no entry under the final name
    (partial,) = cache.glob(".rafdb-*.partial")
    assert len(list(partial.glob("*.chunks/*"))) == 2

    def counted(path, refs, start, size, channels):  # noqa: ANN001
        calls.append(start)
        return real(path, refs, start, size, channels)

    monkeypatch.setattr(decoding, "decode_chunk", counted)
    resumed = load_rafdb(root)
    assert calls == [0, 5, 10, 15, 20, 25]  # the second load decoded only chunks 3-6
    assert not partial.exists() and len(list(cache.glob("rafdb-*"))) == 1
    monkeypatch.setenv("FER_BENCH_CACHE", str(tmp_path / "fresh"))
    monkeypatch.setattr(decoding, "decode_chunk", real)
    fresh = load_rafdb(root)
    for split in ("train", "val", "test"):
        assert np.array_equal(getattr(resumed, split).images, getattr(fresh, split).images)


def test_balanced_sampler_frequencies() -> None:
    observed = torch.tensor([0] * 1000 + [1] * 100 + [2] * 10)
    gen = torch.Generator().manual_seed(0)
    draws = torch.cat([epoch_order("balanced", observed, gen) for _ in range(50)])
    assert len(draws) == 50 * len(observed)
    freq = torch.bincount(observed[draws], minlength=3).double() / len(draws)
    # binomial sd of each share is 0.002 here: 0.01 is five of them
    assert torch.allclose(freq, torch.full((3,), 1 / 3, dtype=torch.double), atol=0.01)


def test_uniform_sampler_is_the_engines_permutation() -> None:
    observed = torch.arange(97) % 3
    a, b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(epoch_order("uniform", observed, a), torch.randperm(97, generator=b))


def test_sampler_field_keeps_existing_hashes() -> None:
    cfg = RunConfig()
    legacy = cfg.to_dict()
    del legacy["sampler"]  # a config from before the field existed
    assert run_hash(RunConfig.from_dict(legacy)) == run_hash(cfg)
    balanced = RunConfig(sampler="balanced")
    assert run_hash(balanced) != run_hash(cfg)
    with pytest.raises(ValueError, match="sampler must be uniform or balanced"):
        RunConfig(sampler="weighted").validate()
