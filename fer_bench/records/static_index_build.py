"""Building the static index (:mod:`fer_bench.static_index`) from the imported registries.

Rebuild the committed index after editing a built-in plugin, or any module of
:data:`fer_bench.static_index.SOURCES`: ``python -m fer_bench.records.static_index_build``.
It lives here, above the plugin families and beside the code fingerprint it records,
because building imports both; reading the index imports neither.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fer_bench.static_index import GROUPS, INDEX_FILE, source_digests, summary


def method_family(cls: type) -> dict[str, Any]:
    """The family `fer-bench list methods` groups a method under, and the family's place
    in FAMILIES' order (a plugin's own family after them)."""
    from fer_bench.methods.base import FAMILIES

    family = getattr(cls, "family", "other")
    rank = FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)
    return {"family": family, "family_rank": rank}


def _method_facts(name: str, cls: type) -> dict[str, Any]:
    from fer_bench.hparams import type_name
    from fer_bench.records.identity import method_code

    defaults = dataclasses.asdict(cls.Hparams())
    if json.loads(json.dumps(defaults)) != defaults:
        raise ValueError(f"method {name!r}: a default is not a JSON value: {defaults}")
    types = {f.name: type_name(f.type) for f in dataclasses.fields(cls.Hparams)}
    recipe = getattr(cls, "official_recipe", None)
    return {
        **method_family(cls),
        "hparams": {k: {"type": types[k], "default": v} for k, v in defaults.items()},
        "code": method_code(name),
        "official_recipe": None if recipe is None else dataclasses.asdict(recipe),
    }


def build() -> dict[str, Any]:
    """The index of the registries as imported now (imports every built-in plugin)."""
    from fer_bench import registry

    groups: dict[str, dict[str, Any]] = {}
    for group, attr in GROUPS.items():
        reg = getattr(registry, attr)
        groups[group] = {}
        for name in reg.names():
            obj = reg.get(name)
            if not getattr(obj, "__module__", "").startswith("fer_bench."):
                continue  # registered by a plugin file or a test, not built in
            facts: dict[str, Any] = {"summary": summary(obj)}
            if group == "methods":
                facts |= _method_facts(name, obj)
            if group == "noise":
                facts["takes_rate"] = bool(getattr(obj, "takes_rate", True))
            groups[group][name] = facts
    return {"sources": source_digests(), "registries": groups}


def render(index: dict[str, Any]) -> str:
    return json.dumps(index, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    INDEX_FILE.write_text(render(build()))
    print(f"wrote {INDEX_FILE}")
