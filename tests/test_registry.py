"""Registries: decorator, duplicates, unknown names, user plugin files, entry points."""

from __future__ import annotations

import re
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
        "from fer_bench.methods.base import Method\n"
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
    ep = SimpleNamespace(
        name="ep", value="pkg:mod", load=lambda: loaded.append(1) or reg.register("from-ep")(dict)
    )
    monkeypatch.setattr(
        registry, "entry_points", lambda group: [ep] if group == "fer_bench.widgets" else []
    )
    assert reg.names() == ["from-ep"] and loaded


def test_unknown_name_suggests_the_nearest():
    with pytest.raises(
        RegistryError, match=r"unknown methods 'nal'; did you mean 'nla'\? registered"
    ):
        METHODS.get("nal")


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("x = 1\ndef broken(:\n", ":2: syntax error"),
        (
            "import math\nraise RuntimeError('no GPU here')\n",
            ":2: raised on import: RuntimeError: no GPU",
        ),
        ("import math\n", "registers nothing"),
    ],
)
def test_broken_plugin_file_names_file_and_line(tmp_path, source, fragment):
    plugin = tmp_path / "bad_plugin.py"
    plugin.write_text(source)
    with pytest.raises(ValueError, match=re.escape(fragment)) as info:
        load_plugin_file(plugin)
    assert "bad_plugin.py" in str(info.value) and "\n" not in str(info.value)


def _entry_point(reg: Registry, load, monkeypatch) -> None:
    ep = SimpleNamespace(name="mine", value="pkg.mod:Mine", dist=None, load=load)
    monkeypatch.setattr(
        registry, "entry_points", lambda group: [ep] if group == f"fer_bench.{reg.group}" else []
    )


def test_broken_entry_point_is_named_and_skipped(monkeypatch):
    reg: Registry = Registry("widgets")
    reg.register("ok")(int)

    def load():
        raise ImportError("No module named 'pkg'")

    _entry_point(reg, load, monkeypatch)
    with pytest.warns(registry.RegistryWarning, match="entry point mine = pkg.mod:Mine .* skipped"):
        assert reg.get("ok") is int


def test_entry_point_to_an_undecorated_class_is_named(monkeypatch):
    reg: Registry = Registry("widgets")

    class Undecorated:
        pass

    _entry_point(reg, lambda: Undecorated, monkeypatch)
    with pytest.warns(registry.RegistryWarning, match="Undecorated.*not registered"):
        assert reg.names() == []
