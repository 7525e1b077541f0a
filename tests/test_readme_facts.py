"""Numbers in board READMEs cannot drift from the records: every figure marked with a fact
comment is recomputed from the board's runs, and a checked region may state no decimal
figure without one (fer_bench/reports/facts.py)."""

from __future__ import annotations

import re
from pathlib import Path

import fake_engine
import pytest

from fer_bench.config import RunConfig
from fer_bench.reports.facts import Board, check, rewrite

ROOT = Path(__file__).resolve().parents[1]
READMES = sorted((ROOT / "results").glob("*/README.md"))


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_every_marked_figure_of_a_board_readme_holds(readme):
    text = readme.read_text()
    if "<!-- = " not in text and "<!-- facts: checked -->" not in text:
        pytest.skip("no figure of this README is marked yet")
    problems = check(text, Board.read(readme.parent / "runs"))
    assert not problems, f"{readme.relative_to(ROOT)}:\n" + "\n".join(map(str, problems))


def test_the_ferplus_cpu_answers_are_checked():
    text = (ROOT / "results/ferplus-cpu/README.md").read_text()
    assert text.count("<!-- facts: checked -->") >= 3
    assert text.count("<!-- = ") >= 100


def _board(tmp_path: Path) -> Board:
    for method in ("ce", "nla"):
        for seed in (0, 1, 2):
            cfg = RunConfig(method=method, seed=seed, epochs=3)
            cfg.protocol.noise_rate = 0.3
            fake_engine.write_records(cfg, tmp_path)
    return Board.read(tmp_path)


def test_a_drifted_figure_fails_and_a_true_one_passes(tmp_path):
    board = _board(tmp_path)
    functions = board.functions()
    diff = functions["minus"]("nla", "ce", "sym 30%")
    mean = functions["acc"]("ce", "sym 30%")
    true = (
        f'CE {mean:.2f}<!-- = acc("ce", "sym 30%") --> %, '
        f'NLA {diff:+.2f}<!-- = minus("nla", "ce", "sym 30%") -->'
    )
    assert check(true, board) == []
    drifted = true.replace(f"{mean:.2f}", f"{mean + 0.01:.2f}")
    (problem,) = check(drifted, board)
    assert f"states {mean + 0.01:.2f}, the records give {mean:.2f}" in problem.text
    flipped = true.replace(f"{diff:+.2f}", f"{-diff:+.2f}")  # a sign is part of the figure
    assert len(check(flipped, board)) == 1


def test_rewrite_restores_drifted_figures_as_written_and_lists_them(tmp_path):
    board = _board(tmp_path)
    functions = board.functions()
    diff, mean = functions["minus"]("nla", "ce", "sym 30%"), functions["acc"]("ce", "sym 30%")
    text = (
        '+9.99<!-- = minus("nla", "ce", "sym 30%") --> and 1.0<!-- = acc("ce", "sym 30%") --> %'
        ' and 1,000<!-- = 1000 * acc("ce", "sym 30%") -->'
    )
    fixed, changed = rewrite(text, board)
    assert fixed.startswith(f"{diff:+.2f}<!-- = ")
    assert f"{mean:.1f}<!-- = " in fixed and f"{1000 * mean:,.0f}<!-- = " in fixed
    assert check(fixed, board) == [] and len(changed) == 3
    assert rewrite(fixed, board) == (fixed, [])


def test_a_checked_region_refuses_an_unmarked_decimal_and_a_bad_expression(tmp_path):
    board = _board(tmp_path)
    mean = board.functions()["acc"]("ce", "sym 30%")
    marked = f'{mean:.1f}<!-- = acc("ce", "sym 30%") -->'
    prose = f"CE {marked}, seed 2 of 3, `lr 0.003`, 1.5 points"
    region = f"<!-- facts: checked -->{prose}<!-- facts: end -->"
    (problem,) = check(region, board)
    assert "1.5 in a checked region has no fact" in problem.text  # integers and code pass
    assert check(region.replace("1.5 points", "points"), board) == []
    (problem,) = check('0.5<!-- = acc("ce", "sym 99%") -->', board)
    assert "no column 'sym 99%'" in problem.text


def _fenced_blocks(text: str) -> list[str]:
    blocks, current = [], None
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_a_readme_copy_of_the_compute_summary_is_the_generated_one(readme):
    """A README that shows bench/sweep_time.py's summary shows compute.txt as generated."""
    copies = [b for b in _fenced_blocks(readme.read_text()) if re.match(r"\d+ runs, ", b)]
    for block in copies:
        assert block == (readme.parent / "compute.txt").read_text()
