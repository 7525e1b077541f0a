"""A normal (non-editable) install ships every package folder, the plugins under the
fer_bench namespace, and the profile files."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_source_folder_is_a_declared_package():
    config = _setuptools()
    declared = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("*.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    folders = {p for p in found if not any(part.startswith("__") for part in p.split("."))}
    assert folders <= declared, folders - declared


def test_plugins_install_under_the_fer_bench_namespace():
    mapping = _setuptools()["package-dir"]
    assert mapping["fer_bench.methods"] == "methods"
    assert mapping["fer_bench.protocols"] == "protocols"
    assert not any(name in ("methods", "protocols") for name in _setuptools()["packages"])


def test_profiles_are_package_data():
    data = _setuptools()["package-data"]["fer_bench.profiles"]
    assert data == ["*.toml"] and list((ROOT / "fer_bench/profiles").glob("*.toml"))
