"""The SQL catalog: documents, versions, chunks, scopes, audit, quarantine, runs."""

from governance.catalog.store import Catalog, catalog_exists

__all__ = ["Catalog", "catalog_exists"]
