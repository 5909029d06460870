"""Pydantic contracts shared by every layer: scopes, documents, chunks, hits.

``Hit`` and the field names here are promises to users; extend, never rename.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from governance.errors import AccessDenied
from governance.identity import parse_principal

MAX_LAYERS = 16
MAX_PRINCIPALS_PER_LAYER = 50_000

SourceKind = Literal["pdf", "slack", "confluence"]


class AccessScope(BaseModel):
    """Who may read a document: a user must match one principal in EVERY layer.

    ``key`` names the scope at its source (a Slack channel, a Confluence page's restriction
    chain, a policy rule), so a membership change updates the same scope instead of
    creating a new one — vectors keep their scope id and nothing is re-embedded.
    """

    model_config = ConfigDict(frozen=True)

    key: str = Field(min_length=1, max_length=1024)
    layers: tuple[frozenset[str], ...]
    description: str = ""
    # Principals that may read nothing of this scope whatever their layers say: accounts the
    # source deactivated (a deactivated Slack user who still holds the IdP group a workspace
    # is mapped to). Deny wins over every layer.
    deny: frozenset[str] = frozenset()

    @field_validator("deny", mode="before")
    @classmethod
    def _deny_ok(cls, v: Any) -> frozenset[str]:
        if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
            raise AccessDenied("scope deny must be a list of principals")
        deny = frozenset(parse_principal(p) for p in v)
        if len(deny) > MAX_PRINCIPALS_PER_LAYER:
            raise AccessDenied(f"scope deny list has {len(deny)} principals (limit {MAX_PRINCIPALS_PER_LAYER})")
        return deny

    @field_validator("layers", mode="before")
    @classmethod
    def _layers_ok(cls, v: Any) -> tuple[frozenset[str], ...]:
        if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
            raise AccessDenied("scope layers must be a list of lists of principals")
        layers = []
        for layer in v:
            if isinstance(layer, (str, bytes)) or not hasattr(layer, "__iter__"):
                raise AccessDenied(f"scope layer {layer!r} is not a list of principals")
            members = frozenset(parse_principal(p) for p in layer)
            if len(members) > MAX_PRINCIPALS_PER_LAYER:
                raise AccessDenied(
                    f"scope layer has {len(members)} principals (limit {MAX_PRINCIPALS_PER_LAYER})",
                    hint="grant a group instead of listing members",
                )
            layers.append(members)
        if not layers:
            raise AccessDenied("scope has no layers: it would be readable by nobody or everybody")
        if len(layers) > MAX_LAYERS:
            raise AccessDenied(f"scope has {len(layers)} layers (limit {MAX_LAYERS})")
        return tuple(layers)

    def allows(self, principals: frozenset[str]) -> bool:
        """True when the principals match at least one member of every layer and none is denied."""
        return bool(self.layers) and all(layer & principals for layer in self.layers) and not (self.deny & principals)

    def fingerprint(self) -> str:
        """Stable hash of the layers and the deny set (order of members does not matter)."""
        canon_obj: Any = [sorted(layer) for layer in self.layers]
        if self.deny:  # scopes without deny keep the fingerprint they always had
            canon_obj = {"layers": canon_obj, "deny": sorted(self.deny)}
        canon = json.dumps(canon_obj, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()


class SourceDocument(BaseModel):
    """One document as a source yields it, before parsing into chunks."""

    document_id: str = Field(description="Stable id: source kind + native id")
    source: SourceKind
    uri: str
    title: str
    path: str | None = Field(default=None, description="Path relative to the ingest root")
    scope: AccessScope
    classification: str = "internal"
    modified_at: datetime | None = None
    author: str | None = Field(default=None, description="Principal of the owner/author, when known")
    metadata: dict[str, Any] = Field(default_factory=dict)


class Chunk(BaseModel):
    """A piece of a document's cleaned text, the unit that is embedded and indexed."""

    chunk_id: int = Field(description="Deterministic int64 primary key in Milvus")
    document_id: str
    version: int
    ordinal: int
    text: str


class Hit(BaseModel):
    """One search result, already checked against the caller's access."""

    chunk_id: int
    document_id: str
    source: str
    title: str
    uri: str
    text: str
    score: float
    source_version: int
    expires_at: datetime | None
