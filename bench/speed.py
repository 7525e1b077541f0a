"""Training speed of a profile on this machine.

Prints, for the profile's backbone, input and batch size:
  * training images/s of CE and of each two-view method (full engine epochs),
  * the ratio of an engine epoch's training wall time to the bare
    forward/backward/step time of the same model on pre-made tensors
    (data and engine overhead; target <= 1.15), with and without evaluation,
  * training FLOPs per image and the achieved FLOP/s as a fraction of this
    machine's measured fp32 (and bf16) matmul peak.

    python bench/speed.py            # ferplus-cpu if its data is found, else synthetic-cpu
    python bench/speed.py --profile ferplus-cpu --data-root /path/to/ferplus --epochs 1
    python bench/speed.py --profile ferplus-face --methods ce,eac,nla   # needs ".[face]"
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from fer_bench.backbones import TrainingInputs, calibration_sample, create_backbone
from fer_bench.data import load_dataset
from fer_bench.data.store import channel_stats
from fer_bench.profiles import load_profile, with_overrides
from fer_bench.records.environment import cpu_model
from fer_bench.training.benchmarking import (
    last_epoch,
    matmul_peak,
    train_images_per_s,
    training_flops_per_image,
)
from fer_bench.training.engine import train
from fer_bench.training.precision import native_bf16, resolve_precision


def bare_step_time(
    cfg, bf16: bool, in_chans: int, num_classes: int, steps: int, inputs: TrainingInputs
) -> tuple[float, float]:
    """Seconds per step of forward+backward+AdamW on a fixed tensor; training FLOPs per image.
    ``inputs``: the training set's, for a backbone that adapts to them (dlib_face_resnet's
    batch norm), so the bare network is the one the engine trains."""
    net = create_backbone(cfg.backbone, num_classes, in_chans, inputs=inputs)
    size = cfg.aug.crop or cfg.data.image_size
    x = torch.randn(cfg.batch_size, in_chans, size, size)
    y = torch.randint(0, num_classes, (cfg.batch_size,))
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    flops_per_image = training_flops_per_image(net, x, y)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps, flops_per_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="default: ferplus-cpu, if its data loads")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--methods", default="ce,eac,nla", help="CE first; two-view methods after")
    parser.add_argument("--epochs", type=int, default=2, help="engine epochs; the last is timed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    profile = args.profile or "ferplus-cpu"
    base = load_profile(profile)
    base = with_overrides(base, {"data": {"root": args.data_root}, "epochs": args.epochs})
    try:
        bundle = load_dataset(base.data)
    except FileNotFoundError as err:
        if args.profile:
            raise
        print(f"ferplus-cpu: {err}; measuring the synthetic-cpu profile instead")
        profile = "synthetic-cpu"
        base = with_overrides(load_profile(profile), {"epochs": args.epochs})
        bundle = load_dataset(base.data)
    precision = resolve_precision(base.bf16, "cpu")  # as the engine runs it here
    peak32 = matmul_peak(torch.float32)
    # Emulated bf16 has no peak worth the minutes its matmuls take.
    peak16 = matmul_peak(torch.bfloat16) if native_bf16("cpu") else None
    report: dict = {
        "profile": profile,
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "precision": precision,
        "matmul_peak_gflops": {"fp32": peak32 / 1e9, "bf16": peak16 and peak16 / 1e9},
        "methods": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            cfg = with_overrides(base, {"method": method})
            final = train(cfg, Path(tmp), progress=False, bundle=bundle)
            last = last_epoch(cfg, Path(tmp))
            report["methods"][method] = {
                "train_images_per_s": train_images_per_s(cfg, final, Path(tmp)),
                "epoch_train_s": last["train_time_s"],
                "epoch_with_eval_s": last["time_s"],
            }
    steps = bundle.train.images.shape[0] // base.batch_size
    mean, std = channel_stats(bundle.train.images)
    inputs = TrainingInputs(mean, std, calibration_sample(bundle.train.images, mean, std))
    step_s, flops = bare_step_time(
        base,
        precision == "bf16",
        bundle.image_shape[0],
        bundle.num_classes,
        steps=min(steps, 60),
        inputs=inputs,
    )
    ce = report["methods"][args.methods.split(",")[0]]
    bare_epoch = step_s * steps
    achieved = flops * ce["train_images_per_s"]
    report.update(
        bare_epoch_s=bare_epoch,
        bare_images_per_s=base.batch_size / step_s,
        overhead_ratio_train=ce["epoch_train_s"] / bare_epoch,
        overhead_ratio_with_eval=ce["epoch_with_eval_s"] / bare_epoch,
        train_gflops_per_image=flops / 1e9,
        achieved_gflops=achieved / 1e9,
        fraction_of_fp32_peak=achieved / peak32,
        fraction_of_bf16_peak=peak16 and achieved / peak16,
    )
    for row in report["methods"].values():
        row["epoch_time_vs_ce"] = row["epoch_train_s"] / ce["epoch_train_s"]
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(
        f"profile {profile}, {report['threads']} threads, {report['precision']}, on {report['cpu']}"
    )
    bf16_peak = f"{peak16 / 1e9:.1f} GFLOP/s" if peak16 else "not native"
    print(f"matmul peak: fp32 {peak32 / 1e9:.1f} GFLOP/s, bf16 {bf16_peak}")
    width = max(map(len, report["methods"]))
    for method, row in report["methods"].items():
        print(
            f"  {method:{width}s} {row['train_images_per_s']:8.0f} img/s"
            f"  epoch {row['epoch_train_s']:.1f} s ({row['epoch_time_vs_ce']:.2f}x CE),"
            f" with eval {row['epoch_with_eval_s']:.1f} s"
        )
    print(f"bare fwd/bwd: {report['bare_images_per_s']:.0f} img/s, epoch {bare_epoch:.1f} s")
    print(
        f"engine/bare ratio: {report['overhead_ratio_train']:.3f} (train loop), "
        f"{report['overhead_ratio_with_eval']:.3f} (with val+test evaluation)"
    )
    of_bf16 = f", {100 * achieved / peak16:.1f}% of bf16 peak" if peak16 else ""
    print(
        f"training FLOPs/image {flops / 1e9:.3f} GFLOP; achieved {achieved / 1e9:.1f} GFLOP/s = "
        f"{100 * achieved / peak32:.1f}% of fp32 peak{of_bf16}"
    )


if __name__ == "__main__":
    main()
