"""Sensitive values are found, and never reach the index or the catalog when policy says redact."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from governance.catalog.models import ChunkRow, Version
from governance.contracts import AccessScope
from governance.redaction import find_sensitive, iban_ok, luhn_ok, redact
from ingest.sources.base import Parsed, SourceItem, TextBlock

SECRETS = {
    "EMAIL": "jane.doe@example.org",
    "CARD_NUMBER": "4111 1111 1111 1111",
    "US_SSN": "123-45-6789",
    "IBAN": "DE89 3704 0044 0532 0130 00",
    "AWS_KEY": "AKIAIOSFODNN7EXAMPLE",
    "SLACK_TOKEN": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
    "JWT": (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    ),
    "GITHUB_TOKEN": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx\n-----END RSA PRIVATE KEY-----",
    "PHONE": "+44 20 7946 0958",
}


@pytest.mark.parametrize("kind, value", SECRETS.items())
def test_each_kind_is_found_and_replaced_by_a_typed_placeholder(kind, value):
    text, counts = redact(f"before {value} after")
    assert value not in text and f"[REDACTED:{kind}]" in text
    assert text.startswith("before ") and text.endswith(" after")
    assert counts[kind] == 1


def test_checksums_decide_card_numbers_and_ibans():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")
    assert not any(f.kind == "CARD_NUMBER" for f in find_sensitive("order 4111 1111 1111 1112 shipped"))


def test_ordinary_prose_and_numbers_are_left_alone():
    text = "Revenue was 48.2 million euros in 2026, up 12 percent; see pages 14-15 and section 3.2."
    assert redact(text) == (text, {})


def _item(text: str, source: str = "slack") -> SourceItem:
    return SourceItem(
        source=source,
        path=Path("/x/doc"),
        rel_path="doc",
        document_id=f"{source}:doc",
        fingerprint=lambda: "f",
        parse=lambda: Parsed(elements=[TextBlock(text)], title="doc"),
        facts={"source": source},
        scope=AccessScope(key="t", layers=[["group:eng"]]),
    )


def _policy(stores, tmp_path, action: str):
    from governance.policy import load_policy

    p = tmp_path / "p.yaml"
    p.write_text(f"version: 1\nredaction:\n  - match: {{source: slack}}\n    action: {action}\n")
    stores.policy = load_policy(p)


def test_redact_action_keeps_values_out_of_milvus_and_the_catalog(sqlite_stores, embedder, tmp_path, make_ingestor):
    _policy(sqlite_stores, tmp_path, "redact")
    body = " ".join(f"{k} is {v}." for k, v in SECRETS.items() if k != "PRIVATE_KEY")
    summary = make_ingestor(sqlite_stores, embedder).ingest_items([_item("Deploy notes. " + body)])
    assert summary.new == 1 and sum(summary.redactions.values()) >= len(SECRETS) - 1
    stored = [r["text"] for r in sqlite_stores.index.query("id >= 0", fields=["text"])]
    with sqlite_stores.catalog.session() as s:
        stored += list(s.scalars(select(Version.cleaned_text))) + list(s.scalars(select(ChunkRow.text)))
    for value in SECRETS.values():
        assert all(value not in t for t in stored)


def test_block_action_quarantines_the_document(sqlite_stores, embedder, tmp_path, make_ingestor):
    _policy(sqlite_stores, tmp_path, "block")
    summary = make_ingestor(sqlite_stores, embedder).ingest_items([_item(f"call {SECRETS['US_SSN']}")])
    assert summary.quarantine[0].reason == "sensitive_content"
    assert SECRETS["US_SSN"] not in summary.quarantine[0].message
    assert sqlite_stores.index.count() == 0


def test_tag_action_marks_the_classification_and_rerun_keeps_it(sqlite_stores, embedder, tmp_path, make_ingestor):
    _policy(sqlite_stores, tmp_path, "tag")
    ing = make_ingestor(sqlite_stores, embedder)
    assert ing.ingest_items([_item(f"mail {SECRETS['EMAIL']}")]).tagged == 1
    assert {r["classification"] for r in sqlite_stores.index.query("id >= 0", fields=["classification"])} == {
        "sensitive"
    }
    again = ing.ingest_items([_item(f"mail {SECRETS['EMAIL']}")])
    assert (again.unchanged, again.access_updated) == (1, 0)


def test_no_extracted_copy_of_an_export_stays_on_disk_after_ingest(sqlite_stores, embedder, tmp_path, make_ingestor):
    """The export's text in clear (secrets included) is not left under GOVRAG_HOME/work: the
    run removes what it extracted, whatever happened."""
    from testsupport.sources_fixtures import SConv, SUser, add_messages, msg, write_slack_export

    secret = "AKIAIOSFODNN7EXAMPLE"
    c = SConv("C1", "general", "public", ["U1"])
    add_messages(c, [msg("U1", f"the key is {secret} keep it safe", 0)])
    z = write_slack_export(
        tmp_path / "exp", [SUser("U1", "alice", "alice@corp.example")], [c], as_zip=True, team_info={"id": "T0ACME"}
    )
    make_ingestor(sqlite_stores, embedder).ingest_paths([z])
    work = sqlite_stores.settings.resolved_home / "work"
    leftovers = [p for p in work.rglob("*") if p.is_file()] if work.exists() else []
    assert leftovers == []
