"""Domain helpers behind the Dagster code location that need no store: the secret detector
and the drop-folder keys (the sweep, consistency, snapshots and permission sync:
tests/integration/test_dagster_domain.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from governance.errors import SourceError
from governance.secrets_scan import scan_text
from ingest.pipeline.drop_folder import due_exports, resolve_source_key, scan_drop_folder, source_key
from ingest.pipeline.snapshot import manifest_path


# -- secrets ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, kind",
    [
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow", "private_key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "private_key"),
        ("-----BEGIN PRIVATE KEY-----", "private_key"),
        ("id AKIAIOSFODNN7EXAMPLE here", "aws_access_key_id"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key"),
        ("token xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack_token"),
        ("https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX", "slack_webhook"),
        ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
        ("ghp_" + "a1B2" * 9, "github_token"),
    ],
)
def test_secret_patterns_found_and_masked(text, kind):
    found = scan_text(text)
    assert [f.kind for f in found] == [kind]
    secret = text[found[0].start : found[0].end]
    assert secret not in found[0].preview and found[0].preview.startswith(secret[:4])


@pytest.mark.parametrize(
    "text",
    [
        "Revenue grew 12 percent; see [REDACTED:aws_access_key_id].",
        "AKIA is an acronym",
        "xoxb-short",
        "the header eyJhbGciOi alone",
        "BEGIN PUBLIC KEY",
        "",
    ],
)
def test_secret_scan_ignores_harmless_text(text):
    assert scan_text(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "id AKIAIOSFODNN7EXAMPLE here",
        "token: xoxp-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----",
        "key AIza" + "B" * 35,
        "password = hunter2hunter2",
        "sk_live_" + "0a1B" * 5,
    ],
)
def test_the_secret_check_finds_what_ingest_redacts_and_nothing_after_redaction(text):
    from governance.redaction import redact

    assert scan_text(text), "the check must know every secret the redactor knows"
    redacted, counts = redact(text)
    assert counts and scan_text(redacted) == []


# -- drop folder ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "slack-acme-2026.zip",
        "ENG space",
        "finance/..",
        "...",
        "Ünïcödé export",
        "a" * 200,
        "-lead",
        "x|y,z",
        "rapport 2026 (final).zip",
        "tab\there",
        "\udcff-bytes",
    ],
)
def test_source_keys_are_safe_and_distinct(name):
    key = source_key(name)
    assert 0 < len(key) <= 64
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in key), key
    assert "..." not in key and not key.startswith(("-", "."))
    assert source_key(name) == key  # stable
    assert manifest_path(Path("/h"), key).name == f"{key}.json"


def test_source_keys_do_not_collide_when_sanitized_alike():
    assert len({source_key(n) for n in ("a b", "a_b", "a-b", "a/b", "a?b", "a  b")}) == 6


def test_scan_drop_folder_maps_keys_back_and_ignores_junk(tmp_path):
    (tmp_path / "pdfs dept").mkdir()
    (tmp_path / "pdfs dept" / "x.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "slack.zip").write_bytes(b"PK")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "copying.zip.part").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "pdfs dept")
    entries = scan_drop_folder(tmp_path)
    assert sorted(e.name for e in entries) == ["pdfs dept", "slack.zip"]
    for e in entries:
        assert resolve_source_key(tmp_path, e.key) == e.path
    with pytest.raises(SourceError):
        resolve_source_key(tmp_path, "link")
    assert scan_drop_folder(tmp_path / "missing") == []


def test_due_exports_new_changed_and_unsettled(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.pdf").write_bytes(b"1")
    now = time.time() + 100
    due, seen = due_exports(scan_drop_folder(tmp_path), {}, settle_seconds=30, now=now)
    assert [e.key for e in due] == ["a"]
    assert due_exports(scan_drop_folder(tmp_path), seen, 30, now)[0] == []
    (tmp_path / "a" / "2.pdf").write_bytes(b"2")
    os.utime(tmp_path / "a" / "2.pdf", (now - 5, now - 5))
    due, seen2 = due_exports(scan_drop_folder(tmp_path), seen, 30, now)
    assert due == [] and seen2 == seen  # still copying: wait
    due, _ = due_exports(scan_drop_folder(tmp_path), seen, 30, now + 60)
    assert [e.key for e in due] == ["a"]  # changed and settled: run again
