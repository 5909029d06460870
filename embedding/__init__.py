"""Embedders: in-process CPU model or a Triton-served model, behind one protocol."""

from __future__ import annotations

from embedding.base import Embedder, TokenEmbedder, Tokenizer
from governance.errors import ConfigError
from governance.settings import Settings, get_settings

__all__ = ["Embedder", "TokenEmbedder", "Tokenizer", "make_embedder"]


def make_embedder(settings: Settings | None = None, *, quick_start: bool = False) -> Embedder:
    """Build the embedder named by ``GOVRAG_EMBEDDER`` (``local`` or ``triton``).
    ``quick_start``: for a process that embeds a few texts and exits (``govrag search``):
    the local model runs in NumPy (same vectors, ~0.4 s to load instead of ~5 s)."""
    settings = settings or get_settings()
    if settings.embedder == "local" and quick_start:
        from embedding.numpy_minilm import NumpyMiniLM

        return NumpyMiniLM()
    if settings.embedder == "local":
        from embedding.local import LocalEmbedder

        return LocalEmbedder(batch_size=settings.embed_batch_size, threads=settings.torch_threads)
    if settings.embedder == "triton":
        try:
            from embedding.triton_client import TritonEmbedder
        except ImportError as exc:
            raise ConfigError(
                "GOVRAG_EMBEDDER=triton but the Triton client is not available",
                hint="pip install 'tritonclient[grpc,http]'",
            ) from exc
        return TritonEmbedder(
            url=settings.triton_url, batch_size=settings.embed_batch_size, tokenize=settings.triton_tokenize
        )
    raise ConfigError(f"unknown GOVRAG_EMBEDDER={settings.embedder!r}", hint="use local or triton")
