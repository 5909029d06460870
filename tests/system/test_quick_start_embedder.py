"""``govrag search`` in its own process, on the NumPy embedder, finds what the library search
finds with the torch model (the vectors themselves: tests/integration/test_quick_start_embedder.py)."""

from __future__ import annotations


def test_the_cli_search_finds_what_the_library_search_finds(
    tmp_path, sqlite_stores, embedder, sample_corpus, monkeypatch, make_ingestor, make_retriever
) -> None:
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from governance.identity import User

    make_ingestor(sqlite_stores, embedder).ingest_paths([sample_corpus])
    alice = User(id="alice@example.com", email="alice@example.com", groups=("finance", "eng"))
    expected = [h.chunk_id for h in make_retriever(sqlite_stores, embedder).search(alice, "revenue budget", k=5)]
    s = sqlite_stores.settings
    sqlite_stores.close()
    # Milvus Lite keeps this process's lock on the file: the command reads a copy.
    copy = tmp_path / "copy.db"
    (shutil.copytree if Path(s.milvus_uri).is_dir() else shutil.copy)(s.milvus_uri, copy)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")} | {
        "GOVRAG_HOME": str(s.home),
        "GOVRAG_DATABASE_URL": s.resolved_database_url,
        "GOVRAG_MILVUS_URI": str(copy),
        "GOVRAG_COLLECTION": s.collection,
        "GOVRAG_POLICY": str(s.policy),
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "govrag"),
            "search",
            "revenue budget",
            "--user",
            "alice@example.com",
            "--group",
            "finance",
            "--group",
            "eng",
            "-k",
            "5",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert [h["chunk_id"] for h in json.loads(done.stdout)] == expected
    assert "torch" not in done.stderr
