"""What git holds: no committed file is a symbolic link (a link to a path outside the
repository, e.g. a run directory on the training host, breaks every other checkout)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYMLINK_MODE = "120000"


def test_no_committed_file_is_a_symbolic_link():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    staged = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    links = [line.split("\t", 1)[1] for line in staged if line.startswith(SYMLINK_MODE + " ")]
    assert not links, f"symbolic links committed: {links}"
