"""``fer-bench list KIND``: what is registered."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from typing import Annotated, Any

import typer
from rich.table import Table

from fer_bench import registry, static_index
from fer_bench.commands.common import console, fail, one_line_errors
from fer_bench.profiles import profile_names
from fer_bench.records.static_index_build import method_family

# One listing per kind; protocols list both of their registries (by registry group,
# fer_bench.static_index.GROUPS), with a kind column.
REGISTRIES: dict[str, tuple[str, ...]] = {
    "methods": ("methods",),
    "datasets": ("datasets",),
    "protocols": ("noise", "imbalance"),
    "backbones": ("backbones",),
    "views": ("views",),
}
KINDS = (*REGISTRIES, "profiles")


def _rows(group: str) -> list[tuple[str, str]]:
    """(name, summary) of a registry group: from the static index while it is current
    (no torch), else from the imported registry."""
    reg = getattr(registry, static_index.GROUPS[group])
    indexed = reg.facts()
    if indexed is not None:
        return [(name, facts["summary"]) for name, facts in sorted(indexed.items())]
    return [(name, static_index.summary(reg.get(name))) for name in reg.names()]


def _flatten(table: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in table.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={value}")
    return out


def _profile_summary(name: str) -> str:
    """The profile file's leading comment, then every value it sets."""
    text = files("fer_bench").joinpath("profiles", f"{name}.toml").read_text()
    comment = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("# "))
    sets = ", ".join(_flatten(tomllib.loads(text)))
    return f"{' '.join(comment)} Sets: {sets}".strip()


def _method_rows() -> list[list[str]]:
    """(name, description, family) of every method, grouped by family in FAMILIES order
    (fer_bench.methods.base); a family outside FAMILIES (a plugin's own) comes last."""
    indexed = registry.METHODS.facts()
    if indexed is None:  # the imported registry answers (torch)
        indexed = {
            name: {"summary": static_index.summary(cls), **method_family(cls)}
            for name in registry.METHODS.names()
            for cls in [registry.METHODS.get(name)]
        }
    names = sorted(indexed, key=lambda n: (indexed[n]["family_rank"], indexed[n]["family"], n))
    return [[n, indexed[n]["summary"], indexed[n]["family"]] for n in names]


def register(app: typer.Typer) -> None:
    @app.command("list")
    @one_line_errors
    def list_(
        kind: Annotated[
            str | None,
            typer.Argument(help=" | ".join(KINDS) + " (none: the kinds)", show_default=False),
        ] = None,
        plugin: Annotated[str | None, typer.Option(help="Python file registering extras")] = None,
    ) -> None:
        """List registered names (no KIND: the kinds there are)."""
        if plugin:
            registry.load_plugin_file(plugin)
        rows: list[list[str]] = []
        if kind is None:
            console.print(f"kinds: {', '.join(KINDS)} (e.g. fer-bench list methods)")
            return
        if kind == "profiles":
            rows = [[n, _profile_summary(n)] for n in profile_names()]
        elif kind == "methods":
            rows = _method_rows()
        elif kind in REGISTRIES:
            groups = REGISTRIES[kind]
            for group in groups:
                extra = [group] if len(groups) > 1 else []
                rows += [[name, text, *extra] for name, text in _rows(group)]
        else:
            fail(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
        table = Table(title=f"fer-bench {kind}")
        table.add_column("name", style="bold")
        table.add_column("description", overflow="fold")
        if len(REGISTRIES.get(kind, ())) > 1:
            table.add_column("kind")
        if kind == "methods":
            table.add_column("family")
        for i, row in enumerate(rows):
            # methods: a rule under each family's last row (the family is the last cell)
            last_of_family = kind == "methods" and i + 1 < len(rows) and rows[i + 1][-1] != row[-1]
            table.add_row(*row, end_section=last_of_family)
        console.print(table)
