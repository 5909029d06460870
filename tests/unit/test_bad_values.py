"""Bad values never stop a run, and claims that cannot be trusted are refused.

Expiries of documents dated far in the future; claim values with control characters
anywhere; groups and roles that are not lists of strings; unverified emails. (An export
full of bad timestamps, ingested: tests/integration/test_bad_values.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from governance.errors import AccessDenied, ConfigError
from governance.identity import User
from governance.policy import LATEST, Policy, parse_duration

NOW = datetime.now(UTC)
KEEP = Policy.model_validate({"retention": [{"match": {}, "keep_for": "1095d"}]})


def test_document_time_in_year_9999_gets_the_latest_expiry_instead_of_a_crash() -> None:
    far = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    assert KEEP.expires_at({}, modified=far, ingested=NOW) == LATEST


def test_expiry_past_the_last_representable_date_is_clamped() -> None:
    forever = Policy.model_validate({"retention": [{"match": {}, "keep_for": "999999999d", "from": "ingested"}]})
    assert forever.expires_at({}, modified=None, ingested=NOW) == LATEST


def test_naive_document_time_is_read_as_utc() -> None:
    assert KEEP.expires_at({}, modified=datetime(2026, 1, 1), ingested=NOW) == datetime(
        2029, 1, 1, tzinfo=UTC
    ) - timedelta(days=1)


def test_absurd_duration_is_a_config_error_not_a_crash() -> None:
    with pytest.raises(ConfigError, match="too long"):
        parse_duration("99999999999d")


@pytest.mark.parametrize("value", ["eng\n", "\teng", "\x00eng", "eng\u0085", "en\x1bg"])
def test_claim_values_with_control_characters_anywhere_are_refused(value: str) -> None:
    with pytest.raises(AccessDenied, match="control characters"):
        User.from_claims({"sub": "alice", "groups": [value]})
    with pytest.raises(AccessDenied):
        User.from_claims({"sub": value})


@pytest.mark.parametrize("groups", [{"eng": True}, [["eng"]], "eng", [1, 2], [{"name": "eng"}]])
def test_groups_that_are_not_a_list_of_strings_are_refused(groups: object) -> None:
    with pytest.raises(AccessDenied):
        User.from_claims({"sub": "alice", "groups": groups})
    with pytest.raises(AccessDenied):
        User.from_claims({"sub": "alice", "roles": groups})


def test_unverified_email_is_not_a_principal() -> None:
    user = User.from_claims({"sub": "u-1", "email": "ceo@corp.example", "email_verified": False})
    assert "user:ceo@corp.example" not in user.principals()
    assert (
        "user:ceo@corp.example"
        in User.from_claims({"sub": "u-1", "email": "ceo@corp.example", "email_verified": True}).principals()
    )


def test_missing_email_verified_counts_only_when_not_required() -> None:
    claims = {"sub": "u-1", "email": "ceo@corp.example"}
    assert "user:ceo@corp.example" in User.from_claims(claims).principals()
    assert "user:ceo@corp.example" not in User.from_claims(claims, require_email_verified=True).principals()


def test_unverified_email_alone_is_no_identity() -> None:
    with pytest.raises(AccessDenied, match="verified"):
        User.from_claims({"email": "ceo@corp.example", "email_verified": "false"})
