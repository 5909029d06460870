"""The NumPy forward pass of all-MiniLM-L6-v2 that ``govrag search`` uses gives the vectors
the torch model gives (searches find what ingest wrote), for every kind of text."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = [
    "revenue",
    "What was the Q3 revenue of the finance team, and who approved the 2027 budget?",
    "日本語のテキストと English mixed — naïve café Ünïcödé",
    "word " * 700,  # longer than the model's 256 tokens: truncated the same way
    "",
    "   \t\n ",
    "a]b\" or true or \"x\\ 'quote' \U0001F600",
    "12345 67890 3.14159 ---- ////",
]


@pytest.fixture(scope="module")
def quick():
    from embedding.numpy_minilm import NumpyMiniLM

    return NumpyMiniLM()


def test_quick_start_vectors_match_the_torch_model(quick, embedder) -> None:
    ours, theirs = quick.embed(TEXTS), embedder.embed(TEXTS)
    assert ours.shape == theirs.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    cosines = (ours * theirs).sum(1)
    assert cosines.min() >= 0.99999, dict(zip(TEXTS, cosines))
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_quick_start_names_the_same_model(quick, embedder) -> None:
    assert quick.name == embedder.name and quick.dim == embedder.dim


def test_the_cli_search_finds_what_the_library_search_finds(tmp_path, sqlite_stores, embedder, sample_corpus,
                                                            monkeypatch) -> None:
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from governance.identity import User
    from tests.conftest import make_ingestor, make_retriever

    make_ingestor(sqlite_stores, embedder).ingest_paths([sample_corpus])
    alice = User(id="alice@example.com", email="alice@example.com", groups=("finance", "eng"))
    expected = [h.chunk_id for h in make_retriever(sqlite_stores, embedder).search(alice, "revenue budget", k=5)]
    s = sqlite_stores.settings
    sqlite_stores.close()
    # Milvus Lite keeps this process's lock on the file: the command reads a copy.
    copy = tmp_path / "copy.db"
    (shutil.copytree if Path(s.milvus_uri).is_dir() else shutil.copy)(s.milvus_uri, copy)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")} | {
        "GOVRAG_HOME": str(s.home), "GOVRAG_DATABASE_URL": s.resolved_database_url, "GOVRAG_MILVUS_URI": str(copy),
        "GOVRAG_COLLECTION": s.collection, "GOVRAG_POLICY": str(s.policy)}
    done = subprocess.run([str(Path(sys.executable).parent / "govrag"), "search", "revenue budget", "--user",
                           "alice@example.com", "--group", "finance", "--group", "eng", "-k", "5", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [h["chunk_id"] for h in json.loads(done.stdout)] == expected
    assert "torch" not in done.stderr
