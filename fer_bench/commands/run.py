"""``fer-bench run METHOD``: train one method under one protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fer_bench.commands.common import console, fail, one_line_errors
from fer_bench.config import RunConfig
from fer_bench.profiles import (
    DEFAULT_PROFILE,
    load_profile,
    option_overrides,
    parse_key_values,
    with_overrides,
)
from fer_bench.recipes import apply_recipe
from fer_bench.registry import load_plugin_file

Opt = typer.Option


def build_config(
    method: str, profile: str = DEFAULT_PROFILE, sets: list[str] | None = None, **options: object
) -> RunConfig:
    """A profile, the method's official recipe if ``--recipe official``, then the command
    line's explicit options on top (None = not given; ``--set`` joins the recipe's)."""
    overrides = option_overrides({**options, "method": method})
    base = with_overrides(
        load_profile(profile),
        {"method": method, "recipe": overrides["recipe"], "plugin": overrides["plugin"]},
    )
    cfg = apply_recipe(base)
    overrides["hparams"] = {**cfg.hparams, **parse_key_values(sets)} if sets else None
    cfg = with_overrides(cfg, overrides)
    cfg.validate()
    return cfg


def check_resume(cfg: RunConfig, resume: Path) -> Path:
    """The run directory's root, after checking its config equals the command's."""
    cfg_path = resume / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"--resume {resume}: no config.json (not a run directory)")
    stored = json.loads(cfg_path.read_text())
    stored.pop("hash", None)
    # Fields added since the run started are compared at their defaults.
    stored = RunConfig.from_dict(stored).to_dict()
    diff = sorted(_diff(stored, cfg.to_dict()))
    if diff:
        raise ValueError(
            f"--resume {resume}: its config differs from the command in {', '.join(diff)}"
        )
    return resume.parent


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = set(a) | set(b)
    out = []
    for k in keys:
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict) and k != "hparams":
            out += _diff(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.append(f"{prefix}{k}")
    return out


def summary_table(final: dict) -> Table:
    table = Table(title=f"{final['method']} on {final['dataset']}  [{final['status']}]")
    table.add_column("selection")
    table.add_column("epoch", justify="right")
    for col in ("acc", "mean class acc", "macro-F1"):
        table.add_column(f"test {col}", justify="right")
    for rule, sel in (final.get("selection") or {}).items():
        t = sel["test"]
        table.add_row(
            rule,
            str(sel["epoch"]),
            f"{t['acc']:.4f}",
            f"{t['mean_class_acc']:.4f}",
            f"{t['macro_f1']:.4f}",
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command()
    @one_line_errors
    def run(
        method: Annotated[
            str, typer.Argument(help="registered method name (fer-bench list methods)")
        ],
        profile: Annotated[
            str, Opt(help="named base config (fer-bench list profiles)")
        ] = DEFAULT_PROFILE,
        dataset: Annotated[str | None, Opt(help="dataset name, or hf:PATH")] = None,
        data_root: Annotated[str | None, Opt(help="dataset folder")] = None,
        label_mode: Annotated[str | None, Opt(help="dataset label rule, e.g. majority")] = None,
        image_size: Annotated[int | None, Opt()] = None,
        epochs: Annotated[int | None, Opt()] = None,
        batch_size: Annotated[int | None, Opt()] = None,
        lr: Annotated[float | None, Opt()] = None,
        optimizer: Annotated[str | None, Opt(help="adam | adamw | sgd")] = None,
        schedule: Annotated[
            str | None, Opt(help="onecycle | cosine | exponential | constant")
        ] = None,
        weight_decay: Annotated[float | None, Opt()] = None,
        backbone: Annotated[
            str | None, Opt(help="fer-bench list backbones, or any timm name")
        ] = None,
        pretrained: Annotated[str | None, Opt(help="local checkpoint to start from")] = None,
        seed: Annotated[int | None, Opt(help="training seed")] = None,
        device: Annotated[str | None, Opt(help="cpu | cuda")] = None,
        noise: Annotated[float | None, Opt(help="noise rate in [0, 1)")] = None,
        noise_type: Annotated[
            str | None, Opt(help="noise protocol (default symmetric), or file:PATH")
        ] = None,
        noise_seed: Annotated[int | None, Opt(help="protocol seed, independent of --seed")] = None,
        imbalance: Annotated[float | None, Opt(help="imbalance factor n_max/n_min")] = None,
        imbalance_type: Annotated[str | None, Opt(help="exp | step")] = None,
        set_: Annotated[
            list[str] | None, Opt("--set", help="method hyperparameter key=value")
        ] = None,
        tta_flip: Annotated[bool | None, Opt("--tta-flip/--no-tta-flip")] = None,
        bf16: Annotated[bool | None, Opt("--bf16/--no-bf16")] = None,
        channels_last: Annotated[bool | None, Opt("--channels-last/--no-channels-last")] = None,
        plugin: Annotated[str | None, Opt(help="Python file registering extra methods")] = None,
        sampler: Annotated[
            str | None, Opt(help="uniform | balanced (1/count of the observed label)")
        ] = None,
        out: Annotated[Path, Opt(help="root of run directories")] = Path("runs"),
        resume: Annotated[Path | None, Opt(help="run directory to continue")] = None,
        quiet: Annotated[bool, Opt(help="no progress bar")] = False,
        tensorboard: Annotated[bool, Opt(help="also log scalars to RUN_DIR/tensorboard")] = False,
        recipe: Annotated[
            str | None, Opt(help="shared (the profile's) | official (the method's own code)")
        ] = None,
        rerun_stale: Annotated[
            bool, Opt(help="retrain a finished run whose method code changed since")
        ] = False,
    ) -> None:
        """Train METHOD and write a run directory named from the config hash."""
        from fer_bench.engine import run_dir, train

        if plugin:
            load_plugin_file(plugin)
        cfg = build_config(
            method,
            profile,
            set_,
            dataset=dataset,
            data_root=data_root,
            label_mode=label_mode,
            image_size=image_size,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            schedule=schedule,
            weight_decay=weight_decay,
            backbone=backbone,
            pretrained=pretrained,
            seed=seed,
            device=device,
            noise=noise,
            noise_type=noise_type,
            noise_seed=noise_seed,
            imbalance=imbalance,
            imbalance_type=imbalance_type,
            tta_flip=tta_flip,
            bf16=bf16,
            channels_last=channels_last,
            plugin=plugin,
            recipe=recipe,
            sampler=sampler,
        )
        root = check_resume(cfg, resume) if resume else out
        _check_writable(root)
        final = train(
            cfg,
            root,
            resume=resume is not None,
            progress=not quiet,
            tensorboard=tensorboard,
            rerun_stale=rerun_stale,
        )
        console.print(summary_table(final))
        console.print(f"run directory: {run_dir(cfg, root)}")
        if final["status"] != "done":
            fail(f"run failed: {final['reason']}", code=1)


def _check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"--out {root}: not writable ({err.strerror})") from None
