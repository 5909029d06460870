"""The SQL catalog: documents, versions, chunks, scopes, audit, quarantine, runs."""

from governance.catalog.engine import catalog_exists
from governance.catalog.store import Catalog

__all__ = ["Catalog", "catalog_exists"]
