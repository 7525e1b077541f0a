"""The README's "Put your method on the board" walkthrough on the synthetic board, run
command by command as printed: the "Writing a method" plugin trained on the board's
grid, then the merged table in Markdown and LaTeX, the comparison and the plots."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fer_bench.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section(heading: str) -> str:
    return README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _synthetic_commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", _section("Put your method on the board"), re.S)
    (synthetic,) = [b for b in blocks if "--board results/synthetic" in b]
    return [
        shlex.split(line)[1:] for line in synthetic.splitlines() if line.startswith("fer-bench")
    ]


def test_walkthrough_commands_use_the_committed_boards():
    commands = _synthetic_commands()
    assert commands[0][-1] == "--dry-run" and "--dry-run" not in commands[1]
    for board in ("results/synthetic", "results/ferplus-cpu"):
        assert (ROOT / board / "sweep.toml").is_file()


@pytest.mark.slow
def test_synthetic_walkthrough_end_to_end(tmp_path, monkeypatch):
    (code,) = re.findall(r"```python\n(.*?)```", _section("Writing a method"), re.S)
    (tmp_path / "my_method.py").write_text(code)
    (tmp_path / "results").symlink_to(ROOT / "results")  # the committed boards, read only
    monkeypatch.chdir(tmp_path)
    outputs = []
    for args in _synthetic_commands():
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, f"{shlex.join(args)}\n{result.output}"
        outputs.append(" ".join(result.output.split()))
    dry_run, sweep = outputs[:2]
    assert "2 todo" in dry_run and "2 runs, about " in dry_run
    assert "ran 2: 2 done, 0 failed" in sweep
    table = Path("my-table.md").read_text()
    assert "| boot | " in table and "| ce | " in table
    assert "Runs from 2 directories" in table and "my-runs (2 runs; trained in" in table
    committed = sum(1 for run in (ROOT / "results/synthetic/runs").iterdir() if run.is_dir())
    assert f"results/synthetic/runs ({committed} runs" in table
    assert r"\begin{tabular}" in Path("my-table.tex").read_text()
    comparison = Path("compare_boot.md").read_text()
    assert "### boot minus each method" in comparison and "| nla [defaults] | " in comparison
    assert r"boot minus each method" in Path("compare_boot.tex").read_text()
    assert Path("my-plots/acc_vs_noise.png").is_file()
    assert not list((ROOT / "results/synthetic/runs").glob("boot-*"))
