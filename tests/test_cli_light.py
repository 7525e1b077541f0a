"""The CLI answers without importing torch or timm (issue 50): the static index of the
registries stands in for the imported plugins while it is current, and only then;
``labels`` and ``data info`` read a dataset's labels without its images as tensors."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from scipy.stats import ttest_rel
from typer.testing import CliRunner

from fer_bench import static_index
from fer_bench.cli import app
from fer_bench.data import testing as fx
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


def _probe(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI run in a fresh interpreter; ``cache``: its $FER_BENCH_CACHE."""
    env = {**os.environ, "COLUMNS": "120"}
    if cache is not None:
        env["FER_BENCH_CACHE"] = str(cache)
    script = PROBE.format(heavy=HEAVY)
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=REPO, env=env
    )


def _heavy_after(*args: str) -> str:
    done = _probe(*args)
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("HEAVY"), done.stdout + done.stderr
    return last


def _light_output(*args: str, cache: Path | None = None) -> str:
    """What the command printed, after checking it succeeded without a heavy import."""
    done = _probe(*args, cache=cache)
    *printed, last = done.stdout.strip().splitlines()
    assert last == "HEAVY [] 0", (args, done.stdout[-2000:], done.stderr[-2000:])
    return "\n".join(printed)


def _in_process(*args: str, cache: Path | None = None) -> str:
    """The same command here, where the tests have imported torch."""
    env = {"COLUMNS": "120"} | ({} if cache is None else {"FER_BENCH_CACHE": str(cache)})
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output.strip()


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


# --- labels and data info: labels, counts and votes, never the images as tensors ---


@pytest.mark.parametrize(
    "args",
    [
        ("labels", "--noise", "0.3", "--json"),
        ("labels", "--noise", "0.2", "--imbalance", "10", "--split", "val", "--json"),
        ("data", "info", "synthetic", "--json"),
    ],
)
def test_synthetic_labels_and_info_import_no_torch(args: tuple[str, ...]) -> None:
    """The synthetic faces are drawn (with torch) only when their pixels are read; the
    labels and numbers are those of a process that has torch."""
    assert _light_output(*args) == _in_process(*args)


def test_labels_table_imports_no_torch() -> None:
    out = _light_output("labels", "--noise", "0.3")
    assert "realised noise rate 0.3001 on 15000 of 15000 images" in out


def test_decoded_datasets_import_no_torch(tmp_path) -> None:
    """A first load (decoding into the cache: PNG files, CSV pixels) and a cached load."""
    ferplus = str(fx.write_ferplus(tmp_path / "ferplus"))
    fer2013 = str(fx.write_fer2013(tmp_path / "fer2013"))
    cache = tmp_path / "cache"
    commands = [
        ("data", "info", "ferplus", "--data-root", ferplus, "--json"),
        ("labels", "--dataset", "ferplus", "--data-root", ferplus, "--noise", "0.5", "--json"),
        ("data", "info", "fer2013", "--data-root", fer2013, "--label-mode", "majority", "--json"),
    ]
    first = [_light_output(*args, cache=cache) for args in commands]
    assert len(list(cache.iterdir())) == 2  # both datasets decoded and cached
    assert [_light_output(*args, cache=cache) for args in commands] == first
    assert first == [_in_process(*args, cache=cache) for args in commands]
    assert json.loads(first[0])["sizes"] == {"train": 5, "val": 2, "test": 2}


@pytest.mark.ferplus
@pytest.mark.parametrize(
    "args",
    [
        ("labels", "--noise-type", "fer2013", "--json"),
        ("labels", "--noise", "0.3", "--imbalance", "10", "--json"),
        ("data", "info", "ferplus", "--json"),
    ],
)
def test_ferplus_labels_and_info_import_no_torch(ferplus_root: Path, args: tuple) -> None:
    """On the real copy, read from the dataset cache (decoded there first if absent)."""
    dataset = ("--dataset", "ferplus") if args[0] == "labels" else ()
    args = (*args, *dataset, "--data-root", str(ferplus_root))
    assert _light_output(*args) == _in_process(*args)
