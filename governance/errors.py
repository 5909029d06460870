"""The govrag exception tree. Every error a caller can see derives from ``GovragError``.

    GovragError
    ├── ConfigError            settings or policy file unusable
    ├── UnknownTarget          a purge/hold names a document, source or subject nobody knows
    ├── HoldRefused            a hold on a document a purge already took
    ├── AccessDenied           caller identity unusable (malformed claims, bad principal)
    ├── SourceError            a source file cannot be read
    │   └── QuarantinedDocument   a document was refused; carries the reason
    ├── CatalogError           the SQL catalog failed
    ├── IndexUnavailable       Milvus cannot be reached or refused an operation
    │   ├── IndexSchemaMismatch   the existing collection was made with other settings
    │   └── MilvusServerError     a local milvus-server cannot be started or stopped
    └── EmbedderUnavailable    the embedding model or server cannot be used

Library errors (pymilvus, SQLAlchemy, tritonclient, unstructured) are wrapped at the
boundary with ``raise ... from exc`` so no raw engine message reaches a caller.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATES = re.compile("[\ud800-\udfff]")


def _rebuild_error(cls: type[GovragError], args: tuple[Any, ...], state: dict[str, Any]) -> GovragError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class GovragError(Exception):
    """Base of every govrag error. ``hint`` says what the user can do about it."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # Messages quote hostile input (file names, JSON values): lone surrogates would make
        # them unprintable and unstorable, so they become U+FFFD here.
        if isinstance(message, str) and _SURROGATES.search(message):
            message = _SURROGATES.sub("\ufffd", message)
        super().__init__(message)
        self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only arguments, which Exception's pickling does not pass: an
        # error raised in an ingest worker process must reach the run's process whole.
        return (_rebuild_error, (type(self), self.args, self.__dict__))


class ConfigError(GovragError):
    """Settings or the policy file cannot be used."""

    exit_code = 2


class AccessDenied(GovragError):
    """The caller's identity or claims cannot be turned into principals."""

    exit_code = 3


class SourceError(GovragError):
    """A source file or export cannot be read."""


class QuarantinedDocument(SourceError):
    """A document was refused and quarantined; ``reason`` is a short machine-readable code."""

    def __init__(self, message: str, *, reason: str, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
        self.path = path


class CatalogError(GovragError):
    """The SQL catalog failed."""


class UnknownTarget(GovragError):
    """A command named a document, source or subject the catalog does not know (a typo
    must not look like a purge of nothing)."""

    exit_code = 2


class HoldRefused(GovragError):
    """A legal hold on a document that a purge has already taken (or is taking)."""

    exit_code = 5


class IndexUnavailable(GovragError):
    """Milvus cannot be reached or refused an operation."""


class IndexSchemaMismatch(IndexUnavailable):
    """The existing collection's schema does not match the settings (e.g. multi-tenancy
    toggled, another embedding dimension); ``hint`` says how to resolve it."""

    exit_code = 2


class MilvusServerError(IndexUnavailable):
    """A local ``milvus-server`` (PyPI ``milvus``) could not be started or stopped."""


class EmbedderUnavailable(GovragError):
    """The embedding model or embedding server cannot be used."""
