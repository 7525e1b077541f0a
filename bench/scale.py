"""The data path at AffectNet's scale, on a synthetic set in AffectNet's own layout.

Writes ``training.csv`` / ``validation.csv`` and JPEGs (Manually_Annotated_*
folders, AffectNet's class proportions) and loads them through the same
``affectnet`` loader a user's copy goes through. Reports:
  * first decode time and images/s per core, with 1 worker and with N workers,
  * cached load time (memory-mapped: opening the entry, not reading it),
  * peak anonymous (private, not file-backed) memory while training on the
    memory-mapped set (RssAnon, polled every 20 ms), and its rise over the
    moment before training (model, optimizer and activations included); the
    epoch trains ``--train-n`` images spread evenly over the whole map (every
    batch gathers from all of it; a full 112 px epoch would take most of an
    hour on 2 CPU cores), all of them with ``--train-n 0``,
  * training images/s of the mmap path against the in-memory path on the first
    ``--compare-n`` training images (a size both paths hold).

    python bench/scale.py                          # 287,651 images of 112 px RGB
    python bench/scale.py --n 3000 --size 48       # a quick end-to-end check

Targets: cached load under 10 s; peak private memory while training under 4 GB
beyond the model; mmap images/s within 10 % of in-memory; decode scaling with cores.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from fer_bench.config import DataConfig, RunConfig
from fer_bench.data import load_dataset
from fer_bench.data.base import DatasetBundle, Split
from fer_bench.data.decoding import WORKERS_ENV
from fer_bench.data.placement import PATH_ENV
from fer_bench.profiles import load_profile, with_overrides
from fer_bench.records.layout import METRICS
from fer_bench.training import engine

AFFECTNET_TRAIN = 287_651  # manually annotated training images with an expression 0-7
# Training images per expression id 0-7 (neutral ... contempt) in AffectNet's training.csv.
AFFECTNET_COUNTS = np.array([74874, 134415, 25459, 14090, 6378, 3803, 24882, 3750])
VAL_SHARE = 4000 / AFFECTNET_TRAIN  # validation.csv holds 500 per class


def _write_images(root: Path, start: int, labels: np.ndarray, size: int) -> None:
    """Images start.. of the set: a class-tinted gradient with per-image noise (so JPEG has
    real work to do), each in one of 100 sub-folders as in AffectNet."""
    rng = np.random.default_rng(start)
    ramp = np.linspace(0, 1, size)[None, :, None]
    for j, label in enumerate(labels):
        tint = np.array([label * 30 % 256, 255 - label * 25, 120], dtype=np.float64)
        noise = rng.normal(0, 25, (size, size, 3))
        pixels = np.clip(ramp * tint + ramp.transpose(1, 0, 2) * 80 + noise, 0, 255)
        path = root / f"{(start + j) % 100}" / f"{start + j:07d}.jpg"
        Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90)


def make_dataset(root: Path, n: int, size: int, workers: int) -> float:
    """AffectNet's layout with ``n`` training and about n * 4000 / 287k validation images;
    kept for a second call with the same n and size. Seconds spent writing."""
    stamp = root / "scale.json"
    params = {"n": n, "size": size}
    if stamp.is_file() and json.loads(stamp.read_text()) == params:
        return 0.0
    shutil.rmtree(root, ignore_errors=True)
    images = root / "Manually_Annotated_Images"
    for d in range(100):
        (images / str(d)).mkdir(parents=True)
    n_val = max(50, round(n * VAL_SHARE))
    rng = np.random.default_rng(0)
    labels = rng.choice(8, n, p=AFFECTNET_COUNTS / AFFECTNET_COUNTS.sum())
    labels = np.concatenate([labels, np.arange(n_val) % 8])
    t = time.perf_counter()
    step = 2000
    with ProcessPoolExecutor(workers) as pool:
        for f in [
            pool.submit(_write_images, images, s, labels[s : s + step], size)
            for s in range(0, len(labels), step)
        ]:
            f.result()
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir()
    for name, rows in (("training.csv", range(n)), ("validation.csv", range(n, n + n_val))):
        with (lists / name).open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["subDirectory_filePath", "expression"])
            writer.writerows([f"{i % 100}/{i:07d}.jpg", labels[i]] for i in rows)
    stamp.write_text(json.dumps(params))
    return time.perf_counter() - t


def timed_load(
    cfg: DataConfig, cache: Path, workers: int, path: str
) -> tuple[DatasetBundle, float]:
    os.environ.update({"FER_BENCH_CACHE": str(cache), WORKERS_ENV: str(workers), PATH_ENV: path})
    t = time.perf_counter()
    bundle = load_dataset(cfg)
    return bundle, time.perf_counter() - t


def anonymous_bytes() -> int:
    """Resident private anonymous memory of this process (``RssAnon``; page cache of
    mapped files excluded). The same count as smaps_rollup's ``Anonymous``, read from
    the kernel's counters: smaps_rollup walks the page tables of the whole 10 GB map,
    and polled every 20 ms it halved the training speed it was watching."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon: line in /proc/self/status")


