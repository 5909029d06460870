"""Ingest runs and quarantine records in the catalog, and the counts ``govrag status`` and
``govrag metrics serve`` report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from governance.catalog.engine import Database, retry_read, rows_matched
from governance.catalog.models import ChunkRow, Document, Quarantine, Run, Scope, utcnow
from governance.catalog.statuses import DocumentStatus, RunStatus

__all__ = ["RunRepository"]


class RunRepository:
    """The ``runs`` and ``quarantine`` tables, and catalog-wide counts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def quarantine(
        self, *, run_id: int | None, source: str, path: str, document_id: str | None, reason: str, message: str
    ) -> None:
        """Record that a file or document was refused, and why (``reason`` is a short code)."""
        with self._db.session() as s:
            s.add(
                Quarantine(
                    run_id=run_id, source=source, path=path, document_id=document_id, reason=reason, message=message
                )
            )

    def start_run(self, kind: str) -> int:
        """Record a run of ``kind`` (``ingest``) as running; returns its id."""
        with self._db.session() as s:
            run = Run(kind=kind)
            s.add(run)
            s.flush()
            return run.id

    def finish_run(self, run_id: int, status: RunStatus, summary: dict[str, Any]) -> None:
        """Record how a run ended and what it did."""
        with self._db.session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                run.status, run.summary, run.finished_at = status, summary, utcnow()

    @retry_read
    def status_counts(self) -> dict[str, Any]:
        """What ``govrag status`` shows: documents by status and source, current chunks,
        scopes, quarantine counts and the last run."""
        with self._db.session() as s:
            docs = dict(s.execute(select(Document.status, func.count()).group_by(Document.status)).all())
            by_source = dict(
                s.execute(
                    select(Document.source, func.count())
                    .where(Document.status == DocumentStatus.ACTIVE)
                    .group_by(Document.source)
                ).all()
            )
            chunks = (
                s.scalar(
                    select(func.count())
                    .select_from(ChunkRow)
                    .join(Document, Document.id == ChunkRow.document_id)
                    .where(ChunkRow.version == Document.current_version)
                )
                or 0
            )
            quarantined = s.scalar(select(func.count()).select_from(Quarantine)) or 0
            scopes = s.scalar(select(func.count()).select_from(Scope)) or 0
            no_expiry = (
                s.scalar(
                    select(func.count())
                    .select_from(Document)
                    .where(Document.status == DocumentStatus.ACTIVE, Document.expires_at.is_(None))
                )
                or 0
            )
            files = s.scalar(select(func.count(func.distinct(Quarantine.path)))) or 0
            last = s.scalar(select(Run).order_by(Run.id.desc()).limit(1))
        return {
            "documents": docs,
            "documents_by_source": by_source,
            "chunks": int(chunks),
            "documents_without_expiry": int(no_expiry),
            "scopes": int(scopes),
            "quarantined": int(quarantined),
            "quarantined_files": int(files),
            "last_run": None
            if last is None
            else {
                "id": last.id,
                "kind": last.kind,
                "status": last.status,
                "started_at": last.started_at.isoformat(),
                "summary": last.summary,
            },
        }

    def gauges(self) -> dict[str, Any]:
        """What `govrag metrics serve` exports: quarantine counts by reason and, per run
        kind, the last run's status, start and end (batch jobs end before any scrape)."""
        with self._db.session() as s:
            quarantine = dict(s.execute(select(Quarantine.reason, func.count()).group_by(Quarantine.reason)).all())
            latest = select(Run.kind, func.max(Run.id).label("id")).group_by(Run.kind).subquery()
            runs = s.execute(
                select(Run.kind, Run.status, Run.started_at, Run.finished_at).join(latest, Run.id == latest.c.id)
            ).all()
        return {
            "quarantine_by_reason": {str(k): int(v) for k, v in quarantine.items()},
            "last_runs": {
                kind: {"status": status, "started_at": started, "finished_at": finished}
                for kind, status, started, finished in runs
            },
        }

    def drop_quarantine_before(self, cutoff: datetime) -> int:
        """Delete quarantine records made before ``cutoff``; returns how many."""
        with self._db.session() as s:
            return int(rows_matched(s.execute(delete(Quarantine).where(Quarantine.created_at < cutoff))) or 0)

    def quarantined_files(self, limit: int = 100) -> list[dict[str, Any]]:
        """Each quarantined file once, with its latest reason and how often it was refused,
        most recent first."""
        with self._db.session() as s:
            latest = (
                select(Quarantine.path, func.max(Quarantine.id).label("id"), func.count().label("times"))
                .group_by(Quarantine.path)
                .subquery()
            )
            rows = s.execute(
                select(Quarantine, latest.c.times)
                .join(latest, Quarantine.id == latest.c.id)
                .order_by(Quarantine.id.desc())
                .limit(limit)
            ).all()
            return [
                {
                    "path": r.path,
                    "source": r.source,
                    "reason": r.reason,
                    "message": r.message,
                    "times": int(times),
                    "run_id": r.run_id,
                    "at": r.created_at.isoformat(),
                }
                for r, times in rows
            ]

    def quarantined(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest quarantine records, most recent first."""
        with self._db.session() as s:
            rows = s.scalars(select(Quarantine).order_by(Quarantine.id.desc()).limit(limit)).all()
            return [
                {
                    "path": r.path,
                    "source": r.source,
                    "reason": r.reason,
                    "message": r.message,
                    "run_id": r.run_id,
                    "at": r.created_at.isoformat(),
                }
                for r in rows
            ]
