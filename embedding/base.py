"""The embedder contract every backend (in-process, Triton) implements, and its token-ids form."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of ``dim`` dimensions."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape ``(len(texts), dim)``, float32, rows of unit length."""
        ...


@runtime_checkable
class Tokenizer(Protocol):
    """The model's own tokenizer. Picklable and cheap to pickle (paths and limits, no loaded
    model): it is loaded lazily, once per process, on the first call, then kept warm."""

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Unpadded int64 token ids per text, with special tokens, truncated to the model's max length."""
        ...


@runtime_checkable
class TokenEmbedder(Embedder, Protocol):
    """An embedder that also takes token ids made elsewhere (by the process holding the text),
    so the text is tokenized once, where it is, and only ids travel to the model.

    ``embed_ids(tokenizer()(texts))`` gives the same vectors as ``embed(texts)``.
    """

    def tokenizer(self) -> Tokenizer:
        """The tokenizer whose ids :meth:`embed_ids` takes."""
        ...

    def embed_ids(self, ids: Sequence[np.ndarray]) -> np.ndarray:
        """Embed token ids (each a 1-D int64 array from :meth:`tokenizer`): ``(len(ids), dim)``
        float32 rows of unit length, as :meth:`Embedder.embed` returns."""
        ...
