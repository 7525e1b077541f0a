"""table, compare and plot merge several directories into one board, and refuse
directories whose runs are not comparable, naming the differing setting."""

from __future__ import annotations

import json
from pathlib import Path

import fake_engine
import pytest
from typer.testing import CliRunner

from fer_bench.cli import app
from fer_bench.config import RunConfig

PROTOCOLS = (0.0, 0.3)


def _write(root: Path, method: str, seeds=(0, 1, 2), **changes) -> list[Path]:
    paths = []
    for seed in seeds:
        for rate in PROTOCOLS:
            cfg = RunConfig(method=method, seed=seed, epochs=2)
            cfg.protocol.noise_rate = rate
            for key, value in changes.items():
                setattr(cfg, key, value)
            fake_engine.write_records(cfg, root)
            paths.append(fake_engine.run_dir(cfg, root))
    return paths


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A board (ce, nla: board/runs) and a directory of new runs (gce) on its grid."""
    for method in ("ce", "nla"):
        _write(tmp_path / "board" / "runs", method)
    _write(tmp_path / "mine", "gce")
    return tmp_path / "board", tmp_path / "mine"


def _invoke(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_table_merges_directories_and_names_each(dirs):
    board, mine = dirs
    out = _invoke("table", board, mine, "--metric", "acc")
    rows = [line.split(" | ")[0] for line in out.splitlines() if line.startswith("| ")]
    assert rows == ["| Method", "| :--", "| ce", "| gce", "| nla"]
    assert "(n=3)" in out and "missing" not in out
    assert (
        f"Runs from 2 directories, checked comparable (same dataset, label mode, recipe, "
        f"epochs, protocol seed and precision asked for): {board / 'runs'} (12 runs; trained "
        f"in bf16 12); {mine} (6 runs; trained in bf16 6)." in out
    )
    latex = _invoke("table", board, mine, "--metric", "acc", "--format", "latex")
    assert "Runs from 2 directories" in latex and r"\begin{tabular}{lrr}" in latex


def test_compare_is_adjusted_over_the_merged_table(dirs, tmp_path):
    """The merged board compares as one directory holding every run would."""
    board, mine = dirs
    merged = _invoke("compare", board, mine, "gce", "--metric", "acc")
    together = tmp_path / "together"
    for method in ("ce", "nla", "gce"):
        _write(together, method)
    alone = _invoke("compare", together, "gce", "--metric", "acc")
    sources = [line for line in merged.split("\n") if line.startswith("Runs from 2 directories")]
    assert len(sources) == 1
    assert merged.replace(sources[0] + "\n\n", "") == alone
    assert "over the 4 tested pairs of this table" in merged
    cells = {line.split(" | ")[0]: line for line in merged.splitlines() if line.startswith("| ")}
    assert set(cells) == {"| Method", "| :--", "| ce", "| nla"}
    assert "(n=3, q=" in cells["| ce"]


def test_compare_in_latex(dirs, tmp_path):
    board, mine = dirs
    _invoke("compare", board, mine, "gce", "--out", tmp_path / "compare.tex")
    tex = (tmp_path / "compare.tex").read_text()
    assert tex.count(r"\begin{table}[t]") == 2  # accuracy and mean class accuracy
    assert r"gce minus each method" in tex and "Benjamini-Hochberg" in tex
    assert "Runs from 2 directories" in tex
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert [line.split(" & ")[0] for line in body] == ["ce", "nla"]
    assert all(line.count(" & ") == len(PROTOCOLS) for line in body)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 3}, "epochs 2 in {board}, 3 in {mine}"),
        ({"bf16": False}, "precision bf16 in {board}, fp32 in {mine}"),
    ],
)
def test_an_incomparable_directory_is_refused_with_the_setting_named(
    dirs, tmp_path, changes, message
):
    board, _ = dirs
    other = tmp_path / "other"
    _write(other, "gce", **changes)
    result = CliRunner().invoke(app, ["table", str(board), str(other)])
    assert result.exit_code == 2
    expected = message.format(board=board / "runs", mine=other)
    assert f"error: {other} is not comparable with {board / 'runs'}: {expected}" in " ".join(
        result.output.split()
    )


def test_hardware_fp32_merges_and_is_counted(dirs):
    """Asked for bf16, trained in fp32 where bf16 is not native: the same experiment, and
    the header counts what each directory trained in."""
    board, mine = dirs
    for final_path in mine.glob("*/final.json"):
        final = json.loads(final_path.read_text())
        final_path.write_text(json.dumps({**final, "precision": "fp32"}))
    out = _invoke("table", board, mine, "--metric", "acc")
    assert f"{mine} (6 runs; trained in fp32 6)" in out
    assert "precision varies: bf16 in 12, fp32 in 6 runs" in out


def test_a_directory_read_twice_is_refused(dirs):
    board, _ = dirs
    result = CliRunner().invoke(app, ["compare", str(board), str(board / "runs"), "ce"])
    assert result.exit_code == 2 and "is read twice" in result.output


def test_plot_merges_directories(dirs, tmp_path):
    board, mine = dirs
    _invoke("plot", board, mine, "--out", tmp_path / "plots")
    assert (tmp_path / "plots" / "acc_vs_noise.png").is_file()
    assert (tmp_path / "plots" / "scores_nla_sym-30pct.png").is_file()  # the board's runs
