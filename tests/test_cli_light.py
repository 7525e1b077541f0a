"""The CLI answers without importing torch or timm (issue 50): the static index of the
registries stands in for the imported plugins while it is current, and only then."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from scipy.stats import ttest_rel
from typer.testing import CliRunner

from fer_bench import static_index
from fer_bench.cli import app
from fer_bench.records import static_index_build
from fer_bench.reports.aggregate import paired_t_pvalue

REPO = Path(__file__).resolve().parents[1]
BOARD = REPO / "results" / "synthetic" / "runs"
HEAVY = ("torch", "timm", "torchvision", "scipy.stats")

# Runs the CLI in-process and prints, last, which heavy modules it imported.
PROBE = """
import sys
from fer_bench.cli import app
try:
    app(sys.argv[1:], prog_name="fer-bench")
except SystemExit as exit:
    code = exit.code
print("HEAVY", [m for m in {heavy!r} if m in sys.modules], code)
"""


def _heavy_after(*args: str) -> str:
    script = PROBE.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=REPO
    )
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("HEAVY"), done.stdout + done.stderr
    return last


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--help",),
        ("list",),
        ("list", "methods"),
        ("list", "protocols"),
        ("list", "backbones"),
        ("table", str(BOARD)),
        ("table", str(BOARD / "ce-0a9f1f7e3b1d")),  # a missing run: the one-line error
        ("run", "--epochs", "ten"),
        ("run", "nlaa"),  # a method name's typo: "did you mean 'nla'?"
        ("sweep", "--help"),
    ],
)
def test_cli_imports_no_torch(args: tuple[str, ...]) -> None:
    assert _heavy_after(*args).startswith("HEAVY []"), args


def test_committed_index_is_the_registries() -> None:
    """The committed index equals one built from the imported registries now; if this
    fails, rebuild it: python -m fer_bench.records.static_index_build (until then the
    CLI is slow, not wrong: an out-of-date index is not used)."""
    built = json.loads(static_index_build.render(static_index_build.build()))
    assert json.loads(static_index.INDEX_FILE.read_text()) == built


def test_index_not_used_once_a_source_changed(tmp_path, monkeypatch) -> None:
    index = json.loads(static_index.INDEX_FILE.read_text())
    key = next(k for k in index["sources"] if k.startswith("fer_bench.methods/ce"))
    index["sources"][key] = "0" * 16  # as if methods/ce.py had been edited since
    moved = tmp_path / "static_index.json"
    moved.write_text(json.dumps(index))
    monkeypatch.setattr(static_index, "INDEX_FILE", moved)
    static_index._load.cache_clear()
    try:
        assert static_index._load() is None
    finally:
        static_index._load.cache_clear()


def test_index_sources_cover_every_plugin_file() -> None:
    keys = static_index.source_digests()
    for path in (REPO / "methods").glob("*.py"):
        assert f"fer_bench.methods/{path.name}" in keys
    assert "fer_bench.backbones" in keys


def test_paired_t_pvalue_is_scipys() -> None:
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(2, 6)
        a = [rng.random() for _ in range(n)]
        b = [x + rng.gauss(0, 0.1) for x in a]
        assert paired_t_pvalue(a, b) == pytest.approx(float(ttest_rel(a, b).pvalue), abs=1e-12)


def test_list_without_kind_names_the_kinds() -> None:
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0
    for kind in ("methods", "datasets", "protocols", "backbones", "views", "profiles"):
        assert kind in result.output
