"""The policy file (``GOVRAG_POLICY``, YAML): access, retention, roles, workspaces,
redaction, audit and sources rules. docs/policy.md describes every key; the keys and their
meaning are a user contract.

Rules are read in order and the first rule that matches a document wins, like a firewall.
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from governance.errors import AccessDenied, ConfigError
from governance.identity import parse_principal

_DURATION = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # the latest expiry a document can have


def parse_duration(text: str) -> timedelta:
    """``30d`` / ``12h`` / ``90m`` → timedelta."""
    m = _DURATION.match(str(text))
    if not m:
        raise ConfigError(f"bad duration {text!r}", hint="write e.g. 30d, 12h or 90m")
    try:
        return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    except OverflowError:
        raise ConfigError(f"duration {text!r} is too long", hint="keep durations under 999999999 days") from None


@lru_cache(maxsize=512)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    # ``**`` spans directories, ``*`` and ``?`` stay inside one path segment.
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append(r"(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(r".*")
            i += 2
        elif pattern[i] == "*":
            out.append(r"[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def glob_match(pattern: str, value: str) -> bool:
    """Path glob where ``**`` matches across ``/`` (``finance/**`` matches ``finance/a/b.pdf``)."""
    return bool(_glob_regex(pattern).match(value))


def _principal(value: Any) -> str:
    """A principal of a rule; a bad one is a validation error, so the message names its place."""
    try:
        return parse_principal(value)
    except AccessDenied as exc:
        raise ValueError(f"{exc} (write group:NAME, user:EMAIL or role:NAME)") from None


class Match(BaseModel):
    """Conditions of a rule; every given key must match (globs on strings)."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = None
    path: str | None = None
    space: str | None = None
    channel: str | None = None
    workspace: str | None = None
    classification: str | None = None

    def matches(self, facts: dict[str, Any]) -> bool:
        for key, pattern in self.model_dump(exclude_none=True).items():
            value = facts.get(key)
            if value is None or not glob_match(str(pattern), str(value)):
                return False
        return True

    def identity(self) -> str:
        """Stable text naming the rule (used as its scope key)."""
        return ",".join(f"{k}={v}" for k, v in sorted(self.model_dump(exclude_none=True).items()))


class AccessRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: Match = Field(default_factory=Match)
    allow: list[list[str]]
    classification: str | None = None

    @field_validator("allow")
    @classmethod
    def _principals_ok(cls, v: list[list[str]]) -> list[list[str]]:
        if not v or any(not layer for layer in v):
            raise ValueError("allow needs at least one layer and no empty layer")
        return [[_principal(p) for p in layer] for layer in v]


class RetentionRule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    match: Match = Field(default_factory=Match)
    keep_for: timedelta
    from_: Literal["modified", "ingested"] = Field(default="modified", alias="from")

    @field_validator("keep_for", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> timedelta:
        return v if isinstance(v, timedelta) else parse_duration(v)


class RedactionRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: Match = Field(default_factory=Match)
    action: Literal["redact", "block", "tag"] = "redact"


class SourceRule(BaseModel):
    """Facts about an export that the export itself may not state, by its path::

    sources:
      - match: {path: "**/acme-wiki*"}   # glob on the export's absolute path
        site: acme.atlassian.net          # Confluence site / Slack team id of the export
        full_export: true                 # its documents are all there: prune the rest
    """

    model_config = ConfigDict(extra="forbid")

    match: Match = Field(default_factory=Match)
    site: str | None = Field(default=None, min_length=1, max_length=200)
    full_export: bool = False

    @field_validator("match")
    @classmethod
    def _path_only(cls, v: Match) -> Match:
        if set(v.model_dump(exclude_none=True)) - {"path"}:
            raise ValueError("sources rules match on path only")
        return v


class AuditPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store_query_text: bool = False


class Policy(BaseModel):
    """A parsed policy file."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    access: list[AccessRule] = Field(default_factory=list)
    retention: list[RetentionRule] = Field(default_factory=list)
    roles: dict[str, list[str]] = Field(default_factory=dict)
    workspaces: dict[str, Any] = Field(default_factory=dict)
    redaction: list[RedactionRule] = Field(default_factory=list)
    audit: AuditPolicy = Field(default_factory=AuditPolicy)
    sources: list[SourceRule] = Field(default_factory=list)

    @field_validator("roles")
    @classmethod
    def _roles_ok(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return {role: [_principal(p) for p in grants] for role, grants in v.items()}

    def access_rule(self, facts: dict[str, Any]) -> tuple[int, AccessRule] | None:
        """The first access rule matching ``facts`` and its position, or None."""
        for i, rule in enumerate(self.access):
            if rule.match.matches(facts):
                return i, rule
        return None

    def source_rule(self, path: Path | str) -> SourceRule | None:
        """The first ``sources`` rule whose path glob matches the export's absolute path."""
        where = Path(path).resolve().as_posix()
        for rule in self.sources:
            if rule.match.matches({"path": where}):
                return rule
        return None

    def source_site(self, path: Path | str) -> str | None:
        rule = self.source_rule(path)
        return rule.site if rule else None

    def full_export(self, path: Path | str) -> bool:
        rule = self.source_rule(path)
        return bool(rule and rule.full_export)

    def redaction_action(self, facts: dict[str, Any]) -> str:
        """``redact`` | ``block`` | ``tag`` for a document; with no matching rule, ``redact``
        (sensitive values must not reach the index unless a rule says otherwise)."""
        for rule in self.redaction:
            if rule.match.matches(facts):
                return rule.action
        return "redact"

    def retention_rule(self, facts: dict[str, Any]) -> RetentionRule | None:
        for rule in self.retention:
            if rule.match.matches(facts):
                return rule
        return None

    def expires_at(self, facts: dict[str, Any], *, modified: datetime | None, ingested: datetime) -> datetime | None:
        """When a document with these facts expires, or None when no retention rule applies."""
        rule = self.retention_rule(facts)
        if rule is None:
            return None
        if modified is not None and modified.tzinfo is None:
            modified = modified.replace(tzinfo=UTC)
        anchor = ingested if rule.from_ == "ingested" or modified is None else modified
        try:
            return anchor + rule.keep_for
        except OverflowError:  # a document time near year 9999: kept as long as a date can say
            return LATEST


def load_policy(path: Path | str | None, *, hint_name: str = "GOVRAG_POLICY") -> Policy:
    """Read and validate a policy file; no path → an empty policy (everything fails closed).
    ``hint_name`` is what the user set the path with (``--policy`` on the command line)."""
    if path is None:
        return Policy()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"policy file {path} not found", hint=f"set {hint_name} to an existing YAML file") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"policy file {path} is a directory", hint=f"set {hint_name} to a YAML file") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"policy file {path} is not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"policy file {path} is not valid YAML: {_yaml_problem(exc)}",
            hint="check the indentation and quoting on that line",
        ) from None
    return parse_policy(raw, str(path))


