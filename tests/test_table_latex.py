"""The LaTeX table goes into a paper as is (issue 50): it names its packages on its first
line, compiles with them alone, fits a portrait A4 page (no overfull box, no float too
large) with a board's 15 methods, and leaves cells outside the grid empty."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fer_bench.cli import app

BOARD = Path(__file__).resolve().parents[1] / "results" / "ferplus-cpu"
GRID = [f"--sweep={f}" for f in sorted(BOARD.glob("sweep*.toml"))]
runner = CliRunner()


def _latex(*args: str) -> str:
    result = runner.invoke(app, ["table", str(BOARD), *GRID, "--format", "latex", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_cells_outside_the_grid_are_empty_not_words():
    tex = _latex()
    assert "not in grid" not in tex and "missing" not in tex
    bsoftmax = next(line for line in tex.splitlines() if line.startswith("bsoftmax &"))
    assert bsoftmax.startswith("bsoftmax &  &  &")  # clean, sym 10%: not in its grid


def test_methods_and_columns_select_rows_and_columns():
    tex = _latex("--methods", "ce,NLA", "--columns", "clean,sym 30%", "--metric", "acc")
    rows = [line.split(" & ")[0] for line in tex.splitlines() if line.endswith(r"\\")]
    assert rows == ["Method", "ce", "nla"]
    assert "Method & clean & sym 30\\% \\\\" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_compiles_on_portrait_a4_without_overfull_boxes(tmp_path):
    tex = _latex()  # 15 methods x 6 protocols, both metrics
    assert len({line.split(" & ")[0] for line in tex.splitlines() if " & " in line}) == 16
    packages = re.fullmatch(r"% .*\\usepackage\{([^}]*)\}.*", tex.splitlines()[0])
    assert packages, tex.splitlines()[0]
    (tmp_path / "doc.tex").write_text(
        "\\documentclass[a4paper]{article}\n"
        f"\\usepackage{{{packages.group(1)}}}\n"
        f"\\begin{{document}}\n{tex}\n\\end{{document}}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert done.returncode == 0, log[-2000:]
    assert "Overfull" not in log and "Float too large" not in log
