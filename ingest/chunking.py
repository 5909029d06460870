"""Chunking with ``unstructured``'s ``chunk_by_title`` and deterministic chunk ids."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from ingest.clean import clean_text


def chunk_id(document_id: str, version: int, ordinal: int, *, tenant: str | None = None) -> int:
    """A positive int64 that is the same every time: a retried write overwrites itself.
    With multi-tenancy the tenant is part of it: two tenants' copies of one document never
    share a primary key in the shared collection."""
    prefix = f"{tenant}\x1e" if tenant else ""
    digest = hashlib.sha256(f"{prefix}{document_id}\x00{version}\x00{ordinal}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def clean_elements(elements: Sequence[Any]) -> list[Any]:
    """Clean each element's text in place; drop elements left empty."""
    kept = []
    for el in elements:
        text = clean_text(getattr(el, "text", "") or "")
        if text:
            el.text = text
            kept.append(el)
    return kept


def _as_unstructured(elements: Sequence[Any]) -> list[Any]:
    """Sources may hand plain ``TextBlock``s; chunk_by_title needs unstructured elements."""
    from unstructured.documents import elements as el

    kinds = {"Title": el.Title, "ListItem": el.ListItem, "Table": el.Table, "NarrativeText": el.NarrativeText}
    return [
        e if hasattr(e, "metadata") else kinds.get(getattr(e, "category", ""), el.Text)(text=e.text) for e in elements
    ]


def chunk_elements(elements: Sequence[Any], max_characters: int) -> list[str]:
    """Section-aware chunks of at most ``max_characters``."""
    from unstructured.chunking.title import chunk_by_title

    chunks = chunk_by_title(
        _as_unstructured(elements),
        max_characters=max_characters,
        new_after_n_chars=int(max_characters * 0.8),
        combine_text_under_n_chars=min(200, max_characters // 2),
    )
    return [c.text.strip() for c in chunks if c.text and c.text.strip()]
