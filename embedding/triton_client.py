"""Embedder backed by the Triton-served ``govrag_embedder`` model (gRPC or HTTP).

Texts are split into batches of ``batch_size``; batches go out concurrently from a small
thread pool (each thread has its own client: tritonclient clients are not shared across
threads), each with a timeout and retries with exponential backoff (tenacity). Any failure that
survives the retries becomes :class:`EmbedderUnavailable` with a hint.

Tokenization: ``tokenize="client"`` sends INPUT_IDS/ATTENTION_MASK (INT64) tokenized here
with the model's own tokenizer; ``"server"`` sends raw TEXT (BYTES). Measured on the 2-core
box (see docs/benchmarks_embed_cpu.md), server-side is the default: the server tokenizes
in the same process that runs the model, and the client needs no tokenizer files.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tenacity import RetryError, Retrying, stop_after_attempt, wait_exponential

from governance.errors import EmbedderUnavailable

MODEL = "govrag_embedder"
DIM = 384
BACKOFF_FIRST_S = 0.2  # then doubled per retry
_HINT = "start it with: govrag serve-embedder (or set GOVRAG_EMBEDDER=local)"


class TritonEmbedder:
    """Implements the ``Embedder`` protocol against a Triton server."""

    dim = DIM

    def __init__(
        self,
        url: str,
        batch_size: int = 64,
        protocol: str = "grpc",
        timeout_s: float = 30.0,
        retries: int = 3,
        concurrency: int = 4,
        tokenize: str = "server",
        tokenizer_dir: Path | None = None,
        model: str = MODEL,
    ) -> None:
        if protocol not in ("grpc", "http"):
            raise ValueError(f"protocol must be grpc or http, not {protocol!r}")
        if tokenize not in ("server", "client"):
            raise ValueError(f"tokenize must be server or client, not {tokenize!r}")
        self.url = url.removeprefix("http://").removeprefix("grpc://")
        self.protocol = protocol
        self.batch_size = max(1, batch_size)
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.concurrency = max(1, concurrency)
        self.model = model
        self.name = f"triton:{model}@{self.url}"
        self.tokenize = tokenize
        self._local = threading.local()
        self._tokenizer: Any = None
        if tokenize == "client":
            from transformers import AutoTokenizer

            from embedding.local import model_path

            self._tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir or model_path()))
        self._module = self._import_client()
        self.check_ready()

    # ------------------------------------------------------------------ plumbing

    def _import_client(self) -> Any:
        try:
            if self.protocol == "grpc":
                import tritonclient.grpc as module
            else:
                import tritonclient.http as module
        except ImportError as exc:
            raise EmbedderUnavailable(
                "tritonclient is not installed", hint="pip install 'tritonclient[grpc,http]'"
            ) from exc
        return module

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            if self.protocol == "grpc":
                client = self._module.InferenceServerClient(url=self.url)
            else:
                client = self._module.InferenceServerClient(
                    url=self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
                )
            self._local.client = client
        return client

    def _reset_client(self) -> None:
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            with contextlib.suppress(Exception):  # a broken channel may fail to close
                client.close()

    def check_ready(self) -> None:
        """Raise EmbedderUnavailable unless the server and the model are ready."""
        try:
            client = self._client()
            kwargs = {"client_timeout": min(self.timeout_s, 5.0)} if self.protocol == "grpc" else {}
            ok = client.is_server_ready(**kwargs) and client.is_model_ready(self.model, **kwargs)
        except Exception as exc:  # any transport error means "down"
            self._reset_client()
            raise EmbedderUnavailable(
                f"Triton server at {self.url} ({self.protocol}) is not reachable: {exc}", hint=_HINT
            ) from exc
        if not ok:
            raise EmbedderUnavailable(f"Triton at {self.url} is up but model {self.model} is not ready", hint=_HINT)

    def _inputs(self, texts: Sequence[str]) -> list[Any]:
        m = self._module
        if self._tokenizer is None:
            arr = np.array([t.encode("utf-8") for t in texts], dtype=np.object_).reshape(-1, 1)
            inp = m.InferInput("TEXT", list(arr.shape), "BYTES")
            inp.set_data_from_numpy(arr)
            return [inp]
        tok = self._tokenizer(list(texts), padding=True, truncation=True, max_length=256, return_tensors="np")
        out = []
        for name, key in (("INPUT_IDS", "input_ids"), ("ATTENTION_MASK", "attention_mask")):
            a = np.ascontiguousarray(tok[key], dtype=np.int64)
            inp = m.InferInput(name, list(a.shape), "INT64")
            inp.set_data_from_numpy(a)
            out.append(inp)
        return out

    def _infer_once(self, texts: Sequence[str]) -> np.ndarray:
        """One request; any failure drops this thread's client, so a retry reconnects."""
        try:
            outputs = [self._module.InferRequestedOutput("EMBEDDING")]
            kwargs: dict[str, Any] = {"outputs": outputs}
            if self.protocol == "grpc":
                kwargs["client_timeout"] = self.timeout_s
            result = self._client().infer(self.model, self._inputs(texts), **kwargs)
            vectors = result.as_numpy("EMBEDDING")
            if vectors is None or vectors.shape != (len(texts), self.dim):
                raise EmbedderUnavailable(f"Triton returned shape {getattr(vectors, 'shape', None)}")
            return vectors.astype(np.float32, copy=False)
        except Exception:
            self._reset_client()
            raise

    def _infer_batch(self, texts: Sequence[str]) -> np.ndarray:
        """One request with retries; backoff 0.2 s, 0.4 s, 0.8 s, ..."""
        # Any exception is retried: transport errors vary by protocol.
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=BACKOFF_FIRST_S, min=BACKOFF_FIRST_S),
        )
        try:
            return retrying(self._infer_once, texts)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise EmbedderUnavailable(
                f"Triton embedding failed at {self.url} after {self.retries + 1} attempts: {last}", hint=_HINT
            ) from last

    # ------------------------------------------------------------------ protocol

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: float32 ``[len(texts), 384]``, unit rows, input order kept."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if len(batches) == 1 or self.concurrency == 1:
            parts = [self._infer_batch(b) for b in batches]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches))) as pool:
                parts = list(pool.map(self._infer_batch, batches))
        return np.concatenate(parts)
