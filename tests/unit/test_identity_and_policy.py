"""Identity claims become principals; the policy file is parsed strictly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from governance.errors import AccessDenied, ConfigError
from governance.identity import User, parse_principal, principal
from governance.policy import glob_match, load_policy, parse_duration


def test_user_principals_include_email_groups_and_roles_expanded_by_policy():
    user = User(id="u-1", email="Alice@Example.COM", groups=["finance"], roles=["hr-admin"])
    assert user.principals({"hr-admin": ["group:hr"]}) == {
        "user:u-1",
        "user:alice@example.com",
        "group:finance",
        "role:hr-admin",
        "group:hr",
    }


def test_from_claims_reads_oidc_fields():
    user = User.from_claims({"sub": "abc", "email": "b@x.io", "groups": ["eng"], "roles": ["dev"], "tid": "t1"})
    assert (user.id, user.email, user.groups, user.roles, user.tenant) == ("abc", "b@x.io", ("eng",), ("dev",), "t1")


@pytest.mark.parametrize(
    "claims",
    [
        {},
        {"groups": ["x"]},
        "not a mapping",
        {"sub": "a", "groups": [1]},
        {"sub": "a", "groups": ["ok\nother"]},
        {"sub": "x" * 600},
    ],
)
def test_malformed_claims_are_refused(claims):
    with pytest.raises(AccessDenied):
        User.from_claims(claims)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ['a"b', "a'b", "a]b", "a\\b", ") or (1==1", "x or true", "日本語", "[*]"])
def test_metacharacters_in_names_are_kept_literally(name):
    assert principal("group", name) == f"group:{name}"


def test_principal_rejects_unknown_kind_and_control_characters():
    with pytest.raises(AccessDenied):
        parse_principal("team:x")
    with pytest.raises(AccessDenied):
        parse_principal("group:a\x00b")
    with pytest.raises(AccessDenied):
        parse_principal("no-colon")


def test_glob_double_star_spans_folders_single_star_does_not():
    assert glob_match("finance/**", "finance/2026/q3.pdf")
    assert glob_match("finance/*.pdf", "finance/q3.pdf")
    assert not glob_match("finance/*.pdf", "finance/2026/q3.pdf")
    assert not glob_match("finance/**", "financeX/q3.pdf")


def test_durations():
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("90m") == timedelta(minutes=90)
    with pytest.raises(ConfigError):
        parse_duration("3 weeks")


def _policy(tmp_path: Path, text: str):
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return load_policy(p)


def test_first_matching_access_rule_wins(tmp_path):
    policy = _policy(
        tmp_path,
        """
version: 1
access:
  - match: {source: pdf, path: "finance/secret/**"}
    allow: [["group:cfo-office"]]
  - match: {source: pdf, path: "finance/**"}
    allow: [["group:finance"]]
""",
    )
    _, rule = policy.access_rule({"source": "pdf", "path": "finance/secret/a.pdf"})
    assert rule.allow == [["group:cfo-office"]]
    assert policy.access_rule({"source": "pdf", "path": "eng/a.pdf"}) is None


def test_retention_from_modified_or_ingested(tmp_path):
    policy = _policy(
        tmp_path,
        """
version: 1
retention:
  - match: {source: slack, channel: "incident-*"}
    keep_for: 90d
    from: ingested
  - match: {}
    keep_for: 10d
""",
    )
    modified = datetime(2026, 1, 1, tzinfo=UTC)
    ingested = datetime(2026, 6, 1, tzinfo=UTC)
    assert policy.expires_at(
        {"source": "slack", "channel": "incident-7"}, modified=modified, ingested=ingested
    ) == ingested + timedelta(days=90)
    assert policy.expires_at({"source": "pdf"}, modified=modified, ingested=ingested) == modified + timedelta(days=10)


@pytest.mark.parametrize(
    "text",
    [
        "version: 2\n",
        "access: [{match: {source: pdf}, allow: []}]\n",
        "access: [{match: {source: pdf}, allow: [[]]}]\n",
        "access: [{match: {source: pdf}, allow: [['nogroup']]}]\n",
        "access: [{match: {colour: red}, allow: [['group:a']]}]\n",
        "retention: [{keep_for: forever}]\n",
        "- just a list\n",
        "access: [unclosed\n",
    ],
)
def test_invalid_policy_files_are_refused_with_the_file_named(tmp_path, text):
    with pytest.raises(ConfigError, match="policy"):
        _policy(tmp_path, text)


def test_sample_policy_parses():
    from testsupport.paths import SAMPLE_POLICY

    policy = load_policy(SAMPLE_POLICY)
    assert policy.roles["cfo"] == ["group:finance"]
