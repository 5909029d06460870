"""A user's first mistakes with the ``govrag`` command: one line saying what is wrong, the
command's usage, exit code 2 — never a traceback. Each case runs the installed command as
a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOVRAG = Path(sys.executable).parent / "govrag"

USAGE_ERRORS = {
    "search without --user": (["search", "revenue"], "Missing option '--user'", "usage: govrag search"),
    "ingest without a path": (["ingest"], "Missing argument 'paths'", "usage: govrag ingest"),
    "unknown command": (["frobnicate"], "No such command 'frobnicate'", "usage: govrag [OPTIONS] COMMAND"),
    "k out of range": (["search", "revenue", "--user", "a@x.io", "-k", "500"], "'-k'", "usage: govrag search"),
    "purge without a selector": (["purge"], "exactly one of --expired", "usage: govrag purge"),
    "unknown option": (["status", "--colour"], "No such option: --colour", "usage: govrag status"),
}


def run_govrag(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")}
    env["GOVRAG_HOME"] = str(home)
    return subprocess.run([str(GOVRAG), *args], capture_output=True, text=True, env=env, timeout=120, cwd=home.parent)


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_a_usage_error_is_one_line_the_usage_and_exit_code_2(case: str, tmp_path: Path) -> None:
    args, what, usage = USAGE_ERRORS[case]
    done = run_govrag(args, tmp_path / "home")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("error: ") and what in lines[0]
    assert lines[1].startswith(usage) and "--help" in lines[1]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "home").exists()  # a mistyped command touches nothing
