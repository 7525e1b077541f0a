"""Registries: decorator, duplicates, unknown names, user plugin files, entry points."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import fer_bench.registry as registry
from fer_bench.registry import METHODS, Registry, RegistryError, load_plugin_file


def test_register_and_get():
    reg: Registry = Registry("things")
    reg.register("a")(int)
    assert reg.get("a") is int and reg.names() == ["a"] and "a" in reg


def test_duplicate_name_raises():
    reg: Registry = Registry("things")
    reg.register("a")(int)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a")(float)


def test_unknown_name_lists_registered():
    reg: Registry = Registry("things")
    reg.register("b")(int)
    reg.register("a")(float)
    with pytest.raises(RegistryError, match=r"unknown things 'c'; registered: a, b"):
        reg.get("c")


def test_builtin_methods_are_registered():
    assert "ce" in METHODS.names()


def test_plugin_file_registers_a_method(tmp_path):
    plugin = tmp_path / "my_method.py"
    plugin.write_text(
        "from fer_bench.method import Method\n"
        "from fer_bench.registry import METHODS\n"
        "@METHODS.register('my-plugin-method')\n"
        "class Mine(Method):\n    pass\n"
    )
    load_plugin_file(plugin)
    assert METHODS.get("my-plugin-method").__name__ == "Mine"


def test_missing_plugin_file():
    with pytest.raises(FileNotFoundError, match="plugin file not found"):
        load_plugin_file("no/such/file.py")


def test_entry_points_are_loaded(monkeypatch):
    loaded = []
    reg: Registry = Registry("widgets")
    ep = SimpleNamespace(load=lambda: loaded.append(reg.register("from-ep")(dict)))
    monkeypatch.setattr(
        registry, "entry_points", lambda group: [ep] if group == "fer_bench.widgets" else []
    )
    assert reg.names() == ["from-ep"] and loaded
