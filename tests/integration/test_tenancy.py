"""Multi-tenancy: tenants that cannot touch each other.

Two tenants ingest exports of the *same* source (one Slack team id, one Confluence site:
the same scope keys and document ids) with different members and different text. Nothing
one tenant's export, policy, purge or erasure does may change what the other tenant's
people can read, or supersede, delete or rewrite the other tenant's documents. Catalogs
(SQLite and PostgreSQL) and the vector index (Milvus Lite; the server in
``test_milvus_server``) are real; hostile tenant names are used throughout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from governance.errors import AccessDenied, ConfigError
from governance.identity import User
from ingest.pipeline.run import Ingestor
from retrieval.search import Retriever
from testsupport.permission_exports import POLICY, conv, slack_export

# acme's own policy opens its public channels to all-staff and grants the auditor role.
ACME_POLICY = (
    POLICY.replace("  default: source-members", '  T0ACME: ["group:all-staff"]')
    + 'roles:\n  auditor: ["group:all-staff"]\n'
)
TEXT_A = "acme heron migration plan for the lantern project"
TEXT_B = "globex quarterly falcon budget for the harbour"
ALICE, BOB = "alice@corp.example", "bob@corp.example"
# Plain names (a policy file each) and hostile ones (one policy for both: such names cannot
# name a file) -- hostile for Milvus filters, SQL identifiers and paths.
PLAIN = ("acme", "globex")
HOSTILE = ('acme" or tenant != "', "globex/../../etc\\")


def caller(email: str, tenant: str, **kw: Any) -> User:
    return User(id=email, email=email, tenant=tenant, **kw)


@dataclass
class Tenants:
    a: Any  # stores of the first tenant
    b: Any  # stores of the second (opened through the first, sharing its index)
    settings: Any

    @property
    def names(self) -> tuple[str, str]:
        return self.a.tenant, self.b.tenant


@pytest.fixture(params=["plain", "hostile"])
def tenants(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Any:
    """Two tenants in one process: one Milvus Lite collection, per-tenant catalogs (SQLite
    files or PostgreSQL schemas) and, for plain names, per-tenant policies."""
    from governance.settings import Settings
    from governance.stores import Stores

    names = PLAIN if request.param == "plain" else HOSTILE
    if request.param == "plain":
        (tmp_path / "acme.yaml").write_text(ACME_POLICY)
        (tmp_path / "globex.yaml").write_text(POLICY)
        policy = tmp_path / "{tenant}.yaml"
    else:
        (tmp_path / "one.yaml").write_text(POLICY)
        policy = tmp_path / "one.yaml"
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        milvus_uri=str(tmp_path / "milvus.db"),
        collection="tenancy",
        multi_tenant=True,
        tenant=names[0],
        policy=policy,
    )
    a = Stores.open(settings)
    yield Tenants(a, a.for_tenant(names[1], create=True), settings)
    a.close()


def ingest(stores: Any, embedder: Any, path: Path, **kw: Any):
    return Ingestor(stores, lambda: embedder).ingest_paths([path], **kw)


def reads(stores: Any, embedder: Any, user: User, phrase: str) -> set[str]:
    hits = Retriever(stores, lambda: embedder).search(user, phrase, k=10)
    return {h.document_id for h in hits if phrase in h.text}


def two_tenants_same_channel(tmp: Path, t: Tenants, embedder: Any) -> None:
    """Tenant a: alice and bob in private G1; tenant b: the same team and channel id, bob only."""
    ingest(t.a, embedder, slack_export(tmp / "a", [conv("G1", "plans", "private", ["U1", "U2"], TEXT_A)], at=0))
    ingest(t.b, embedder, slack_export(tmp / "b", [conv("G1", "plans", "private", ["U2"], TEXT_B)], at=0))


# -- names -------------------------------------------------------------------------------------
def test_commands_without_a_tenant_are_refused_in_multi_tenant_mode(tmp_path: Path) -> None:
    from governance.settings import Settings
    from governance.stores import Stores

    settings = Settings(home=tmp_path, milvus_uri=str(tmp_path / "m.db"), multi_tenant=True)
    with pytest.raises(ConfigError, match="tenant"):
        Stores.open(settings)
    with pytest.raises(ConfigError, match="tenant"):
        _ = settings.catalog_url


# -- access never crosses tenants ----------------------------------------------------------------
def test_a_tenants_export_does_not_change_another_tenants_membership(tmp_path, tenants, embedder) -> None:
    """Same team, same channel id: tenant b's export (bob only) leaves alice's access in a."""
    two_tenants_same_channel(tmp_path, tenants, embedder)
    a, b = tenants.names
    assert reads(tenants.a, embedder, caller(ALICE, a), TEXT_A) == set(tenants.a.catalog.documents.select_documents())
    assert reads(tenants.a, embedder, caller(BOB, a), TEXT_A)
    assert reads(tenants.b, embedder, caller(BOB, b), TEXT_B)
    assert not reads(tenants.b, embedder, caller(ALICE, b), TEXT_B)


def test_the_same_document_id_in_two_tenants_supersedes_nothing(tmp_path, tenants, embedder) -> None:
    two_tenants_same_channel(tmp_path, tenants, embedder)
    a_docs, b_docs = tenants.a.catalog.documents.select_documents(), tenants.b.catalog.documents.select_documents()
    assert a_docs and set(a_docs) == set(b_docs)  # the same ids, in two catalogs
    a_ids, b_ids = (
        set(tenants.a.catalog.chunks.chunk_ids_of(a_docs)),
        set(tenants.b.catalog.chunks.chunk_ids_of(b_docs)),
    )
    assert a_ids and b_ids and not a_ids & b_ids
    assert {r["text"] for r in tenants.a.index.get(sorted(a_ids), ("text",))} and all(
        TEXT_A in r["text"] for r in tenants.a.index.get(sorted(a_ids), ("text",))
    )
    assert all(TEXT_B in r["text"] for r in tenants.b.index.get(sorted(b_ids), ("text",)))


def test_maintenance_reads_see_one_tenants_rows(tmp_path, tenants, embedder) -> None:
    two_tenants_same_channel(tmp_path, tenants, embedder)
    a_docs = tenants.a.catalog.documents.select_documents()
    a_ids = set(tenants.a.catalog.chunks.chunk_ids_of(a_docs))
    b_ids = set(tenants.b.catalog.chunks.chunk_ids_of(a_docs))
    assert set(tenants.a.index.ids_of_documents(a_docs)) == a_ids
    assert set(tenants.b.index.ids_of_documents(a_docs)) == b_ids
    assert tenants.a.index.get(sorted(b_ids)) == []  # another tenant's primary keys read as absent
    assert tenants.a.index.count() == len(a_ids) and tenants.b.index.count() == len(b_ids)


def test_a_search_never_returns_another_tenants_chunks(tmp_path, tenants, embedder, make_retriever) -> None:
    two_tenants_same_channel(tmp_path, tenants, embedder)
    a, b = tenants.names
    for stores in (tenants.a, tenants.b):  # whichever stores the retriever was opened with
        r = make_retriever(stores, embedder)
        assert all(TEXT_B not in h.text for h in r.search(caller(BOB, a), TEXT_B, k=10))
        assert all(TEXT_A not in h.text for h in r.search(caller(BOB, b), TEXT_A, k=10))
        assert {TEXT_B in h.text for h in r.search(caller(BOB, b), TEXT_B, k=3)} == {True}


def test_a_tenants_purge_and_erasure_leave_the_other_tenant_alone(tmp_path, tenants, embedder, make_ingestor) -> None:
    from governance import purge
    from ingest.pipeline.erasure import forget_subject

    two_tenants_same_channel(tmp_path, tenants, embedder)
    a, b = tenants.names
    b_docs = tenants.b.catalog.documents.select_documents()
    report = purge.purge_documents(
        tenants.b.catalog, tenants.b.index, b_docs, reason="test", actor="t", selector={"source": "slack"}
    )
    assert report.documents == b_docs and report.verified
    forget_subject(make_ingestor(tenants.b, embedder), f"user:{BOB}", actor="t")
    assert tenants.b.index.count() == 0
    assert reads(tenants.a, embedder, caller(BOB, a), TEXT_A)  # bob is forgotten by tenant b only
    assert tenants.a.catalog.holds.forgotten_subjects() == frozenset()
    a_ids = tenants.a.catalog.chunks.chunk_ids_of(tenants.a.catalog.documents.select_documents())
    assert a_ids and {int(r["id"]) for r in tenants.a.index.get(a_ids)} == set(a_ids)


def test_a_tenants_policy_changes_nothing_in_another_tenant(tmp_path, tenants, embedder) -> None:
    """acme's policy opens public channels to all-staff and grants role auditor; globex's
    does neither. The same export, the same callers: only acme's documents open up."""
    if tenants.names != PLAIN:
        pytest.skip("per-tenant policy files need plain tenant names")
    ingest(tenants.a, embedder, slack_export(tmp_path / "a", [conv("C1", "general", "public", ["U1"], TEXT_A)], at=0))
    ingest(tenants.b, embedder, slack_export(tmp_path / "b", [conv("C1", "general", "public", ["U1"], TEXT_B)], at=0))
    staff = {"id": "dora", "groups": ("all-staff",)}
    assert reads(tenants.a, embedder, User(tenant="acme", **staff), TEXT_A)
    assert reads(tenants.a, embedder, User(id="aud", tenant="acme", roles=("auditor",)), TEXT_A)
    assert not reads(tenants.b, embedder, User(tenant="globex", **staff), TEXT_B)
    assert not reads(tenants.b, embedder, User(id="aud", tenant="globex", roles=("auditor",)), TEXT_B)
    assert reads(tenants.b, embedder, caller(ALICE, "globex"), TEXT_B)


