"""An ingest with a Triton-served embedder: worker processes tokenize the chunks they read
and the run sends token ids, not text (a real tritonserver serving the NVFP4 model on CPU)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from embedding.triton_server import TritonProcess, start_triton, triton_env
from governance.stores import Stores
from testsupport.parse_faults import TextParser, item
from testsupport.store_settings import embedded_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (triton_env() / "bin" / "python").exists(),
        reason=f"no Triton env at {triton_env()} (run scripts/setup_triton_env.sh or set GOVRAG_TRITON_ENV)",
    ),
]
pytest.importorskip("tritonclient.grpc", reason="pip install 'tritonclient[grpc,http]'")

from embedding.quantize import quantize_model  # noqa: E402
from embedding.triton_client import TritonEmbedder  # noqa: E402


class CountingTriton(TritonEmbedder):
    """The real client, counting which of its two paths the pipeline used."""

    texts_sent = 0
    ids_sent = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        type(self).texts_sent += len(texts)
        return super().embed(texts)

    def embed_ids(self, ids: Sequence[np.ndarray]) -> np.ndarray:
        type(self).ids_sent += len(ids)
        return super().embed_ids(ids)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonProcess]:
    model_dir = tmp_path_factory.mktemp("nvfp4")
    quantize_model(model_dir, method="rtn")  # the format matters here, not the quality
    proc = start_triton(model_dir)
    yield proc
    proc.stop()


def test_workers_tokenize_and_the_run_sends_ids_with_the_vectors_of_the_text(
    server: TritonProcess, tmp_path: Path
) -> None:
    stores = Stores.open(
        embedded_settings(tmp_path, embedder="triton", triton_url=server.grpc_url, collection="triton_ingest")
    )
    try:
        texts = [f"report {n}: the harbour crane fleet was serviced in week {n} " * (1 + n % 4) for n in range(8)]
        items = [item(f"doc{n}", TextParser(t)) for n, t in enumerate(texts)]
        from ingest.pipeline.run import Ingestor

        CountingTriton.texts_sent = CountingTriton.ids_sent = 0
        summary = Ingestor(stores, lambda: CountingTriton(server.grpc_url, batch_size=4), workers=2).ingest_items(items)
        assert summary.new == 8 and summary.parse_workers == 2
        assert CountingTriton.ids_sent == summary.chunks_written and CountingTriton.texts_sent == 0
        rows = stores.index.query("id >= 0", fields=["text", "vector"])
        stored = np.array([r["vector"] for r in rows], dtype=np.float32)
        direct = TritonEmbedder(server.grpc_url, batch_size=4, tokenize="server").embed([r["text"] for r in rows])
        np.testing.assert_allclose(stored, direct, atol=1e-4)
    finally:
        stores.close()
