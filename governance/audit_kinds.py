"""The kinds of audit events (a light module: the CLI lists them in its help without
loading the catalog)."""

from __future__ import annotations

KINDS: tuple[str, ...] = (
    "acl_change",
    "doctor_repair",
    "forget_subject",
    "hold_add",
    "hold_remove",
    "ingest",
    "permission_sync",
    "purge",
    "purge_held",
    "purge_verified",
    "search",
    "tombstone",
)
