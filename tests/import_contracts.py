"""import-linter contract types that see the plugin families (pyproject's [tool.importlinter]).

``methods/`` and ``protocols/`` install as ``fer_bench.methods`` and
``fer_bench.protocols`` (pyproject's ``package-dir``), but grimp, which builds the
import graph by walking ``fer_bench/``'s folder, never finds them: their modules are
missing and an import of one is read as an import of ``fer_bench`` itself. These
contracts add them first: each plugin module, its imports, and the imports of them
from ``fer_bench``'s own modules, read from the source as grimp reads it (every
``import`` statement, inside functions too). Run ``lint-imports`` from the
repository root, which puts this module on the path.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

from grimp import ImportGraph
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.domain.contract import ContractCheck

REPO = Path(__file__).resolve().parent.parent
ROOT = "fer_bench"


def plugin_folders() -> dict[str, Path]:
    """Package name -> folder of every package installed from outside ``fer_bench/``."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {
        name: REPO / folder
        for name, folder in setuptools["package-dir"].items()
        if name != ROOT and not (REPO / folder).resolve().is_relative_to(REPO / ROOT)
    }


def _modules(package: str, folder: Path) -> dict[str, Path]:
    """Module name -> source file of every module of a package folder."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).with_suffix("").parts
        if "__pycache__" in parts:
            continue
        name = ".".join((package, *parts))
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(module: str, path: Path) -> Iterator[tuple[str, int, str]]:
    """(imported name, line, line's text) of every import in a module's source; for
    ``from a import b`` the name is ``a.b`` (a module, or an object of ``a``)."""
    source = path.read_text()
    lines = source.splitlines()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(source, str(path))):
        text = lines[node.lineno - 1].strip() if hasattr(node, "lineno") else ""
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, text
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package up
                package = module.split(".")
                package = package if is_package else package[:-1]
                up = package[: len(package) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno, text


def _resolve(name: str, known: set[str]) -> str | None:
    """The deepest module of ``known`` that ``name`` is or lies in."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if (candidate := ".".join(parts[:end])) in known:
            return candidate
    return None


def add_plugins(graph: ImportGraph) -> None:
    """Add the plugin packages' modules and every import from or into them."""
    plugins: dict[str, Path] = {}
    for package, folder in plugin_folders().items():
        plugins |= _modules(package, folder)
    for module in plugins:
        graph.add_module(module)
    known = set(graph.modules)
    own = _modules(ROOT, REPO / ROOT)
    for importer, path in {**own, **plugins}.items():
        for name, line, text in _imports(importer, path):
            imported = _resolve(name, known)
            if importer in own and imported not in plugins:
                continue  # grimp has it already
            if imported is None:  # a package outside the graph so far
                if name.split(".")[0] == ROOT:
                    continue
                imported = name.split(".")[0]
                graph.add_module(imported, is_squashed=True)
                known.add(imported)
            if imported != importer:
                graph.add_import(
                    importer=importer, imported=imported, line_number=line, line_contents=text
                )


class PluginLayersContract(LayersContract):
    """A layers contract over ``fer_bench`` and its plugin packages."""

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        add_plugins(graph)
        return super().check(graph, verbose)


class PluginForbiddenContract(ForbiddenContract):
    """A forbidden contract over ``fer_bench`` and its plugin packages."""

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        add_plugins(graph)
        return super().check(graph, verbose)
