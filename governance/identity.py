"""Callers and principals.

A principal is a string: ``user:<email>`` (lower-cased), ``user:<source-specific id>``,
``group:<name>`` or ``role:<name>``. Principals are only ever compared as whole strings in
SQL with bound parameters, never pasted into a query or filter; validation here rejects
what no identity provider sends (control characters, absurd lengths) so that a hostile
claim fails loudly instead of matching something by accident.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from governance.errors import AccessDenied

MAX_PRINCIPAL_LENGTH = 512
MAX_CLAIM_VALUES = 10_000
PRINCIPAL_KINDS = ("user", "group", "role")


def _check_value(kind: str, value: str) -> str:
    if not isinstance(value, str):
        raise AccessDenied(f"{kind} must be a string, got {type(value).__name__}")
    # Control characters anywhere — leading and trailing ones too — are refused, never
    # stripped: "eng\n" is not the group "eng", and a claim carrying one is not trusted.
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise AccessDenied(
            f"{kind} name {value[:40]!r} contains control characters",
            hint="remove newlines / NUL / control characters from the claim",
        )
    value = unicodedata.normalize("NFC", value.strip())
    if not value:
        raise AccessDenied(f"empty {kind} name", hint="drop the empty value from the claims")
    if len(value) > MAX_PRINCIPAL_LENGTH:
        raise AccessDenied(
            f"{kind} name longer than {MAX_PRINCIPAL_LENGTH} characters",
            hint="identity providers do not issue names this long; check the token",
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise AccessDenied(
            f"{kind} name {value[:40]!r} contains control characters",
            hint="remove newlines / NUL / control characters from the claim",
        )
    return value


def principal(kind: str, value: str) -> str:
    """Build a validated principal string; user emails are lower-cased."""
    if kind not in PRINCIPAL_KINDS:
        raise AccessDenied(f"unknown principal kind {kind!r}", hint="use user, group or role")
    value = _check_value(kind, value)
    if kind == "user" and "@" in value and ":" not in value:
        value = value.lower()
    return f"{kind}:{value}"


def parse_principal(text: str) -> str:
    """Validate a principal written as ``kind:value`` (as in the policy file)."""
    if not isinstance(text, str) or ":" not in text:
        raise AccessDenied(
            f"principal {text!r} is not of the form kind:value",
            hint='write "user:alice@example.com", "group:eng" or "role:cfo"',
        )
    kind, _, value = text.partition(":")
    return principal(kind.strip(), value)


class User(BaseModel):
    """The caller of ``retrieval.search``: identity plus RBAC claims."""

    model_config = ConfigDict(frozen=True)

    id: str
    email: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    tenant: str | None = None

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        return _check_value("user id", v)

    @field_validator("email")
    @classmethod
    def _email_ok(cls, v: str | None) -> str | None:
        return None if v is None else _check_value("email", v).lower()

    @field_validator("groups", "roles", mode="before")
    @classmethod
    def _names_ok(cls, v: Any) -> tuple[str, ...]:
        if v is None:
            return ()
        if isinstance(v, str):
            v = [v]
        values = list(v)
        if len(values) > MAX_CLAIM_VALUES:
            raise AccessDenied(f"more than {MAX_CLAIM_VALUES} groups/roles in claims")
        return tuple(dict.fromkeys(_check_value("group/role", x) for x in values))

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], *, require_email_verified: bool = False) -> User:
        """Build a user from OIDC-style claims (``sub``, ``email``, ``groups``, ``roles``,
        optional ``tenant``/``tid``).

        ``email_verified: false`` means the email is not one of the user's principals (the
        identity provider did not check it). With ``require_email_verified`` an email counts
        only when ``email_verified`` is ``true`` (for providers that always send it); without
        it, a claim that is absent does not disqualify the email. ``groups`` and ``roles``
        must be lists of strings: an object, a nested list or a bare string is refused, never
        coerced."""
        if not isinstance(claims, Mapping):
            raise AccessDenied("claims must be a mapping")
        for name in ("groups", "roles"):
            value = claims.get(name)
            if value is not None and (
                not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value)
            ):
                raise AccessDenied(
                    f"claim {name!r} is not a list of strings ({type(value).__name__})",
                    hint="the identity provider must send groups and roles as JSON arrays of strings",
                )
        verified = claims.get("email_verified")
        if isinstance(verified, str):  # some providers send "true"/"false"
            verified = {"true": True, "false": False}.get(verified.strip().lower(), verified)
        if verified is not None and not isinstance(verified, bool):
            raise AccessDenied("claim 'email_verified' is neither true nor false")
        email_ok = verified is True or (verified is None and not require_email_verified)
        email = claims.get("email") if email_ok else None
        sub = claims.get("sub") or email
        if not sub:
            raise AccessDenied("claims carry neither sub nor a verified email", hint="pass an OIDC id token's claims")
        try:
            return cls(
                id=str(sub),
                email=email,
                groups=claims.get("groups") or (),
                roles=claims.get("roles") or (),
                tenant=claims.get("tenant") or claims.get("tid"),
            )
        except AccessDenied:
            raise
        except Exception as exc:  # pydantic ValidationError
            raise AccessDenied(f"malformed claims: {exc}") from exc

    def principals(self, role_grants: Mapping[str, Iterable[str]] | None = None) -> frozenset[str]:
        """Every principal this user holds, with roles expanded by the policy's ``roles``."""
        out: set[str] = {principal("user", self.id)}
        if self.email:
            out.add(principal("user", self.email))
        out.update(principal("group", g) for g in self.groups)
        out.update(principal("role", r) for r in self.roles)
        for role in self.roles:
            for granted in (role_grants or {}).get(role, ()):
                out.add(parse_principal(granted))
        return frozenset(out)


def as_user(user: User | Mapping[str, Any]) -> User:
    """Accept a ``User`` or an OIDC claims mapping."""
    if isinstance(user, User):
        return user
    return User.from_claims(user)