class PeakMemory:
    """Polls anonymous memory in a thread while the block runs."""

    def __init__(self, every_s: float = 0.02) -> None:
        self.every_s, self.peak, self._stop = every_s, 0, threading.Event()

    def __enter__(self) -> PeakMemory:
        self.before = anonymous_bytes()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, anonymous_bytes())
            time.sleep(self.every_s)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, anonymous_bytes())


def train_images_per_s(cfg: RunConfig, bundle: DatasetBundle, out: Path) -> tuple[float, str]:
    final = engine.train(cfg, out, progress=False, bundle=bundle)
    rows = [json.loads(x) for x in (engine.run_dir(cfg, out) / METRICS).open()]
    steps = final["labels"]["n_train"] // cfg.batch_size
    return steps * cfg.batch_size * len(rows) / sum(r["train_time_s"] for r in rows), final[
        "data_path"
    ]


def head(split: Split, k: int) -> Split:
    return split.subset(np.arange(min(k, len(split))))


def spread(split: Split, k: int) -> Split:
    """``k`` images evenly spaced over the split (all of it when k is 0 or too large)."""
    if not 0 < k < len(split):
        return split
    return split.subset(np.linspace(0, len(split) - 1, k).round().astype(np.int64))


def in_memory(split: Split) -> Split:
    return dataclasses.replace(split, images=split.images[:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=AFFECTNET_TRAIN, help="training images")
    p.add_argument("--size", type=int, default=112, help="image side in pixels")
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "fer_scale")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="N for the decode")
    p.add_argument("--train-n", type=int, default=20_000, help="images trained on the map (0: all)")
    p.add_argument("--compare-n", type=int, default=10_000, help="images for the speed race")
    p.add_argument("--eval-n", type=int, default=1000, help="val/test images per training run")
    p.add_argument("--backbone", default="fer_resnet10_w16")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, help="also write the report here")
    args = p.parse_args()

    root = args.workdir / "affectnet"
    written_s = make_dataset(root, args.n, args.size, args.workers)
    data_cfg = DataConfig(
        name="affectnet", root=str(root), image_size=args.size, channels=args.channels
    )
    report: dict = {
        "n_train_csv": args.n,
        "image": f"{args.size}x{args.size}x{args.channels}",
        "dataset_write_s": round(written_s, 1),
    }
    decode = {}
    for workers in sorted({1, args.workers}):
        cache = args.workdir / f"cache-w{workers}"
        shutil.rmtree(cache, ignore_errors=True)
        bundle, seconds = timed_load(data_cfg, cache, workers, "mmap")
        n = sum(len(s) for s in (bundle.train, bundle.val, bundle.test))
        decode[workers] = {
            "s": round(seconds, 2),
            "images_per_s": round(n / seconds),
            "images_per_s_per_core": round(n / seconds / workers),
        }
        if workers != args.workers:
            shutil.rmtree(cache)  # keep the disk to one copy of the decoded set
    report["first_decode"] = decode
    report["cache_gib"] = round(n * args.size**2 * args.channels / 2**30, 2)
    bundle, seconds = timed_load(data_cfg, args.workdir / f"cache-w{args.workers}", 1, "mmap")
    report["cached_load_mmap_s"] = round(seconds, 2)

    cfg = with_overrides(
        load_profile(),
        {
            "epochs": 1,
            "batch_size": args.batch_size,
            "backbone": args.backbone,
            "device": args.device,
            "data": {"name": "affectnet", "image_size": args.size, "channels": args.channels},
        },
    )
    small_eval = {s: head(getattr(bundle, s), args.eval_n) for s in ("val", "test")}
    full = DatasetBundle(
        bundle.name, bundle.class_names, spread(bundle.train, args.train_n), **small_eval
    )
    with tempfile.TemporaryDirectory() as out, PeakMemory() as memory:
        rate, _ = train_images_per_s(cfg, full, Path(out))
    report["train_mmap_full"] = {
        "n_train": len(full.train),
        "spread_over_map_of": len(bundle.train),
        "images_per_s": round(rate),
        "peak_anonymous_gib": round(memory.peak / 2**30, 3),
        "rise_over_before_training_gib": round((memory.peak - memory.before) / 2**30, 3),
    }
    race = {}
    mapped = DatasetBundle(
        bundle.name, bundle.class_names, head(bundle.train, args.compare_n), **small_eval
    )
    resident = DatasetBundle(
        bundle.name,
        bundle.class_names,
        in_memory(mapped.train),
        **{s: in_memory(v) for s, v in small_eval.items()},
    )
    for name, b in (("mmap", mapped), ("memory", resident)):
        with tempfile.TemporaryDirectory() as out:
            rate, path = train_images_per_s(cfg, b, Path(out))
        assert path == name, (path, name)
        race[name] = round(rate)
    race["n_train"] = len(mapped.train)
    race["mmap_over_memory"] = round(race["mmap"] / race["memory"], 3)
    report["train_race"] = race
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
