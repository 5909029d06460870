"""What the repository ships reads as finished text: no merge left half-done in it."""

from __future__ import annotations

import re
import subprocess

import pytest

from testsupport.paths import REPO

MARKER = re.compile(r"^(<{7} |={7}$|>{7} )", re.MULTILINE)


def _tracked_text_files() -> list[str]:
    try:
        done = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [f for f in done.stdout.splitlines() if f.endswith((".md", ".py", ".toml", ".yaml", ".yml", ".cfg", ".txt"))]


def test_no_tracked_file_holds_merge_conflict_markers() -> None:
    found = []
    for name in _tracked_text_files():
        path = REPO / name
        if path.is_file() and MARKER.search(path.read_text(encoding="utf-8", errors="replace")):
            found.append(name)
    assert not found, f"merge conflict markers in {found}"
