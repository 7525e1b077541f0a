"""Name -> factory registries for methods, datasets, protocols, backbones and views.

Modelled on timm/USB: a decorator registers a name, a duplicate name is an
error, an unknown name lists what exists. Third-party packages register
through the entry-point group ``fer_bench.<group>``; a user's file is loaded
with :func:`load_plugin_file`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """Unknown or duplicate registry name; str() is the one-line message."""

    def __str__(self) -> str:
        return str(self.args[0])


class RegistryWarning(UserWarning):
    """A broken or undecorated entry point, skipped so the other names still work."""


class Registry(Generic[T]):
    def __init__(
        self, kind: str, builtin_module: str | None = None, group: str | None = None
    ) -> None:
        self.kind = kind  # what messages call the names ("methods", "noise protocols")
        self.group = group or kind  # entry points come from the group fer_bench.<group>
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
        for ep in entry_points(group=f"fer_bench.{self.group}"):
            self._load_entry_point(ep)

    def _load_entry_point(self, ep: EntryPoint) -> None:
        # One broken third-party package must not stop every other method: warn and skip.
        where = f"entry point {ep.name} = {ep.value} (group fer_bench.{self.group}{_package(ep)})"
        try:
            obj = ep.load()
        except Exception as err:
            warnings.warn(f"{where} skipped: {_one_line(err)}", RegistryWarning, stacklevel=2)
            return
        if not isinstance(obj, ModuleType) and obj not in self._items.values():
            warnings.warn(
                f"{where} loads {getattr(obj, '__qualname__', obj)!r}, which is not registered: "
                f"decorate it with @{self.group.upper()}.register('name')",
                RegistryWarning,
                stacklevel=2,
            )

    def get(self, name: str) -> T:
        self._load()
        if name not in self._items:
            raise self._unknown(name, list(self._items))
        return self._items[name]

    def _unknown(self, name: str, names: list[str]) -> RegistryError:
        known = ", ".join(sorted(names)) or "(none)"
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}? " if close else "; "
        return RegistryError(f"unknown {self.kind} {name!r}{hint}registered: {known}")

    def facts(self) -> dict[str, dict] | None:
        """Name -> facts of every registered name from the static index (no plugin
        imported), or None where this registry must answer: it holds registrations (a
        plugin may have registered more), or the index is out of date."""
        from fer_bench import static_index

        return None if self._items else static_index.indexed(self.group)

    def fact(self, name: str) -> dict | None:
        """The facts of one name, or None where the imported registry must answer (an
        unknown name included: ``get`` raises the one-line error)."""
        found = self.facts()
        return None if found is None else found.get(name)

    def _names_cheaply(self) -> list[str]:
        """The registered names, from the static index while it is current (no plugin
        imported: a typo is reported at once), else from the loaded registry."""
        indexed = self.facts()
        if indexed is not None:
            return list(indexed)
        self._load()
        return list(self._items)

    def check(self, name: str) -> None:
        """The RegistryError of ``get`` for a name not registered, without importing
        the plugins where the static index answers."""
        if name not in (names := self._names_cheaply()):
            raise self._unknown(name, names)

    def canonical(self, name: str) -> str:
        """``name`` as registered, matched regardless of case when it is not registered
        as written (the README writes NLA for ``nla``); unchanged when none or several
        names match, so that ``get`` reports it."""
        names = self._names_cheaply()
        if name in names:
            return name
        same = [n for n in names if n.lower() == name.lower()]
        return same[0] if len(same) == 1 else name

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _package(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f", package {dist.name} {dist.version}" if dist is not None else ""


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _plugin_error(path: Path, err: Exception) -> ValueError:
    """The file and line where the plugin failed, on one line."""
    if isinstance(err, SyntaxError):
        return ValueError(f"plugin {path}:{err.lineno}: syntax error: {err.msg}")
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == path]
    line = f":{frames[-1].lineno}" if frames else ""
    return ValueError(f"plugin {path}{line}: raised on import: {_one_line(err)}")


def _registers_from(module_name: str) -> bool:
    registries = (METHODS, DATASETS, NOISE, IMBALANCE, BACKBONES, VIEWS)
    return any(
        getattr(obj, "__module__", None) == module_name
        for reg in registries
        for obj in reg._items.values()
    )


def method_class(name: str, recorded_plugin: str | None = None) -> type:
    """The registered method ``name``; one that is not names how to load it. A record's
    plugin path is never imported (a downloaded run directory must run no code): it is
    only named, for the user to pass with ``--plugin`` if they trust it."""
    if name in METHODS:
        return METHODS.get(name)
    named = f" (its record names {recorded_plugin})" if recorded_plugin else ""
    raise RegistryError(
        f"method {name!r} is not loaded{named}: give the file that registers it with "
        "--plugin FILE (run, sweep, list), or install the package that provides it "
        "(entry point fer_bench.methods); plugins are never loaded from a record"
    )


def load_plugin_file(path: str | Path) -> None:
    """Import a user's Python file so its decorators register its classes.

    A file that fails to import, or registers nothing, is a one-line ValueError."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"plugin file not found: {path}")
    path = Path(path).resolve()  # traceback frames name the file by its absolute path
    # Keyed by the full path: two plugins named my_method.py in two folders are two modules.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    module_name = f"fer_bench_plugin_{path.stem}_{digest}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import plugin file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[module_name]
        raise _plugin_error(path, err) from None
    if not _registers_from(module_name):
        del sys.modules[module_name]
        raise ValueError(
            f"plugin {path} registers nothing: decorate its class with "
            "@METHODS.register('name') (from fer_bench.registry import METHODS)"
        )


METHODS: Registry = Registry("methods", "fer_bench.methods")
DATASETS: Registry = Registry("datasets", "fer_bench.data")
# Two protocol kinds, one registry each (entry-point groups fer_bench.noise, fer_bench.imbalance).
NOISE: Registry = Registry("noise protocols", "fer_bench.protocols", group="noise")
IMBALANCE: Registry = Registry("imbalance protocols", "fer_bench.protocols", group="imbalance")
BACKBONES: Registry = Registry("backbones", "fer_bench.backbones")
VIEWS: Registry = Registry("views", "fer_bench.training.views")  # a method's second view