def parse_policy(raw: Any, where: str = "policy") -> Policy:
    """Validate a parsed policy mapping; errors name ``where``, the key and what to write."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"policy file {where} must be a mapping at the top level")
    unknown = unknown_keys(raw, Policy)
    if unknown:
        at, key, close = unknown[0]
        more = f" (and {len(unknown) - 1} more unknown key(s))" if len(unknown) > 1 else ""
        raise ConfigError(
            f"policy file {where}: unknown key {key!r} {at}{more}",
            hint=f"did you mean {close!r}?" if close else "see docs/policy.md for the keys",
        )
    if raw.get("version", 1) != 1:
        raise ConfigError(f"policy file {where}: unsupported version {raw.get('version')!r}", hint="use version: 1")
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".") or "the top level"
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(
            f"policy file {where} is invalid at {loc}: {msg}", hint="see docs/policy.md for what each key takes"
        ) from None
    except (AccessDenied, ConfigError) as exc:
        raise ConfigError(f"policy file {where} is invalid: {exc}", hint=exc.hint or "see docs/policy.md") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def _keys_of(model: type[BaseModel]) -> dict[str, Any]:
    """The YAML keys a model takes (aliases where set) and each one's type."""
    return {(f.alias or name): f.annotation for name, f in model.model_fields.items()}


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds and whether it holds a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if get_origin(annotation) is list:
        (inner,) = get_args(annotation) or (None,)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner, True
    return None, False


def unknown_keys(raw: dict[str, Any], model: type[BaseModel], where: str = "") -> list[tuple[str, str, str | None]]:
    """Every key of ``raw`` (recursively) that ``model`` does not take: ``(where, key,
    closest valid key or None)``. A misspelt ``retension:`` would otherwise be ignored and
    leave documents without expiry."""
    known = _keys_of(model)
    found: list[tuple[str, str, str | None]] = []
    for key, value in raw.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            found.append((f"in {where}" if where else "at the top level", str(key), close[0] if close else None))
            continue
        inner, many = _model_in(known[key])
        if inner is None:
            continue
        items = value if many and isinstance(value, list) else [value] if not many else []
        for i, item in enumerate(items):
            if isinstance(item, dict):
                path = f"{where}.{key}" if where else str(key)
                found += unknown_keys(item, inner, f"{path}[{i}]" if many else path)
    return found
