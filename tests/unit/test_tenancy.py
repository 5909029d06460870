"""Multi-tenancy: a tenant's name becomes a slug, a catalog and a policy path that cannot
reach another tenant's (tenants ingesting, searching and purging side by side:
tests/integration/test_tenancy.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from governance.errors import ConfigError
from governance.tenancy import tenant_database_url, tenant_policy_path, tenant_slug


def test_tenant_slugs_are_distinct_safe_and_stable() -> None:
    names = ["acme", "ACME", "Acme", "a/b", "a_b", "a b", "../..", 'x" or "1"=="1', "日本", "a" * 256, "acme\\"]
    slugs = [tenant_slug(n) for n in names]
    assert len(set(slugs)) == len(names)
    assert all(s == tenant_slug(n) for s, n in zip(slugs, names))
    assert all(len(s) <= 37 and set(s) <= set("abcdefghijklmnopqrstuvwxyz0123456789_") for s in slugs)


@pytest.mark.parametrize("bad", ["", "a\nb", "\x00", "a" * 257, 7, None])
def test_unusable_tenant_names_are_refused(bad: Any) -> None:
    with pytest.raises((ValueError, ConfigError)):
        tenant_slug(bad)


def test_each_tenants_sqlite_catalog_lies_under_the_home(tmp_path: Path) -> None:
    base = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    for name in ("acme", "../../etc/passwd", "a/b"):
        url = tenant_database_url(base, name)
        path = Path(url.split("///", 1)[1]).resolve()
        assert path.is_relative_to(tmp_path / "tenants") and path.name == "catalog.sqlite3"


def test_each_tenants_postgres_catalog_is_a_schema_of_its_own() -> None:
    from sqlalchemy.engine import make_url

    hostile = 'a" or 1=1'
    url = make_url(tenant_database_url("postgresql+psycopg://u:p@db:5432/govrag?connect_timeout=2", hostile))
    assert url.database == "govrag" and url.query["connect_timeout"] == "2"
    assert url.query["options"] == f"-csearch_path=govrag_{tenant_slug(hostile)}"
    with pytest.raises(ConfigError):
        tenant_database_url("postgresql+psycopg://u@db/govrag?options=-csearch_path%3Devil", "acme")


def test_a_per_tenant_policy_path_takes_plain_names_only(tmp_path: Path) -> None:
    template = tmp_path / "{tenant}.yaml"
    assert tenant_policy_path(template, "acme") == tmp_path / "acme.yaml"
    assert tenant_policy_path(tmp_path / "one.yaml", "../x") == tmp_path / "one.yaml"
    for hostile in ("../etc/passwd", "a/b", ".hidden", 'a"b'):
        with pytest.raises(ConfigError):
            tenant_policy_path(template, hostile)
