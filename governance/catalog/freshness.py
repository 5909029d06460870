"""How new a source's statement is: the ``source_as_of`` stamps on scopes and documents."""

from __future__ import annotations

__all__ = ["is_older"]


def is_older(as_of: str | None, than: str | None) -> bool:
    """True when a statement stamped ``as_of`` is older than one stamped ``than``; unknown
    times never count as older (a source without timestamps still applies)."""
    return as_of is not None and than is not None and as_of < than
