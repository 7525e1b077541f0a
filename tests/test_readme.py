"""CI runs exactly the README's set-up and test commands."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    install, test = block
    ci = (ROOT / ".ci/run").read_text().splitlines()
    assert test in ci
    assert f"{test} -m slow" in ci  # the slow tier, which the quick command leaves out
    assert install.startswith("pip install -e ") and any(
        line.startswith("pip install") and "-e" in line for line in ci
    )