def test_a_tenant_nobody_ingested_for_finds_nothing_and_gets_no_catalog(
    tmp_path, tenants, embedder, make_retriever
) -> None:
    from governance.catalog import catalog_exists

    two_tenants_same_channel(tmp_path, tenants, embedder)
    r = make_retriever(tenants.a, embedder)
    assert r.search(caller(BOB, "initech"), TEXT_A, k=5) == []
    assert not catalog_exists(tenants.settings.catalog_url_for("initech"))
    with pytest.raises(AccessDenied):
        r.search(User(id=BOB, email=BOB), TEXT_A, k=5)  # no tenant claim at all


def test_a_tenant_whose_name_cannot_name_its_policy_is_refused(tmp_path, embedder, make_retriever) -> None:
    from governance.catalog import Catalog
    from governance.settings import Settings
    from governance.stores import Stores

    (tmp_path / "acme.yaml").write_text(POLICY)
    settings = Settings(
        home=tmp_path / "home",
        milvus_uri=str(tmp_path / "milvus.db"),
        collection="tenancy",
        multi_tenant=True,
        tenant="acme",
        policy=tmp_path / "{tenant}.yaml",
    )
    stores = Stores.open(settings)
    try:
        Catalog(settings.catalog_url_for("../acme")).dispose()  # a catalog exists for it
        with pytest.raises(AccessDenied, match="policy"):
            make_retriever(stores, embedder).search(caller(BOB, "../acme"), TEXT_A, k=5)
    finally:
        stores.close()


