"""One valid vector row, for tests of the row contract and of what an index accepts."""

from __future__ import annotations

from typing import Any

from governance.vector_index import NEVER_EXPIRES, VectorRow


def vector_row(**changes: Any) -> VectorRow:
    """A row of document ``d`` in scope 1 that never expires; ``changes`` replace fields."""
    fields = dict(
        id=1,
        vector=[0.5] * 384,
        document_id="d",
        source="pdf",
        source_version=1,
        scope_id=1,
        classification="internal",
        expires_at=NEVER_EXPIRES,
        title="t",
        uri="u",
        text="x",
    )
    return VectorRow(**{**fields, **changes})
