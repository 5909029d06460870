"""Where each tenant's catalog and policy live when ``GOVRAG_MULTI_TENANT`` is on.

With multi-tenancy every tenant has a catalog of its own: its scopes, documents, versions,
holds, forgotten subjects, quarantine, runs and audit log live apart from every other
tenant's, so nothing one tenant's export or policy does can change another tenant's access
or supersede its documents. The vectors share one collection; every row carries its tenant
(a partition key on a server), every search and every maintenance query is limited to one
tenant, and chunk ids are derived from the tenant as well as the document, so two tenants'
copies of one document never share a primary key.

Catalog placement, from the base ``GOVRAG_DATABASE_URL`` (default SQLite under HOME):

- SQLite ``…/catalog.sqlite3`` → ``…/tenants/<slug>/catalog.sqlite3``;
- PostgreSQL: the same database, schema ``govrag_<slug>`` (made on first use; the
  connection's ``search_path`` is that schema alone).

``<slug>`` is the tenant name lower-cased, reduced to ``[a-z0-9_]`` (at most 24
characters), then ``_`` and 12 hex digits of its SHA-256: readable, and never the same for
two tenants, whatever characters their names hold.

A policy path holding ``{tenant}`` (``GOVRAG_POLICY=/etc/govrag/policies/{tenant}.yaml``)
names one policy per tenant; the tenant name is substituted only when it is a plain name
(``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``), otherwise the policy cannot be found and the
tenant's runs and searches are refused (fail closed).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from governance.errors import ConfigError

MAX_TENANT_BYTES = 256
TENANT_PLACEHOLDER = "{tenant}"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SEARCH_PATH = re.compile(r"-c\s*search_path=(govrag_[a-z0-9_]+)")


def check_tenant(tenant: Any) -> str:
    """A usable tenant name: a non-empty string of at most 256 bytes, no control characters."""
    if not isinstance(tenant, str) or not tenant:
        raise ValueError(f"a tenant must be a non-empty string, got {tenant!r}")
    if len(tenant.encode("utf-8", "surrogatepass")) > MAX_TENANT_BYTES:
        raise ValueError(f"tenant longer than {MAX_TENANT_BYTES} bytes")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in tenant):
        raise ValueError(f"control characters are not allowed in a tenant name: {tenant[:40]!r}")
    if any("\ud800" <= ch <= "\udfff" for ch in tenant):
        raise ValueError("a tenant name must be valid Unicode (it holds a lone surrogate)")
    return tenant


def tenant_slug(tenant: str) -> str:
    """A file- and SQL-identifier-safe name for ``tenant`` (unique per tenant)."""
    check_tenant(tenant)
    readable = re.sub(r"[^a-z0-9]+", "_", tenant.lower()).strip("_")[:24]
    digest = hashlib.sha256(tenant.encode()).hexdigest()[:12]
    return f"{readable}_{digest}" if readable else digest


def tenant_database_url(base_url: str, tenant: str) -> str:
    """The catalog URL of ``tenant`` given the deployment's base catalog URL."""
    try:
        slug = tenant_slug(tenant)
    except ValueError as exc:
        raise ConfigError(f"unusable tenant: {exc}", hint="set GOVRAG_TENANT to a plain tenant name") from exc
    url = make_url(base_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConfigError(
                "multi-tenancy needs a file catalog (an in-memory SQLite catalog cannot be split per tenant)",
                hint="unset GOVRAG_DATABASE_URL or point it at a file or PostgreSQL",
            )
        base = Path(url.database)
        return url.set(database=str(base.parent / "tenants" / slug / base.name)).render_as_string(hide_password=False)
    if backend == "postgresql":
        options = str(url.query.get("options", "") or "")
        if "search_path" in options:
            raise ConfigError(
                "GOVRAG_DATABASE_URL sets a search_path; with multi-tenancy govrag chooses each tenant's schema itself",
                hint="remove search_path from the URL's options",
            )
        options = (options + " " if options else "") + f"-csearch_path={schema_of(slug)}"
        return url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    raise ConfigError(f"multi-tenancy supports SQLite and PostgreSQL catalogs, not {backend!r}")


def schema_of(slug: str) -> str:
    return "govrag_" + slug


def tenant_schema(url: str) -> str | None:
    """The per-tenant PostgreSQL schema a catalog URL selects, or None."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    match = _SEARCH_PATH.search(str(parsed.query.get("options", "") or ""))
    return match.group(1) if match else None


def without_schema(url: str) -> str:
    """``url`` with the per-tenant ``search_path`` removed (to make the schema)."""
    parsed = make_url(url)
    options = _SEARCH_PATH.sub("", str(parsed.query.get("options", "") or "")).strip()
    query = {k: v for k, v in parsed.query.items() if k != "options"}
    if options:
        query["options"] = options
    return parsed.set(query=query).render_as_string(hide_password=False)


def tenant_policy_path(policy: Path | None, tenant: str | None) -> Path | None:
    """The policy file of ``tenant``: ``policy`` with ``{tenant}`` filled in (or as is)."""
    if policy is None or TENANT_PLACEHOLDER not in str(policy):
        return policy
    if tenant is None:
        raise ConfigError(
            f"the policy path {policy} names one policy per tenant, but no tenant is set",
            hint="set GOVRAG_TENANT (or search as a caller with a tenant claim)",
        )
    if not _PLAIN_NAME.fullmatch(tenant):
        raise ConfigError(
            f"tenant {tenant[:60]!r} cannot name a policy file (plain names only: letters, digits, "
            "'_', '.', '-'; at most 64)",
            hint="give the tenant a plain name in the identity provider",
        )
    return Path(str(policy).replace(TENANT_PLACEHOLDER, tenant))
