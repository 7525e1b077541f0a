"""What the built-in registries hold, read without importing torch: the CLI answers at once.

Importing a method imports torch and timm (seconds). Listing names, checking a recorded
run against today's code (``fer-bench table``) and resolving a method's defaults need
only facts about the registered classes: their names and summaries, a method's
hyperparameter fields and defaults, its code fingerprint and official recipe, whether a
noise protocol takes a rate. ``static_index.json`` (beside this file) holds these facts,
built from the imported registries by ``python -m fer_bench.records.static_index_build``
(building imports every plugin and the code fingerprint, which this module, read by
the registry below them, must not).

The index is a cache, never the truth: it is used only while the sha256 of every source
file it was built from (the built-in plugin packages and the modules that compute these
facts, :data:`SOURCES`) is unchanged, no plugin package registers through an entry
point, and the registry has not been loaded anyway. Otherwise the callers import the
registries as before, so an edited method or a new registration is never served from
it; only the speed is lost until the index is rebuilt (tests/test_cli_light.py says
when the committed index is out of date).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

INDEX_FILE = Path(__file__).with_name("static_index.json")
# Modules (packages: every .py file under them) whose code decides the facts indexed.
SOURCES = (
    "fer_bench.methods",
    "fer_bench.protocols",
    "fer_bench.data",
    "fer_bench.backbones",
    "fer_bench.training.views",
    "fer_bench.records.identity",
    "fer_bench.registry",
    "fer_bench.recipes",
    "fer_bench.search",
    "fer_bench.hparams",
    "fer_bench.static_index",
    "fer_bench.records.static_index_build",
)
# Registry group -> the registry's name in fer_bench.registry.
GROUPS = {
    "methods": "METHODS",
    "datasets": "DATASETS",
    "noise": "NOISE",
    "imbalance": "IMBALANCE",
    "backbones": "BACKBONES",
    "views": "VIEWS",
}


def summary(obj: object) -> str:
    """First paragraph of the object's own docstring (not one inherited), else its
    module's, as one line: a first line alone may stop mid-sentence."""
    own = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
    doc = inspect.cleandoc(own or "") or inspect.getdoc(inspect.getmodule(obj)) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _files(module: str) -> list[tuple[str, Path]]:
    """(key, path) of the module's source file, or of every .py file of a package,
    found without importing it (find_spec imports only the parent package)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return []
    if not spec.submodule_search_locations:
        return [(module, Path(spec.origin))]
    root = Path(spec.submodule_search_locations[0])
    paths = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    return [(f"{module}/{p.relative_to(root).as_posix()}", p) for p in paths]


def source_digests() -> dict[str, str]:
    """sha256 of each source file the index depends on, by module-relative key."""
    return {
        key: hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for module in SOURCES
        for key, path in _files(module)
    }


def _has_entry_points() -> bool:
    return any(entry_points(group=f"fer_bench.{group}") for group in GROUPS)


@cache
def _load() -> dict[str, Any] | None:
    try:
        index = json.loads(INDEX_FILE.read_text())
    except (OSError, ValueError):
        return None
    if index.get("sources") != source_digests() or _has_entry_points():
        return None
    return index["registries"]


def indexed(group: str) -> dict[str, dict[str, Any]] | None:
    """Name -> facts of every built-in name of ``group``, or None while the index is out
    of date. Whether a loaded registry must answer instead (a plugin may have registered
    more) is the registry's to say: :meth:`fer_bench.registry.Registry.facts`."""
    index = _load()
    return None if index is None else index[group]
