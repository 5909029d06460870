"""A real tritonserver (nvidia-pytriton wheel, own venv) serving the NVFP4 model on CPU."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from embedding import make_embedder
from embedding.base import TokenEmbedder
from embedding.calibration import generated_texts
from embedding.triton_server import TritonProcess, start_triton, triton_env
from governance.errors import EmbedderUnavailable
from governance.settings import Settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (triton_env() / "bin" / "python").exists(),
        reason=f"no Triton env at {triton_env()} (run scripts/setup_triton_env.sh or set GOVRAG_TRITON_ENV)",
    ),
]
pytest.importorskip("tritonclient.grpc", reason="pip install 'tritonclient[grpc,http]'")

from embedding.quantize import Nvfp4Embedder, quantize_model  # noqa: E402
from embedding.triton_client import TritonEmbedder  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nvfp4")
    quantize_model(out, method="rtn")  # format is what matters here, not quality; rtn is fast
    return out


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[TritonProcess]:
    proc = start_triton(model_dir)
    yield proc
    proc.stop()


@pytest.mark.parametrize(("protocol", "tokenize"), [("grpc", "server"), ("http", "client")])
def test_matches_in_process(server: TritonProcess, model_dir: Path, protocol: str, tokenize: str) -> None:
    texts = generated_texts(20, seed=5)
    url = server.grpc_url if protocol == "grpc" else server.http_url
    emb = TritonEmbedder(url, batch_size=8, protocol=protocol, tokenize=tokenize)
    got = emb.embed(texts)
    want = Nvfp4Embedder(model_dir).embed(texts)
    assert got.shape == (20, 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert emb.embed([]).shape == (0, 384)


def mixed_texts() -> list[str]:
    """Texts of very different token counts: a few words up to past the 256-token limit."""
    return [*generated_texts(9, seed=8), "short", "", "word " * 400, " ".join(generated_texts(3, seed=9))]


def test_embed_ids_of_its_tokenizer_equal_embed_server_side_text_and_in_process(
    server: TritonProcess, model_dir: Path
) -> None:
    texts = mixed_texts()
    client = TritonEmbedder(server.grpc_url, batch_size=4)  # the default: client-side ids
    assert isinstance(client, TokenEmbedder) and client.tokenize == "client"
    by_ids = client.embed_ids(client.tokenizer()(texts))
    assert by_ids.shape == (len(texts), 384) and by_ids.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(by_ids, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(by_ids, client.embed(texts), atol=1e-5)
    text_path = TritonEmbedder(server.grpc_url, batch_size=4, tokenize="server").embed(texts)
    np.testing.assert_allclose(by_ids, text_path, atol=1e-4)
    np.testing.assert_allclose(by_ids, Nvfp4Embedder(model_dir).embed(texts), atol=1e-4)


def test_embed_ids_keeps_input_order_when_it_batches_by_length(server: TritonProcess) -> None:
    client = TritonEmbedder(server.grpc_url, batch_size=3, concurrency=3)
    ids = client.tokenizer()(mixed_texts())
    one_by_one = np.concatenate([client.embed_ids([a]) for a in ids])
    np.testing.assert_allclose(client.embed_ids(ids), one_by_one, atol=1e-5)
    assert client.embed_ids([]).shape == (0, 384)


def test_embed_ids_refuses_what_no_tokenizer_makes(server: TritonProcess) -> None:
    client = TritonEmbedder(server.grpc_url, retries=0)
    for bad in (np.array([[101, 102]]), np.array([], dtype=np.int64), np.array([101.0, 102.0])):
        with pytest.raises(ValueError, match="1-D integer"):
            client.embed_ids([np.array([101, 102]), bad])
    with pytest.raises(ValueError, match="the model takes 256"):
        client.embed_ids([np.full(300, 1000, dtype=np.int64)])


def test_tokenizer_pickled_to_a_worker_process_makes_the_same_ids(server: TritonProcess) -> None:
    client = TritonEmbedder(server.grpc_url, batch_size=8)
    texts = mixed_texts()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        from_worker = pool.submit(client.tokenizer(), texts).result(timeout=120)
    for got, want in zip(from_worker, client.tokenizer()(texts), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(client.embed_ids(from_worker), client.embed(texts), atol=1e-5)


def test_govrag_triton_tokenize_picks_where_text_is_tokenized(server: TritonProcess) -> None:
    def made(**kw: str) -> TritonEmbedder:
        embedder = make_embedder(Settings(embedder="triton", triton_url=server.grpc_url, **kw))  # type: ignore[arg-type]
        assert isinstance(embedder, TritonEmbedder)
        return embedder

    assert made().tokenize == "client"
    assert made(triton_tokenize="server").tokenize == "server"


def test_concurrent_threads(server: TritonProcess) -> None:
    emb = TritonEmbedder(server.grpc_url, batch_size=4, concurrency=4)
    texts = generated_texts(32, seed=6)
    want = emb.embed(texts)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda i: emb.embed(texts[i : i + 8]), range(0, 32, 8)))
    np.testing.assert_allclose(np.concatenate(results), want, atol=1e-5)


def test_stop_and_restart(model_dir: Path) -> None:
    proc = start_triton(model_dir)
    port = proc.grpc_port
    emb = TritonEmbedder(proc.grpc_url, batch_size=8, retries=1, timeout_s=5)
    texts = generated_texts(4, seed=7)
    before = emb.embed(texts)
    proc.stop()
    assert not proc.alive()
    with pytest.raises(EmbedderUnavailable) as err:
        emb.embed(texts)
    assert err.value.hint
    with pytest.raises(EmbedderUnavailable):
        TritonEmbedder(f"127.0.0.1:{port}", retries=0)
    proc2 = start_triton(model_dir, grpc_port=port)  # same address: the old client recovers
    try:
        np.testing.assert_allclose(emb.embed(texts), before, atol=1e-5)
    finally:
        proc2.stop()


def test_missing_env_is_clear(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(EmbedderUnavailable) as err:
        start_triton(model_dir, env_dir=tmp_path / "nope")
    assert "setup_triton_env" in (err.value.hint or "")
