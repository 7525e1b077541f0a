"""Named run profiles (fer_bench/profiles/*.toml) and command-line overrides on top."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from typing import Any

from fer_bench.config import RunConfig

DEFAULT_PROFILE = "synthetic-cpu"


def profile_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".toml")
        for p in files("fer_bench").joinpath("profiles").iterdir()
        if p.name.endswith(".toml")
    )


def load_profile(name: str = DEFAULT_PROFILE) -> RunConfig:
    names = profile_names()
    if name not in names:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(names)}")
    text = files("fer_bench").joinpath("profiles", f"{name}.toml").read_text()
    return with_overrides(RunConfig(), tomllib.loads(text))


def with_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """A copy of ``cfg`` with nested overrides ({"optim": {"lr": 1e-3}, "epochs": 5});
    None values are skipped, unknown keys are an error."""
    merged = cfg.to_dict()
    _merge(merged, overrides, "")
    return RunConfig.from_dict(merged)


def option_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """Command-line option values (None = not given) as nested RunConfig overrides."""
    o = options.get
    return {
        "method": o("method"),
        "backbone": o("backbone"),
        "pretrained": o("pretrained"),
        "epochs": o("epochs"),
        "batch_size": o("batch_size"),
        "seed": o("seed"),
        "device": o("device"),
        "plugin": o("plugin"),
        "bf16": o("bf16"),
        "recipe": o("recipe"),
        "channels_last": o("channels_last"),
        "sampler": o("sampler"),
        "data": {
            "name": o("dataset"),
            "root": o("data_root"),
            "label_mode": o("label_mode"),
            "image_size": o("image_size"),
        },
        "protocol": {
            "noise": o("noise_type"),
            "noise_rate": o("noise"),
            "noise_seed": o("noise_seed"),
            "imbalance": o("imbalance"),
            "imbalance_type": o("imbalance_type"),
        },
        "optim": {
            "lr": o("lr"),
            "name": o("optimizer"),
            "schedule": o("schedule"),
            "weight_decay": o("weight_decay"),
        },
        "aug": {"tta_flip": o("tta_flip")},
    }


def parse_key_values(pairs: list[str], form: str = "KEY=VALUE") -> dict[str, str]:
    """``--set KEY=VALUE`` pairs as a dict; ``form`` names the expected shape in errors."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects {form}, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _merge(into: dict, overrides: dict, prefix: str) -> None:
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in into:
            raise ValueError(f"unknown config key {prefix}{key!r}")
        if isinstance(into[key], dict) and key != "hparams":
            if not isinstance(value, dict):
                raise ValueError(f"config key {prefix}{key!r} is a section, not a value")
            _merge(into[key], value, f"{prefix}{key}.")
        else:
            into[key] = value
