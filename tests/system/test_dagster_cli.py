"""The code location from outside: the ``dagster`` CLI on a temp DAGSTER_HOME, the webserver's
GraphQL endpoint, and a DAGSTER_HOME whose instance storage is PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from testsupport.paths import REPO, SAMPLE_POLICY
from testsupport.store_settings import sqlite_url

BIN = Path(sys.executable).parent
ASSETS = {"source_snapshot", "indexed_chunks", "permission_sync", "expired_purge"}


def _mini_drop(root: Path, name: str = "mini") -> Path:
    """A drop folder holding one small PDF export (the sample handbook)."""
    from govrag.sample_corpus import write_sample_corpus

    write_sample_corpus(root / "src", with_bad_inputs=False)
    shutil.copytree(root / "src" / "handbook", root / "drop" / name / "handbook")
    return root / "drop"


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVRAG_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(root / "dagster_home"),
        GOVRAG_HOME=str(root / "home"),
        GOVRAG_DATABASE_URL=sqlite_url(root),
        GOVRAG_POLICY=str(SAMPLE_POLICY),
        GOVRAG_DROP_DIR=str(root / "drop"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        SCARF_NO_ANALYTICS="true",
        DO_NOT_TRACK="true",
        PYTHONPATH=str(REPO),
        **extra,
    )
    (root / "dagster_home").mkdir(parents=True, exist_ok=True)
    (root / "dagster_home" / "dagster.yaml").touch()  # SQLite instance storage under DAGSTER_HOME
    return env


@pytest.mark.slow
def test_cli_asset_materialize_all_on_a_partition(tmp_path):
    """``dagster asset materialize -m dagster_project --select '*' --partition mini`` against the
    embedded default stores (GOVRAG_MILVUS_URI unset: the milvus-lite server under GOVRAG_HOME,
    shared by every process)."""
    from governance.catalog import Catalog
    from governance.milvus_process.local import stop_server

    _mini_drop(tmp_path)
    env = _env(tmp_path)
    run_config = tmp_path / "run.yaml"
    # One process for all steps: the heavy PDF parser import is paid once (≈9 s on 2 cores).
    run_config.write_text("execution:\n  config:\n    in_process: {}\n")
    try:
        reg = subprocess.run(
            [sys.executable, "-m", "dagster_project.register"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert reg.returncode == 0, reg.stderr
        assert reg.stdout.split("\t")[0] == "mini"
        run = subprocess.run(
            [
                str(BIN / "dagster"),
                "asset",
                "materialize",
                "-m",
                "dagster_project",
                "--select",
                "*",
                "--partition",
                "mini",
                "-c",
                str(run_config),
            ],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        log = run.stdout + run.stderr
        assert run.returncode == 0, log[-4000:]
        assert "RUN_SUCCESS" in log
        for asset in ASSETS:
            assert f"Materialized value {asset}" in log, asset
        catalog = Catalog(env["GOVRAG_DATABASE_URL"])
        try:
            counts = catalog.runs.status_counts()
        finally:
            catalog.dispose()
        assert counts["documents"] == {"active": 1} and counts["chunks"] >= 1
        manifests = list((tmp_path / "home" / "manifests").glob("*.json"))
        assert [m.name for m in manifests] == ["mini.json"]
    finally:
        stop_server(tmp_path / "home")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_webserver_graphql_lists_the_assets(tmp_path):
    env = _env(tmp_path)
    port = _free_port()
    log = open(tmp_path / "webserver.log", "wb")
    proc = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-m", "dagster_project"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline, keys, last = time.monotonic() + 120, set(), None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                data = _graphql(port, "{ assetNodes { assetKey { path } } }")
                keys = {"/".join(n["assetKey"]["path"]) for n in (data.get("data") or {}).get("assetNodes") or []}
                if keys:
                    break
                last = data
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
                last = exc
            time.sleep(1)
        assert keys == ASSETS, (
            f"no asset list from the webserver: {last!r}\n{(tmp_path / 'webserver.log').read_text()[-3000:]}"
        )
        jobs = _graphql(port, "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }")
        names = {j["name"] for r in jobs["data"]["repositoriesOrError"]["nodes"] for j in r["jobs"]}
        assert {"ingest", "sync_permissions", "purge_expired", "doctor"} <= names
    finally:
        # The webserver runs its code server as a child: stop the whole group we started.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


@pytest.fixture
def dagster_pg_url(pg_database):
    """A fresh PostgreSQL database for the Dagster instance, dropped afterwards."""
    # dagster-postgres needs the psycopg2 driver (its NOTIFY does not work on psycopg 3, which
    # SQLAlchemy 2.1 picks for a bare postgresql:// URL).
    with pg_database(prefix="dagster_t", drivername="postgresql+psycopg2") as url:
        yield url


@pytest.mark.postgres
def test_postgres_instance_storage_runs_a_materialization(tmp_path, dagster_pg_url):
    import dagster as dg
    import yaml

    from dagster_project.defs.assets import all_assets, source_snapshot
    from dagster_project.defs.checks import all_checks
    from dagster_project.defs.resources import DropFolderResource, EmbedderResource, GovragStoresResource

    example = yaml.safe_load((REPO / "dagster_project" / "dagster.yaml.postgres").read_text())
    assert "postgres_url" in json.dumps(example) or "postgres_db" in json.dumps(example)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": {"postgres": {"postgres_url": dagster_pg_url}}}))
    drop = _mini_drop(tmp_path)
    resources = {
        "stores": GovragStoresResource(
            home=str(tmp_path / "home"),
            database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}",
            milvus_uri=str(tmp_path / "milvus.db"),
            policy=str(SAMPLE_POLICY),
        ),
        "embedder": EmbedderResource(kind="local"),
        "drop_folder": DropFolderResource(drop_dir=str(drop)),
    }
    # Entered, the instance is the thread's current one while definitions load (dagster keeps
    # the defs-state storage in a context variable; see the conftest's reset of it).
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions("sources", ["mini"])
        # The snapshot is the cheap partitioned asset (no parser, no model): enough to put a run,
        # its events, a partitioned materialization and the dynamic partitions in PostgreSQL.
        result = dg.materialize(
            [*all_assets, *all_checks],
            resources=resources,
            partition_key="mini",
            instance=instance,
            selection=[source_snapshot],
        )
        assert result.success
        [run] = instance.get_runs()
        assert run.run_id == result.run_id and run.is_success
        event = instance.get_latest_materialization_event(dg.AssetKey("source_snapshot"))
        assert event is not None and event.asset_materialization.partition == "mini"
        assert event.asset_materialization.metadata["new"].value == 1
    # Read back through a second instance: the state lives in PostgreSQL, not in DAGSTER_HOME.
    with dg.DagsterInstance.from_config(str(home)) as again:
        assert again.get_dynamic_partitions("sources") == ["mini"]
        assert len(again.get_runs()) == 1
