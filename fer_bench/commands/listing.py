"""``fer-bench list KIND``: what is registered."""

from __future__ import annotations

import inspect
from typing import Annotated

import typer
from rich.table import Table

from fer_bench.commands.common import console, fail, one_line_errors
from fer_bench.profiles import profile_names
from fer_bench.registry import BACKBONES, DATASETS, METHODS, PROTOCOLS, load_plugin_file

REGISTRIES = {
    "methods": METHODS,
    "datasets": DATASETS,
    "protocols": PROTOCOLS,
    "backbones": BACKBONES,
}


def _summary(obj: object) -> str:
    """First line of the object's own docstring (not one inherited), else its module's."""
    own = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
    doc = inspect.cleandoc(own or "") or inspect.getdoc(inspect.getmodule(obj)) or ""
    return doc.splitlines()[0] if doc else ""


def register(app: typer.Typer) -> None:
    @app.command("list")
    @one_line_errors
    def list_(
        kind: Annotated[
            str, typer.Argument(help="methods | datasets | protocols | backbones | profiles")
        ],
        plugin: Annotated[str | None, typer.Option(help="Python file registering extras")] = None,
    ) -> None:
        """List registered names."""
        if plugin:
            load_plugin_file(plugin)
        if kind == "profiles":
            names = {n: "" for n in profile_names()}
        elif kind in REGISTRIES:
            reg = REGISTRIES[kind]
            names = {n: _summary(reg.get(n)) for n in reg.names()}
        else:
            fail(f"unknown kind {kind!r}; choose from {', '.join([*REGISTRIES, 'profiles'])}")
        table = Table(title=f"fer-bench {kind}")
        table.add_column("name", style="bold")
        table.add_column("description")
        if kind == "protocols":
            table.add_column("kind")
        for name, doc in names.items():
            extra = [getattr(PROTOCOLS.get(name), "kind", "")] if kind == "protocols" else []
            table.add_row(name, doc, *extra)
        console.print(table)
