"""Does ``--compile`` pay on this machine? Bare training steps, eager against compiled.

For a profile's backbone, input and batch size: seconds per forward+backward+AdamW
step on a fixed tensor, eagerly and with the feature extractor ``torch.compile``d as
the engine compiles it (``fer_bench.backbones.compile_backbone``), the seconds the
first compiled steps cost (compilation), and the steps after which compiling has
paid for itself against the steps one run of the profile takes on ``--train-images``.

    python bench/compile_gain.py                          # ferplus-cpu, on the CPU
    python bench/compile_gain.py --profile ferplus-gpu --device cuda
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fer_bench.backbones import compile_backbone, create_backbone
from fer_bench.profiles import load_profile
from fer_bench.training.benchmarking import device_name, synchronize


def step_time(net: torch.nn.Module, cfg, device: str, steps: int) -> tuple[float, float]:
    """(seconds of the first 3 steps, seconds per step after them)."""
    size, chans = cfg.aug.crop or cfg.data.image_size, 1
    x = torch.randn(cfg.batch_size, chans, size, size, device=device)
    y = torch.randint(0, 8, (cfg.batch_size,), device=device)
    net = net.to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    start = time.perf_counter()
    for _ in range(3):
        step()
    synchronize(device)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return first, (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ferplus-cpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each")
    parser.add_argument("--train-images", type=int, default=7918, help="one run's images")
    args = parser.parse_args()
    cfg = load_profile(args.profile)
    torch.manual_seed(0)
    eager_net = create_backbone(cfg.backbone, 8, 1)
    eager_first, eager = step_time(eager_net, cfg, args.device, args.steps)
    net = create_backbone(cfg.backbone, 8, 1)
    compile_backbone(net)
    compiled_first, compiled = step_time(net, cfg, args.device, args.steps)
    run_steps = cfg.epochs * (args.train_images // cfg.batch_size)
    saved = eager - compiled
    compile_cost = compiled_first - eager_first
    report = {
        "device": device_name(args.device),
        "profile": args.profile,
        "threads": torch.get_num_threads(),
        "eager_step_s": eager,
        "compiled_step_s": compiled,
        "speedup": eager / compiled,
        "compile_s": compile_cost,
        "break_even_steps": compile_cost / saved if saved > 0 else None,
        "steps_per_run": run_steps,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
