"""Name -> factory registries for methods, datasets, protocols and backbones.

Modelled on timm/USB: a decorator registers a name, a duplicate name is an
error, an unknown name lists what exists. Third-party packages register
through the entry-point group ``fer_bench.<kind>``; a user's file is loaded
with :func:`load_plugin_file`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """Unknown or duplicate registry name; str() is the one-line message."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str, builtin_module: str | None = None) -> None:
        self.kind = kind
        self._builtin_module = builtin_module
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def _load(self) -> None:
        # Lazy: importing the built-ins and entry points only when first asked
        # keeps `import fer_bench` cheap and avoids import cycles.
        if self._loaded:
            return
        self._loaded = True
        if self._builtin_module:
            importlib.import_module(self._builtin_module)
        for ep in entry_points(group=f"fer_bench.{self.kind}"):
            ep.load()

    def get(self, name: str) -> T:
        self._load()
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise RegistryError(f"unknown {self.kind} {name!r}; registered: {known}")
        return self._items[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def load_plugin_file(path: str | Path) -> None:
    """Import a user's Python file so its decorators register its classes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"plugin file not found: {path}")
    module_name = f"fer_bench_plugin_{path.stem}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import plugin file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[module_name]
        raise


METHODS: Registry = Registry("methods", "fer_bench.methods")
DATASETS: Registry = Registry("datasets", "fer_bench.data")
PROTOCOLS: Registry = Registry("protocols", "fer_bench.protocols")
BACKBONES: Registry = Registry("backbones", "fer_bench.backbones")
