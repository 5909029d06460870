"""What an index holds, as text, for tests that compare runs."""

from __future__ import annotations

from governance.stores import Stores


def index_texts(stores: Stores) -> dict[str, list[str]]:
    """Each document's chunk texts in the index, in chunk id order."""
    texts: dict[str, list[str]] = {}
    for row in sorted(stores.index.query("id >= 0", fields=["id", "document_id", "text"]), key=lambda r: r["id"]):
        texts.setdefault(row["document_id"], []).append(row["text"])
    return texts
