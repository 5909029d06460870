"""The index's secret check: credentials that must never reach the vector index.

It uses the redactor's own patterns (:mod:`governance.redaction`, the secret kinds only), so
the check and the redactor cannot disagree about what a secret looks like: whatever ingest
would have redacted, the check finds if it got through (e.g. under a ``tag`` policy, or
written by an older version). detect-secrets is not run here: the check reads every indexed
text, and the patterns alone keep it at pattern speed. A finding carries where the secret
sits and a masked preview; the secret itself is never returned, logged or put into metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from governance.redaction import PLACEHOLDER, SECRET_KINDS, find_sensitive

__all__ = ["KIND_NAMES", "SecretFinding", "scan_text", "scan_texts"]

# Redaction kind -> the name reports and Dagster check metadata have always used.
KIND_NAMES: dict[str, str] = {
    "PRIVATE_KEY": "private_key",
    "AWS_KEY": "aws_access_key_id",
    "AWS_SECRET": "aws_secret_access_key",
    "SLACK_TOKEN": "slack_token",
    "SLACK_WEBHOOK": "slack_webhook",
    "JWT": "jwt",
    "GITHUB_TOKEN": "github_token",
    "GOOGLE_API_KEY": "google_api_key",
    "STRIPE_KEY": "stripe_key",
    "OPENAI_KEY": "openai_key",
    "API_KEY": "api_key",
    "SECRET": "secret",
}
assert set(KIND_NAMES) == SECRET_KINDS


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
    """Every secret-shaped match in ``text``, in order of position. Redaction placeholders
    (``[REDACTED:JWT]``, also after ``token=``) are not secrets."""
    if not text:
        return []
    out = []
    for f in find_sensitive(text, secret_values=()):
        value = text[f.start : f.end]
        if f.kind not in SECRET_KINDS or PLACEHOLDER.search(value):
            continue
        out.append(SecretFinding(KIND_NAMES[f.kind], f.start, f.end, _mask(value)))
    return out


def scan_texts(texts: Iterable[tuple[str, str]]) -> Iterator[SecretFinding]:
    """Findings over ``(ref, text)`` pairs, each tagged with its ref."""
    for ref, text in texts:
        for f in scan_text(text):
            yield SecretFinding(f.kind, f.start, f.end, f.preview, ref)
