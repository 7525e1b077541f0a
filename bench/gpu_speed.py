"""GPU training speed: packed small runs, the GPU profile and the papers' setting.

Writes one JSON file (``--out``) naming the device, with what was measured on it:
  * ``packed``: the ``ferplus-cpu`` model, K jobs at once on the device through the
    sweep's local executor (as ``sweep --jobs-per-device K``): wall time, jobs per
    minute end to end (worker start-up, data load and evaluation included) and the
    summed training images/s of the jobs' last epochs, for each K of ``--pack``;
  * ``ferplus-gpu`` and ``rafdb-paper`` (on FERPlus upsampled to 224 px RGB): one engine
    run each, timed on its last epoch: training images/s, training FLOPs per image
    (torch.utils.flop_counter), achieved FLOP/s and its fraction of the device's
    bf16 matmul peak, measured here;
  * ``official_loop``: the papers' setting as the official codes run it, on the same
    images (PNG files of the training split), model, batch, optimiser and precision:
    one PNG decoded per sample, resized and transformed by torchvision (flip,
    normalisation, erasing) in a DataLoader with workers; its images/s and, with the
    ``rafdb-paper`` stage, the engine's ratio to it.

The report is rewritten after every stage (``--stages`` picks them), so what a device
measured survives a later failure.

    python bench/gpu_speed.py --data-root ../shared/data/ferplus       # on a GPU
    python bench/gpu_speed.py --device cpu --quick --out /tmp/speed.json  # tiny check

``--quick`` replaces FERPlus by a few synthetic faces written as an image folder and
shrinks every stage (images, sizes, batches, steps) so that the whole script runs
in seconds on a CPU: its figures check the plumbing, they measure nothing of interest.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from fer_bench.backbones import create_backbone
from fer_bench.config import RunConfig
from fer_bench.data import load_dataset
from fer_bench.data.base import DatasetBundle
from fer_bench.data.loaders.synthetic import CLASSES, generate_split
from fer_bench.profiles import load_profile, with_overrides
from fer_bench.records.identity import run_name
from fer_bench.records.layout import FINAL
from fer_bench.sweeps.executors import Job, LocalExecutor
from fer_bench.training.benchmarking import (
    device_name,
    matmul_peak,
    synchronize,
    train_images_per_s,
    training_flops_per_image,
)
from fer_bench.training.engine import train
from fer_bench.training.precision import resolve_precision

PACKED, GPU, PAPER = "ferplus-cpu", "ferplus-gpu", "rafdb-paper"
PROFILES = (PACKED, GPU, PAPER)
STAGES = ("packed", GPU, PAPER, "official")


def stage_overrides(quick_root: Path | None, data_root: str | None) -> dict[str, dict]:
    """Each profile's overrides: FERPlus at ``data_root``, or the quick folder's faces
    with sizes and batches a CPU trains in seconds."""
    if quick_root is None:
        return {name: {"data": {"name": "ferplus", "root": data_root}} for name in PROFILES}
    folder = {"name": "folder", "root": str(quick_root)}
    small = {"eval_batch_size": 64}
    return {
        PACKED: {**small, "batch_size": 16, "data": folder},
        GPU: {**small, "batch_size": 16, "data": {**folder, "image_size": 32}, "aug": {"crop": 28}},
        PAPER: {**small, "batch_size": 8, "data": {**folder, "image_size": 32}},
    }


def write_quick_folder(root: Path, per_class: int = 16) -> None:
    """Synthetic 48 px faces as a ``folder`` dataset: train, val and test per class."""
    for split, n, seed in (("train", per_class, 1), ("val", 4, 2), ("test", 4, 3)):
        faces = generate_split(n * len(CLASSES), seed).images[:, 0]
        for i, face in enumerate(faces):
            folder = root / split / CLASSES[i % len(CLASSES)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(face).save(folder / f"{i}.png")


def packed(base: RunConfig, device: str, jobs: int, out: Path) -> dict[str, Any]:
    """``jobs`` runs of ``base`` (seeds 0..jobs-1) at once, each worker on ``device``."""
    configs = [with_overrides(base, {"seed": seed}) for seed in range(jobs)]
    executor = LocalExecutor(devices=[device] * jobs)
    started = time.perf_counter()
    results = list(executor.run([Job(c, out, run_name(c)) for c in configs]))
    wall = time.perf_counter() - started
    failed = [r for r in results if r.status != "done"]
    if failed:
        raise RuntimeError(f"packed job {failed[0].name} failed: {failed[0].reason}")
    rates = [train_images_per_s(c, _final(c, out), out) for c in configs]
    return {
        "jobs": jobs,
        "epochs": base.epochs,
        "wall_s": wall,
        "jobs_per_minute": 60 * jobs / wall,
        "train_images_per_s_sum": sum(rates),
        "train_images_per_s_per_job": rates,
    }


def _final(cfg: RunConfig, out: Path) -> dict:
    return json.loads((out / run_name(cfg) / FINAL).read_text())


def net_for(cfg: RunConfig, num_classes: int) -> tuple[torch.nn.Module, int]:
    """The profile's backbone on its device and memory layout, and its input side."""
    net = create_backbone(cfg.backbone, num_classes, cfg.data.channels).to(cfg.device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net, cfg.aug.crop or cfg.data.image_size


def flops_per_image(cfg: RunConfig, num_classes: int) -> float:
    net, side = net_for(cfg, num_classes)
    x = torch.randn(cfg.batch_size, cfg.data.channels, side, side, device=cfg.device)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (cfg.batch_size,), device=cfg.device)
    return training_flops_per_image(net, x, y)


