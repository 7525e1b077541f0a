"""What git holds: no committed file is a symbolic link (a link to a path outside the
repository, e.g. a run directory on the training host, breaks every other checkout), and
no committed file cites documentation outside the repository (a checkout elsewhere has
none: a claim cites the official code by file and line, or the repository's own docs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYMLINK_MODE = "120000"


# Run records keep the command lines and notes they were made with, and are never edited.
NOT_DOCS = ":!results/*/runs/*"
# Joined so that this file does not cite the path itself.
OUTSIDE_DOCS = "/".join(("shared", "docs"))
GREP_FOUND_NOTHING = 1


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def test_no_committed_file_is_a_symbolic_link():
    staged = _git("ls-files", "-s")
    assert staged.returncode == 0, staged.stderr
    lines = staged.stdout.splitlines()
    links = [line.split("\t", 1)[1] for line in lines if line.startswith(SYMLINK_MODE + " ")]
    assert not links, f"symbolic links committed: {links}"


def test_no_committed_file_cites_documentation_outside_the_repository():
    # -I skips binary files, -l names each file once; tracked files only.
    grep = _git("grep", "-I", "-l", "-F", OUTSIDE_DOCS, "--", ".", NOT_DOCS)
    assert grep.returncode in (0, GREP_FOUND_NOTHING), grep.stderr
    citing = grep.stdout.splitlines()
    assert not citing, f"files citing {OUTSIDE_DOCS}, outside the repository: {citing}"
