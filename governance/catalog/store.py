"""The catalog: one database and a repository per concern.

Every SQL statement govrag runs lives in the repositories below or in
``governance.audit``; a caller names the concern it works on::

    catalog.scopes.allowed_scope_ids(principals)
    catalog.documents.stage_version(...)
    catalog.chunks.visible_chunks(...)
    catalog.runs.start_run("ingest")
    catalog.holds.add_hold("document", doc_id, reason, actor)
"""

from __future__ import annotations

from governance.catalog.chunks import ChunkRepository
from governance.catalog.documents import DocumentRepository
from governance.catalog.engine import Database
from governance.catalog.holds import HoldRepository
from governance.catalog.runs import RunRepository
from governance.catalog.scopes import ScopeRepository

__all__ = ["Catalog"]


class Catalog(Database):
    """Entry point to the SQL catalog (SQLite or PostgreSQL): the database (``session``,
    ``dispose``, ``safe_url``, ``checkpoint``) and its repositories."""

    scopes: ScopeRepository  # access scopes; which of them a caller's principals may read
    documents: DocumentRepository  # documents, their versions, origins, contributors, retirement
    chunks: ChunkRepository  # chunk rows: the search post-check, superseded chunks, doctor repairs
    runs: RunRepository  # ingest runs, quarantine records, status counts
    holds: HoldRepository  # legal holds; the subjects forgotten under the right to be forgotten

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        super().__init__(url, migrate=migrate)
        self.scopes = ScopeRepository(self)
        self.documents = DocumentRepository(self)
        self.chunks = ChunkRepository(self)
        self.runs = RunRepository(self)
        self.holds = HoldRepository(self)