def engine_speed(cfg: RunConfig, peak_bf16: float, out: Path) -> dict[str, Any]:
    """One engine run of ``cfg``: its last epoch's training images/s and FLOP/s."""
    final = train(cfg, out, progress=False)
    if final["status"] != "done":
        raise RuntimeError(f"{cfg.backbone} run failed: {final['reason']}")
    rate = train_images_per_s(cfg, final, out)
    flops = flops_per_image(cfg, len(final["class_names"]))
    return {
        "backbone": cfg.backbone,
        "input": [cfg.data.channels, cfg.aug.crop or cfg.data.image_size],
        "batch_size": cfg.batch_size,
        "precision": resolve_precision(cfg.bf16, cfg.device),
        "n_train": final["labels"]["n_train"],
        "train_images_per_s": rate,
        "train_gflops_per_image": flops / 1e9,
        "achieved_tflops": flops * rate / 1e12,
        "fraction_of_bf16_peak": flops * rate / peak_bf16,
    }


class DecodedPerSample(Dataset):
    """The official codes' data path: one image file decoded and transformed per item."""

    def __init__(self, files: list[Path], labels: np.ndarray, transform: Any) -> None:
        self.files, self.labels, self.transform = files, labels, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = Image.open(self.files[i]).convert("RGB")
        return self.transform(image), int(self.labels[i])


def official_transform(side: int) -> Any:
    """Training transforms in the official codes' torchvision style: resize to the input
    side, a mirror, ImageNet normalisation, random erasing up to a quarter."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize((side, side)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
            transforms.RandomErasing(scale=(0.02, 0.25)),
        ]
    )


def write_pngs(images: np.ndarray, folder: Path) -> list[Path]:
    """The training images as PNG files, as a dataset ships them."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, image in enumerate(images):
        files.append(folder / f"{i}.png")
        Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(
            files[-1]
        )
    return files


