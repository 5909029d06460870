"""Legal holds and the right to be forgotten in the catalog: which documents a purge must
keep, claiming the others for a purge, and the subjects erased for good."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from governance.catalog.document_queries import documents_info_in
from governance.catalog.engine import PARAM_BATCH, Database, retry_read, rows_matched
from governance.catalog.models import Document, ForgottenSubject, Hold, utcnow
from governance.catalog.statuses import DocumentStatus, HoldKind
from governance.errors import HoldRefused

__all__ = ["HoldRepository"]


def _match_holds(holds: Sequence[Hold], info: dict[str, dict[str, Any]], ids: Sequence[str]) -> dict[str, str]:
    """Document id -> the first hold that covers it (by id, source or origin, author or contributor)."""
    out: dict[str, str] = {}
    for doc_id in ids:
        d = info.get(doc_id, {})
        for h in holds:
            k, v = h.kind, h.value
            if (
                (k == HoldKind.DOCUMENT and v == doc_id)
                or (k == HoldKind.SOURCE and v in (d.get("source"), d.get("origin")))
                or (k == HoldKind.SUBJECT and (v == d.get("author") or v in d.get("contributors", [])))
            ):
                out[doc_id] = f"{k}:{v}"
                break
    return out


class HoldRepository:
    """The ``holds`` and ``forgotten_subjects`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _lock_holds(self, s: Session) -> None:
        """Serialize adding holds with claiming documents for a purge: a hold either commits
        before a purge batch checks holds (and the purge skips its documents) or after the
        batch claimed them (and the hold is refused) — never in between."""
        if self._db.dialect == "postgresql":
            s.execute(text("LOCK TABLE holds IN SHARE ROW EXCLUSIVE MODE"))
        else:  # SQLite: a write takes the database's write lock for the whole transaction
            s.execute(update(Hold).where(Hold.id == -1).values(reason=""))

    def add_hold(self, kind: HoldKind | str, value: str, reason: str, actor: str | None) -> bool:
        """Put a legal hold on a document, a source or a subject; False when it exists
        already. A document that a purge has claimed or purged cannot be held any more."""
        if kind not in {k.value for k in HoldKind}:
            raise ValueError("hold kind must be document, source or subject")
        kind = HoldKind(kind)
        with self._db.session() as s:
            self._lock_holds(s)
            if s.scalar(select(Hold).where(Hold.kind == kind, Hold.value == value)) is not None:
                return False
            if kind == HoldKind.DOCUMENT:
                status = s.scalar(select(Document.status).where(Document.id == value))
                if status in (DocumentStatus.PURGING, DocumentStatus.PURGED):
                    raise HoldRefused(
                        f"document {value!r} is {status} already: a hold cannot keep it",
                        hint="holds keep documents that still exist; see govrag audit export --kind purge",
                    )
            s.add(Hold(kind=kind, value=value, reason=reason, actor=actor))
            return True

    def claim_for_purge(self, document_ids: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """In one transaction with the hold lock: the documents under legal hold *now* (and
        by which hold), and the others marked ``purging`` (out of search at once, refused to
        new holds, picked up again by a purge that a crash interrupted)."""
        ids = list(document_ids)
        with self._db.session() as s:
            self._lock_holds(s)
            held = _match_holds(list(s.scalars(select(Hold).order_by(Hold.id))), documents_info_in(s, ids), ids)
            claimed = [d for d in ids if d not in held]
            for i in range(0, len(claimed), PARAM_BATCH):
                s.execute(
                    update(Document)
                    .where(
                        Document.id.in_(claimed[i : i + PARAM_BATCH]),
                        Document.status.in_((DocumentStatus.ACTIVE, DocumentStatus.TOMBSTONED, DocumentStatus.PURGING)),
                    )
                    .values(status=DocumentStatus.PURGING, updated_at=utcnow())
                )
        return claimed, held

    def remove_hold(self, kind: HoldKind | str, value: str) -> bool:
        """Lift a legal hold; False when there was none."""
        with self._db.session() as s:
            return bool(rows_matched(s.execute(delete(Hold).where(Hold.kind == kind, Hold.value == value))))

    @retry_read
    def holds(self) -> list[dict[str, Any]]:
        """Every legal hold, oldest first."""
        with self._db.session() as s:
            return [
                {
                    "kind": h.kind,
                    "value": h.value,
                    "reason": h.reason,
                    "actor": h.actor,
                    "created_at": h.created_at.isoformat(),
                }
                for h in s.scalars(select(Hold).order_by(Hold.id))
            ]

    def held(self, document_ids: Sequence[str]) -> dict[str, str]:
        """Which of these documents are under legal hold, and by which hold."""
        ids = list(document_ids)
        with self._db.session() as s:
            holds = list(s.scalars(select(Hold).order_by(Hold.id)))
            if not holds:
                return {}
            return _match_holds(holds, documents_info_in(s, ids), ids)

    def forget_subject(self, principal_: str) -> None:
        """Remember an erased person: their content is dropped on every later ingest too."""
        with self._db.session() as s:
            if s.get(ForgottenSubject, principal_) is None:
                s.add(ForgottenSubject(principal=principal_))

    @retry_read
    def forgotten_subjects(self) -> frozenset[str]:
        """Every person erased under the right to be forgotten."""
        with self._db.session() as s:
            return frozenset(s.scalars(select(ForgottenSubject.principal)))
