"""A method's ``--set key=value`` strings as typed values: shared by the method contract
(methods/base.py) and the static index (fer_bench/static_index.py), which resolves a
recorded run's hyperparameters without importing the method."""

from __future__ import annotations

from typing import Any


def parse_overrides(types: dict[str, str], overrides: dict[str, str]) -> dict[str, Any]:
    """``overrides`` typed by the field types (names as strings); a key that is not a
    field, or a value of the wrong type, is a ValueError."""
    values: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in types:
            known = ", ".join(types) or "(none)"
            raise ValueError(f"method has no hyperparameter {key!r}; known: {known}")
        values[key] = parse_value(raw, types[key], key)
    return values


def parse_value(raw: str, typ: str, key: str) -> Any:
    try:
        if typ == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        if typ == "int":
            return int(raw)
        if typ == "float":
            return float(raw)
    except ValueError:
        raise ValueError(f"--set {key}={raw}: expected {typ}") from None
    return raw


def type_name(typ: Any) -> str:
    """A dataclass field's type as the name ``parse_value`` takes."""
    return typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
