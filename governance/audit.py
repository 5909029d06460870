"""Append-only, hash-chained audit log.

Each event's hash covers the previous event's hash and the event itself, so an edited,
deleted or reordered event breaks the chain at a place :func:`verify` reports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from governance.audit_kinds import KINDS
from governance.catalog.engine import Database
from governance.catalog.models import AuditEvent, AuditHead, utcnow

GENESIS = "0" * 64


def _digest(prev_hash: str, seq: int, ts: datetime, kind: str, actor: str | None, payload: dict[str, Any]) -> str:
    body = json.dumps(
        {"seq": seq, "ts": ts.isoformat(), "kind": kind, "actor": actor, "payload": payload},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def record(catalog: Database, kind: str, actor: str | None, payload: dict[str, Any]) -> int:
    """Append one event; returns its sequence number."""
    if kind not in KINDS:
        raise ValueError(f"unknown audit event kind {kind!r}: add it to governance.audit.KINDS")
    with catalog.session() as s:
        # Writing the head row first takes the write lock (SQLite) / row lock (PostgreSQL),
        # so concurrent appenders queue instead of forking the chain.
        s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
        head = s.get(AuditHead, 1, populate_existing=True)
        assert head is not None, "audit_head row missing: run the catalog migrations"
        ts = utcnow()
        digest = _digest(head.last_hash, head.seq, ts, kind, actor, payload)
        s.add(
            AuditEvent(
                seq=head.seq, ts=ts, kind=kind, actor=actor, payload=payload, prev_hash=head.last_hash, hash=digest
            )
        )
        head.last_hash = digest
        return head.seq


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    problem: str


def verify(catalog: Database) -> list[ChainProblem]:
    """Walk the chain; returns every break found (empty list: intact)."""
    problems: list[ChainProblem] = []
    prev, expected_seq = GENESIS, 1
    with catalog.session() as s:
        head = s.get(AuditHead, 1)
        for ev in s.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
            if ev.seq != expected_seq:
                problems.append(
                    ChainProblem(ev.seq, f"expected event {expected_seq} here: events missing or reordered")
                )
            if ev.prev_hash != prev:
                problems.append(
                    ChainProblem(ev.seq, "previous-hash link broken: an earlier event was deleted, edited or reordered")
                )
            if _digest(ev.prev_hash, ev.seq, ev.ts, ev.kind, ev.actor, ev.payload) != ev.hash:
                problems.append(ChainProblem(ev.seq, "content does not match its hash: event edited"))
            prev, expected_seq = ev.hash, ev.seq + 1
        if head is not None and head.seq != expected_seq - 1:
            problems.append(ChainProblem(head.seq, "last events missing (head points past the end)"))
    return problems


def events(
    catalog: Database,
    *,
    kind: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
    newest_first: bool = True,
) -> list[dict[str, Any]]:
    """Audit events as dicts (with their hashes, so an export can be re-verified)."""
    with catalog.session() as s:
        order = AuditEvent.seq.desc() if newest_first else AuditEvent.seq.asc()
        q = select(AuditEvent).order_by(order).limit(limit)
        if kind:
            q = q.where(AuditEvent.kind == kind)
        if since is not None:
            q = q.where(AuditEvent.ts >= since)
        return [
            {
                "seq": e.seq,
                "ts": e.ts.isoformat(),
                "kind": e.kind,
                "actor": e.actor,
                "payload": e.payload,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in s.scalars(q)
        ]
