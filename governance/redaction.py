"""Finding and redacting personal data and secrets before anything is embedded or stored.

Spans come from our own patterns (with checksums where the format has one: Luhn for card
numbers, ISO 7064 mod 97 for IBANs); ``detect-secrets`` (Yelp's maintained detector) runs on
top as a second opinion for secret formats, and any token it flags that our patterns missed
is redacted whole. Values are never logged or returned in summaries, only their kinds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detect_secrets.plugins.base import BasePlugin

_PATTERNS: dict[str, re.Pattern[str]] = {
    "PRIVATE_KEY": re.compile(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        re.DOTALL,
    ),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    "AWS_KEY": re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
    "AWS_SECRET": re.compile(r"(?i)\baws_?secret_?access_?key\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}['\"]?"),
    "SLACK_TOKEN": re.compile(r"\bxox(?:[abposr]|e\.[a-z]+|a-[0-9])-[A-Za-z0-9-]{10,}"),
    "SLACK_WEBHOOK": re.compile(r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]+"),
    "GITHUB_TOKEN": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b"),
    "GOOGLE_API_KEY": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "STRIPE_KEY": re.compile(r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}\b"),
    "OPENAI_KEY": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}\b"),
    "API_KEY": re.compile(r"(?i)\b(?:api[_-]?key|secret|password|passwd|token)\s*[:=]\s*['\"]?[^\s'\"]{8,}['\"]?"),
    "EMAIL": re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
    "IBAN": re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
    "CARD_NUMBER": re.compile(r"\b(?:\d[ -]?){12,18}\d\b"),
    "US_SSN": re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"),
    "PHONE": re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,4}[ .-]\d{3,4}[ .-]\d{3,4}(?!\w)"),
}
# Earlier kinds win when spans overlap (a JWT inside "token=..." is a JWT).
_ORDER = list(_PATTERNS)
# The kinds that are credentials (the rest is personal data); the index's secret check
# (governance.secrets_scan) looks for these, so the redactor and the check agree.
SECRET_KINDS = frozenset(
    {
        "PRIVATE_KEY",
        "JWT",
        "AWS_KEY",
        "AWS_SECRET",
        "SLACK_TOKEN",
        "SLACK_WEBHOOK",
        "GITHUB_TOKEN",
        "GOOGLE_API_KEY",
        "STRIPE_KEY",
        "OPENAI_KEY",
        "API_KEY",
        "SECRET",
    }
)
PLACEHOLDER = re.compile(r"\[REDACTED:[A-Za-z_]+\]")


def luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    try:
        return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1
    except ValueError:
        return False


def _valid(kind: str, value: str) -> bool:
    if kind == "CARD_NUMBER":
        digits = re.sub(r"\D", "", value)
        return 13 <= len(digits) <= 19 and luhn_ok(digits)
    if kind == "IBAN":
        return iban_ok(value)
    if kind == "PHONE":
        return 8 <= len(re.sub(r"\D", "", value)) <= 15
    return True


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


_DETECT_SECRETS_PLUGINS = (
    "AWSKeyDetector",
    "SlackDetector",
    "JwtTokenDetector",
    "PrivateKeyDetector",
    "GitHubTokenDetector",
    "StripeDetector",
    "TwilioKeyDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "OpenAIDetector",
    "MailchimpDetector",
    "SendGridDetector",
    "SquareOAuthDetector",
    "NpmDetector",
)


@lru_cache(maxsize=1)
def _secret_plugins() -> tuple[BasePlugin, ...]:
    """detect-secrets' format plugins, built once per process. Calling them directly costs
    ~0.03 ms a line; going through ``scan_line`` inside ``transient_settings`` cost ~12 ms
    per call (settings entered each time), i.e. per document during ingest."""
    try:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    except ImportError:  # optional second opinion
        return ()
    by_type: Mapping[str, type[BasePlugin]] = get_mapping_from_secret_type_to_class()
    by_name = {plugin.__name__: plugin for plugin in by_type.values()}
    return tuple(by_name[name]() for name in _DETECT_SECRETS_PLUGINS if name in by_name)


def _detect_secrets_tokens(text: str) -> Iterable[tuple[str, str]]:
    """(kind, value) pairs from detect-secrets' format plugins (no entropy/keyword guessing)."""
    plugins = _secret_plugins()
    out: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            for plugin in plugins:
                out.extend(
                    (s.type, s.secret_value)
                    for s in plugin.analyze_line(filename="text", line=line, line_number=number)
                    if s.secret_value
                )
    return out


def find_sensitive(text: str, secret_values: Iterable[str] | None = None) -> list[Finding]:
    """Non-overlapping findings, in text order. ``secret_values``: values detect-secrets
    already flagged (see :func:`redact_many`); None runs it on ``text``."""
    spans: list[Finding] = []
    for kind in _ORDER:
        for m in _PATTERNS[kind].finditer(text):
            if _valid(kind, m.group(0)):
                spans.append(Finding(kind, m.start(), m.end()))
    if secret_values is None:
        secret_values = {value for _, value in _detect_secrets_tokens(text)}
    for value in secret_values:
        for m in re.finditer(re.escape(value), text):
            # Widen to the whole whitespace-delimited token: detectors may report a prefix.
            start, end = m.start(), m.end()
            while start > 0 and not text[start - 1].isspace():
                start -= 1
            while end < len(text) and not text[end].isspace():
                end += 1
            spans.append(Finding("SECRET", start, end))
    spans.sort(key=lambda f: (f.start, -(f.end - f.start)))
    merged: list[Finding] = []
    for f in spans:
        if merged and f.start < merged[-1].end:
            last = merged[-1]
            kind = f.kind if last.kind == "SECRET" else last.kind  # a named kind beats the generic one
            merged[-1] = Finding(kind, last.start, max(last.end, f.end))
            continue
        merged.append(f)
    return merged


def redact_many(texts: list[str]) -> tuple[list[str], Counter[str]]:
    """:func:`redact` over many texts, running detect-secrets once for all of them."""
    values = {value for _, value in _detect_secrets_tokens("\n".join(texts))}
    out, counts = [], Counter[str]()
    for text in texts:
        red, c = redact(text, values)
        out.append(red)
        counts += c
    return out, counts


def redact(text: str, secret_values: Iterable[str] | None = None) -> tuple[str, Counter[str]]:
    """Replace every finding with ``[REDACTED:KIND]``; returns the text and counts by kind."""
    findings = find_sensitive(text, secret_values)
    if not findings:
        return text, Counter()
    parts, pos = [], 0
    for f in findings:
        parts.append(text[pos : f.start])
        parts.append(f"[REDACTED:{f.kind}]")
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts), Counter(f.kind for f in findings)
