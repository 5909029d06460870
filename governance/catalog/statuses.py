"""The closed sets of values the catalog stores as strings.

Each member's value is the exact string in the database, so rows written before these
enums existed read back unchanged and comparing a stored string with a member just works.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DocumentStatus", "HoldKind", "RunStatus", "VersionState"]


class DocumentStatus(StrEnum):
    """``documents.status``: whether search may show a document and what is left of it."""

    ACTIVE = "active"
    TOMBSTONED = "tombstoned"  # gone from its source: out of search, content kept
    PURGING = "purging"  # claimed by a purge that has not finished (out of search, refused to new holds)
    PURGED = "purged"  # content dropped; a tombstone (id, hashes, when, why) remains


class VersionState(StrEnum):
    """``versions.state``: which version of a document search shows."""

    PENDING = "pending"  # staged, not yet published
    CURRENT = "current"
    SUPERSEDED = "superseded"  # replaced; its vectors are deleted, then its chunk rows


class RunStatus(StrEnum):
    """``runs.status``."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class HoldKind(StrEnum):
    """``holds.kind``: what a legal hold names."""

    DOCUMENT = "document"
    SOURCE = "source"
    SUBJECT = "subject"  # a principal: documents they wrote or contributed to