def test_the_cli_works_on_govrag_tenant_and_refuses_to_guess(tmp_path, monkeypatch) -> None:
    """Two tenants ingest the same channel through ``govrag ingest``; search and access
    explain answer per tenant; without GOVRAG_TENANT a command exits 2 and writes nothing."""
    from typer.testing import CliRunner

    from governance.settings import get_settings
    from govrag.cli.main import app

    (tmp_path / "policy.yaml").write_text(POLICY)
    monkeypatch.setenv("GOVRAG_MULTI_TENANT", "true")
    monkeypatch.setenv("GOVRAG_MILVUS_URI", str(tmp_path / "milvus.db"))
    monkeypatch.setenv("GOVRAG_POLICY", str(tmp_path / "policy.yaml"))
    runner = CliRunner()

    def run(tenant: str | None, *args: str):
        if tenant is None:
            monkeypatch.delenv("GOVRAG_TENANT", raising=False)
        else:
            monkeypatch.setenv("GOVRAG_TENANT", tenant)
        get_settings.cache_clear()
        return runner.invoke(app, list(args))

    a = slack_export(tmp_path / "a", [conv("G1", "plans", "private", ["U1", "U2"], TEXT_A)], at=0)
    b = slack_export(tmp_path / "b", [conv("G1", "plans", "private", ["U2"], TEXT_B)], at=0)
    refused = run(None, "ingest", str(a))
    assert isinstance(refused.exception, ConfigError) and refused.exception.exit_code == 2  # `govrag` exits 2
    assert "GOVRAG_TENANT" in str(refused.exception.hint)
    assert not (tmp_path / "home" / "tenants").exists()
    for tenant, export in (("acme", a), ("globex", b)):
        out = run(tenant, "ingest", str(export))
        assert out.exit_code == 0, out.output

    def found(tenant: str, user: str, phrase: str) -> bool:
        out = run(tenant, "search", phrase, "--user", user, "--json")
        assert out.exit_code == 0, out.output
        return any(phrase in h["text"] for h in json.loads(out.output))

    assert found("acme", ALICE, TEXT_A) and not found("acme", ALICE, TEXT_B)
    assert found("globex", BOB, TEXT_B) and not found("globex", ALICE, TEXT_B) and not found("globex", BOB, TEXT_A)
    out = run("globex", "access", "explain", "--user", ALICE, "--json")
    assert out.exit_code == 0 and json.loads(out.output)["documents"] == []


def test_doctor_of_one_tenant_sees_no_other_tenants_rows_as_orphans(tmp_path, tenants, embedder) -> None:
    from governance.consistency import check_consistency

    two_tenants_same_channel(tmp_path, tenants, embedder)
    for stores in (tenants.a, tenants.b):
        report = check_consistency(stores.catalog, stores.index)
        assert report.agrees and report.orphan_vectors.count == 0, report.counts()
        assert report.counts()["vectors"] == stores.index.count() > 0
