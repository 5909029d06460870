"""The SQL catalog: documents, versions, chunks, scopes, audit, quarantine, runs."""

from governance.catalog.store import Catalog

__all__ = ["Catalog"]
