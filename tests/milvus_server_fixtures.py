"""The Milvus fixtures, a pytest plugin registered by tests/conftest.py: ``backend`` (Milvus
Lite or a real milvus-server 2.3.5), ``make_index`` (a VectorIndex on either) and
``milvus_server`` (the session's server: PyPI ``milvus``, reachable on 127.0.0.1 only, data in
a temp dir, stopped by PID at the end; see testsupport/milvus_server.py).

One server serves the whole session (it takes ~7 s to start and ~1 GB of disk); each test
uses its own collection and drops it. Tests that need it are skipped, with the reason, where
the package or a network namespace is not available.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ["lite", pytest.param("server", marks=[pytest.mark.milvus_server, pytest.mark.slow])]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The Milvus backend a test runs on: ``lite`` (in-process) and ``server`` (the session's
    milvus-server, marked ``milvus_server`` and ``slow``)."""
    return request.param


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's milvus-server (a started :class:`testsupport.milvus_server.MilvusServer`)."""
    from testsupport.milvus_server import MilvusServer, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"milvus-server unavailable: {reason}")
    data_dir: Path = tmp_path_factory.mktemp("milvus-server")
    server = MilvusServer(data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        assert server.processes() == [], "milvus-server left processes behind"
        shutil.rmtree(data_dir, ignore_errors=True)  # ~1 GB; pytest keeps old basetemps


@pytest.fixture
def make_index(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """``make_index(backend, **VectorIndex kwargs)``: a VectorIndex on Milvus Lite (a file in
    tmp_path) or on the session server (a fresh collection, dropped after the test)."""
    from governance.vector_index import VectorIndex
    from testsupport.milvus_server import unique_collection

    made: list[tuple[Any, bool]] = []

    def make(backend: str, collection: str | None = None, **kwargs: Any) -> VectorIndex:
        if backend == "lite":
            ix = VectorIndex(str(tmp_path / "m.db"), collection or "t", **kwargs)
        elif backend == "server":
            server = request.getfixturevalue("milvus_server")
            ix = VectorIndex(server.uri, collection or unique_collection(), **kwargs)
        else:
            raise ValueError(backend)
        made.append((ix, backend == "server"))
        return ix

    yield make
    for ix, drop in reversed(made):
        if drop:
            try:
                ix.drop()
            except Exception:  # already dropped by the test
                pass
        ix.close()
