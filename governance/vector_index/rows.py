"""What goes into the collection (:class:`VectorRow`) and what a search gives back
(:class:`RawHit`).

A ``VectorRow`` is checked against the collection's schema when it is made, so a bad value
fails where it was built, naming the field, instead of as a rejected batch of 2,000 rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from governance.vector_index.filters import check_int, check_tenant
from governance.vector_index.schema import (
    KEPT_CHARS,
    NEVER_EXPIRES,
    SCALAR_FIELDS,
    TENANT_FIELD,
)

_INT_FIELDS = ("id", *(name for name, (kind, _) in SCALAR_FIELDS.items() if kind == "int64"))
_STRING_FIELDS = tuple(name for name, (kind, _) in SCALAR_FIELDS.items() if kind == "varchar")


@dataclass(frozen=True)
class VectorRow:
    """One chunk's vector with its ACL, version and expiry metadata, as the collection holds it.

    Made from keywords (``VectorRow(**mapping)`` for a catalog row or a row read back from
    the index). Integers must be int64s; ``title``, ``uri`` and ``text`` are cut to what the
    collection keeps (:data:`~governance.vector_index.schema.KEPT_CHARS`, then the field's
    bytes); other strings longer than their field are refused. ``tenant`` is only written on
    a multi-tenant index, where a row without one gets the index's tenant.
    """

    id: int
    vector: Sequence[float]
    document_id: str
    source: str
    source_version: int
    scope_id: int
    classification: str
    expires_at: int  # epoch seconds: expiry_epoch(), or NEVER_EXPIRES
    title: str
    uri: str
    text: str
    tenant: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: values are normalised once, here
        for name in _INT_FIELDS:
            set_(self, name, check_int(getattr(self, name), name))
        for name in _STRING_FIELDS:
            set_(self, name, _fit(name, getattr(self, name)))
        vector = self.vector
        if isinstance(vector, np.ndarray):
            vector = vector.tolist()
        if isinstance(vector, (str, bytes)) or not isinstance(vector, Sequence) or not vector:
            raise TypeError(f"vector must be a non-empty sequence of floats, got {type(vector).__name__}")
        set_(self, "vector", vector)
        if self.tenant == "":
            set_(self, "tenant", None)
        elif self.tenant is not None:
            check_tenant(self.tenant)

    def with_tenant(self, tenant: str | None) -> VectorRow:
        """This row for ``tenant`` (None: no tenant)."""
        return dataclasses.replace(self, tenant=tenant)

    def to_entity(self, *, with_tenant: bool = False) -> dict[str, Any]:
        """The row as pymilvus writes it; the ``tenant`` field only ``with_tenant``."""
        entity = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != TENANT_FIELD}
        if with_tenant:
            entity[TENANT_FIELD] = self.tenant
        return entity


# Every field a row is read back with (``VectorIndex.get`` / ``query``) to rebuild it as a
# ``VectorRow(**fields)``; the tenant is the index's own and is not read back.
ROW_FIELDS = tuple(f.name for f in dataclasses.fields(VectorRow) if f.name != TENANT_FIELD)


def _fit(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    text: str = value
    max_bytes = SCALAR_FIELDS[name][1] or 0
    if name in KEPT_CHARS:
        text = text[: KEPT_CHARS[name]]
        encoded = text.encode("utf-8", "surrogatepass")
        if len(encoded) > max_bytes:  # cut at a character boundary
            text = encoded[:max_bytes].decode("utf-8", "ignore")
    elif len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ValueError(f"{name} is longer than the {max_bytes} bytes the collection holds: {text[:40]!r}...")
    return text


@dataclass(frozen=True)
class RawHit:
    """A Milvus hit before the catalog post-check."""

    id: int
    score: float
    fields: dict[str, Any]


def expiry_epoch(expires_at: datetime | None) -> int:
    """The ``expires_at`` a vector carries: epoch seconds rounded *up*, or NEVER_EXPIRES.

    Rounded up because the search filter is ``expires_at > int(now)``: rounding down hid a
    document in the last fraction of a second it was still valid (found by the leak fuzzer).
    Rounded up, Milvus may keep it for < 1 s too long, and the catalog post-check, which
    compares exact times, drops it — the post-check stays the authority."""
    if expires_at is None:
        return NEVER_EXPIRES
    return math.ceil(expires_at.timestamp())
