"""The code version in run records: a source digest that holds without git."""

from __future__ import annotations

from pathlib import Path

from fer_bench.records.environment import code_version, source_digest


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


CORE = {"__init__.py": "", "engine.py": "x = 1\n", "profiles/p.toml": "epochs = 3\n"}
METHODS = {"__init__.py": "", "nla.py": "y = 2\n"}


def test_checkout_and_installed_layouts_give_one_digest(tmp_path):
    # checkout: methods/ beside fer_bench/; installed: fer_bench/methods/ inside it
    _write(tmp_path / "repo/fer_bench", CORE)
    _write(tmp_path / "repo/methods", METHODS)
    _write(tmp_path / "site/fer_bench", CORE)
    _write(tmp_path / "site/fer_bench/methods", METHODS)
    repo = source_digest(
        {"fer_bench": tmp_path / "repo/fer_bench", "fer_bench.methods": tmp_path / "repo/methods"}
    )
    site = source_digest(
        {
            "fer_bench": tmp_path / "site/fer_bench",
            "fer_bench.methods": tmp_path / "site/fer_bench/methods",
        }
    )
    assert repo == site


def test_digest_follows_the_source_only(tmp_path):
    _write(tmp_path / "fer_bench", CORE)
    before = source_digest({"fer_bench": tmp_path / "fer_bench"})
    _write(tmp_path / "fer_bench", {"__pycache__/engine.pyc": "bytecode", "notes.txt": "hi"})
    assert source_digest({"fer_bench": tmp_path / "fer_bench"}) == before
    _write(tmp_path / "fer_bench", {"engine.py": "x = 2\n"})
    assert source_digest({"fer_bench": tmp_path / "fer_bench"}) != before
    _write(tmp_path / "fer_bench", {"engine.py": "x = 1\n", "extra.py": ""})
    assert source_digest({"fer_bench": tmp_path / "fer_bench"}) != before


def test_code_version_of_this_checkout():
    info = code_version()
    assert len(info["source_sha256"]) == 16
    int(info["source_sha256"], 16)
    assert info["fer_bench"]