def official_loop(
    cfg: RunConfig,
    files: list[Path],
    labels: np.ndarray,
    num_classes: int,
    workers: int,
    steps: int,
) -> dict[str, Any]:
    """Training images/s of the official-style loop: ``steps`` timed after two warm-up."""
    net, side = net_for(cfg, num_classes)
    data = DecodedPerSample(files, labels, official_transform(side))
    cuda = torch.device(cfg.device).type == "cuda"
    loader = DataLoader(
        data,
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=cuda,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    optimizer = torch.optim.Adam(
        net.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    bf16 = resolve_precision(cfg.bf16, cfg.device) == "bf16"
    warmup = 2
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    for i, (x, y) in enumerate(itertools.islice(batches, warmup + steps)):
        if i == warmup:
            synchronize(cfg.device)
            started = time.perf_counter()
        x, y = x.to(cfg.device, non_blocking=True), y.to(cfg.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(cfg.device)
    seconds = time.perf_counter() - started
    return {
        "workers": workers,
        "steps": steps,
        "files": len(files),
        "train_images_per_s": steps * cfg.batch_size / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--data-root", default="../shared/data/ferplus")
    parser.add_argument("--quick", action="store_true", help="tiny synthetic sizes (CPU check)")
    parser.add_argument("--stages", default=",".join(STAGES), help="a comma list of these")
    parser.add_argument("--pack", default=None, help="jobs at once, e.g. 1,8 (default 8; quick 2)")
    parser.add_argument("--epochs", type=int, default=2, help="engine epochs; the last is timed")
    parser.add_argument("--official-workers", type=int, default=8, help="DataLoader workers")
    parser.add_argument("--official-steps", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench/gpu_speed.json"))
    args = parser.parse_args()
    stages = args.stages.split(",")
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        quick_root = Path(tmp) / "faces" if args.quick else None
        if quick_root is not None:
            write_quick_folder(quick_root)
        for report in measure(args, stages, Path(tmp), quick_root):
            # Written after every stage: what a device measured survives a later failure.
            args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


def measure(
    args: argparse.Namespace, stages: list[str], tmp: Path, quick_root: Path | None
) -> Iterator[dict[str, Any]]:
    """The report, yielded again after each stage it measures."""
    overrides = stage_overrides(quick_root, args.data_root)
    common = {"device": args.device, "epochs": 1 if args.quick else args.epochs}
    configs = {
        name: with_overrides(with_overrides(load_profile(name), overrides[name]), common)
        for name in PROFILES
    }
    # The faces at their own size: decoded (and cached) once before the packed workers
    # read them, and the official loop's PNG files.
    bundle = load_dataset(configs[PACKED].data)
    n, reps = (256, 2) if args.quick else (8192, 20)
    peak = matmul_peak(torch.bfloat16, args.device, n, reps)
    report: dict[str, Any] = {
        "device": args.device,
        "device_name": device_name(args.device),
        "quick": args.quick,
        "torch": torch.__version__,
        "bf16_matmul_peak_tflops": peak / 1e12,
    }
    yield report
    if "packed" in stages:
        pack = [int(k) for k in (args.pack or ("2" if args.quick else "8")).split(",")]
        report["packed"] = []
        for k in pack:
            report["packed"].append(packed(configs[PACKED], args.device, k, tmp / f"pack{k}"))
            yield report
    for name in (GPU, PAPER):
        if name in stages:
            report[name] = engine_speed(configs[name], peak, tmp / name)
            yield report
    if "official" in stages:
        report["official_loop"] = official_speed(args, configs[PAPER], bundle, tmp / "png")
        if PAPER in report:
            engine = report[PAPER]["train_images_per_s"]
            report["official_loop"]["engine_ratio"] = (
                engine / report["official_loop"]["train_images_per_s"]
            )
        yield report


def official_speed(
    args: argparse.Namespace, paper: RunConfig, bundle: DatasetBundle, folder: Path
) -> dict[str, Any]:
    """The official-style loop in the papers' setting on PNG files of the training faces."""
    source = bundle.train
    steps = 3 if args.quick else args.official_steps
    kept = min(len(source), paper.batch_size * (steps + 2))
    files = write_pngs(source.images[:kept], folder)
    workers = 1 if args.quick else args.official_workers
    return official_loop(paper, files, source.labels[:kept], bundle.num_classes, workers, steps)


if __name__ == "__main__":
    main()
