"""Named run profiles (fer_bench/profiles/*.toml) and command-line overrides on top:
named options (declared in :data:`fer_bench.options.OPTIONS`) and generic dotted ones
(``--cfg optim.lr=3e-3``)."""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from importlib.resources import files
from typing import Any

from fer_bench.config import RunConfig
from fer_bench.options import BY_NAME

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
    """Named command-line option values (None = not given) as nested RunConfig overrides,
    each at the field its declaration names."""
    nested: dict[str, Any] = {}
    for name, value in options.items():
        if value is not None:
            _put(nested, BY_NAME[name].key, value)
    return nested


def dotted_overrides(pairs: list[str]) -> dict[str, Any]:
    """``--cfg KEY=VALUE`` pairs with dotted keys (``optim.lr=3e-3``) as nested RunConfig
    overrides, each value typed by its field; an unknown key is an error."""
    nested: dict[str, Any] = {}
    for key, raw in parse_key_values(pairs, "KEY=VALUE", "--cfg").items():
        _put(nested, key, _typed(raw, field_type(key), key))
    return nested


def joined(*overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested overrides from several sources as one; a key two of them set is an error."""
    out: dict[str, Any] = {}
    for source in overrides:
        _join(out, source, "")
    return out


def _join(into: dict[str, Any], source: dict[str, Any], prefix: str) -> None:
    for key, value in source.items():
        if value is None:
            continue
        if isinstance(value, dict) and key != "hparams":
            _join(into.setdefault(key, {}), value, f"{prefix}{key}.")
        elif key in into and into[key] != value:
            raise ValueError(f"{prefix}{key} is set twice ({into[key]!r} and {value!r})")
        else:
            into[key] = value


def _put(nested: dict[str, Any], dotted: str, value: Any) -> None:
    *sections, name = dotted.split(".")
    for section in sections:
        nested = nested.setdefault(section, {})
    nested[name] = value


def field_type(dotted: str) -> Any:
    """The type of RunConfig field ``dotted``, None aside (``optim.lr`` -> float,
    ``pretrained`` -> str)."""
    cls: Any = RunConfig
    *sections, name = dotted.split(".")
    for part in [*sections, name]:
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        if part not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(cls)) if hints else "(a value)"
            raise ValueError(f"--cfg {dotted}: unknown config key {part!r}; known: {known}")
        cls = hints[part]
    if dataclasses.is_dataclass(cls):
        raise ValueError(f"--cfg {dotted}: a section, not a value (give {dotted}.KEY=VALUE)")
    if dotted == "hparams":
        raise ValueError("--cfg hparams: method hyperparameters are set with --set KEY=VALUE")
    if isinstance(cls, types.UnionType):
        cls = next(t for t in typing.get_args(cls) if t is not type(None))
    return cls


def _typed(raw: str, typ: Any, key: str) -> Any:
    """``raw`` as ``typ`` (bool, int, float or str)."""
    try:
        if typ is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        return typ(raw)
    except ValueError:
        raise ValueError(f"--cfg {key}={raw}: expected {typ.__name__}") from None


def parse_key_values(
    pairs: list[str], form: str = "KEY=VALUE", option: str = "--set"
) -> dict[str, str]:
    """``--set KEY=VALUE`` pairs as a dict; ``form`` and ``option`` name the expected
    shape and the option in errors."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} expects {form}, got {pair!r}")
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
