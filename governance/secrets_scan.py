"""Detector for credentials that must never reach the vector index.

Deliberately simple regexes for high-confidence secret shapes: private key blocks, AWS access
key ids and secret keys, Slack tokens and webhooks, JWTs, GitHub tokens. A finding carries
where the secret sits and a masked preview; the secret itself is never returned, logged or
put into metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

__all__ = ["PATTERNS", "SecretFinding", "scan_text", "scan_texts"]

PATTERNS: dict[str, re.Pattern[str]] = {
    "private_key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"),
    "aws_access_key_id": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Z0-9])"),
    "aws_secret_access_key": re.compile(
        r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
    ),
    "slack_token": re.compile(r"(?<![A-Za-z0-9])xox(?:[abposr]|e\.[a-z]+|a-[0-9])-[0-9A-Za-z-]{10,}"),
    "slack_webhook": re.compile(r"https://hooks\.slack\.com/(?:services|workflows)/T[A-Z0-9]+/[A-Z0-9]+/[A-Za-z0-9]{16,}"),
    "jwt": re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    "github_token": re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
}


@dataclass(frozen=True)
class SecretFinding:
    """One secret-shaped match; ``preview`` masks all but its first four characters."""

    kind: str
    start: int
    end: int
    preview: str
    ref: str | None = None  # what the text belongs to (a chunk id), set by scan_texts


def _mask(secret: str) -> str:
    return secret[:4] + "…" + f"({len(secret)} chars)"


def scan_text(text: str) -> list[SecretFinding]:
    """Every secret-shaped match in ``text``, in order of position."""
    if not text:
        return []
    found = [
        SecretFinding(kind, m.start(), m.end(), _mask(m.group(0)))
        for kind, pattern in PATTERNS.items()
        for m in pattern.finditer(text)
    ]
    return sorted(found, key=lambda f: (f.start, f.kind))


def scan_texts(texts: Iterable[tuple[str, str]]) -> Iterator[SecretFinding]:
    """Findings over ``(ref, text)`` pairs, each tagged with its ref."""
    for ref, text in texts:
        for f in scan_text(text):
            yield SecretFinding(f.kind, f.start, f.end, f.preview, ref)
