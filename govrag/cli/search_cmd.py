"""``govrag search QUERY --user EMAIL [--group G]... [--role R]... [-k N] [--json]``."""

from __future__ import annotations

import typer

from govrag.cli.output import print_json, stdout


def search(
    query: str = typer.Argument(..., help="What to look for."),
    user: str = typer.Option(..., "--user", help="Caller's email (or id)."),
    group: list[str] = typer.Option([], "--group", help="Group claim; repeat for several."),
    role: list[str] = typer.Option([], "--role", help="Role claim; repeat for several."),
    tenant: str | None = typer.Option(None, "--tenant", help="Caller's tenant (multi-tenancy; default GOVRAG_TENANT)."),
    k: int = typer.Option(10, "-k", "--k", min=1, max=100, help="How many hits."),
    as_json: bool = typer.Option(False, "--json", help="Print hits as JSON."),
) -> None:
    """Search as a user: only chunks that user may read, best first."""
    from embedding import make_embedder
    from governance.identity import User
    from governance.settings import get_settings
    from governance.stores import Stores
    from retrieval.search import Retriever

    settings = get_settings()
    tenant = tenant or settings.tenant or None
    caller = User(id=user, email=user if "@" in user else None, groups=group, roles=role, tenant=tenant)
    # One query, then exit: the quick-start embedder (same vectors) saves seconds of loading.
    retriever = Retriever(Stores.open(settings, serve_tenants=True), lambda: make_embedder(settings, quick_start=True))
    try:
        hits = retriever.search(caller, query, k)
    finally:
        retriever.close()
    if as_json:
        print_json([h.model_dump(mode="json") for h in hits])
        return
    if not hits:
        stdout.print(f"[dim]no results for {user}[/]")
    for i, h in enumerate(hits, 1):
        snippet = " ".join(h.text.split())[:200]
        stdout.print(
            f"[bold]{i}. {h.title}[/] [dim]({h.document_id} v{h.source_version}, score {h.score:.3f})[/]\n   {snippet}"
        )
