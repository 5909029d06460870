"""A real tritonserver (nvidia-pytriton wheel, own venv) serving the NVFP4 model on CPU."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from embedding.calibration import generated_texts
from embedding.triton_server import TritonProcess, start_triton, triton_env
from governance.errors import EmbedderUnavailable

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
