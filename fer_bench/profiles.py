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
