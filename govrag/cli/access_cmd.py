"""``govrag access explain`` and ``govrag access who``: access as the catalog decides it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from govrag.cli.output import print_json, stdout

if TYPE_CHECKING:  # imported when used: the CLI starts fast
    from governance.catalog import Catalog
    from governance.policy import Policy

app = typer.Typer(help="Explain access: what a caller can read and why; who can read a document.", no_args_is_help=True)


@app.command("explain")
def explain(
    user: str = typer.Option(..., "--user", help="Caller's email (or id)."),
    group: list[str] = typer.Option([], "--group", help="Group claim; repeat for several."),
    role: list[str] = typer.Option([], "--role", help="Role claim; repeat for several."),
    document: str | None = typer.Option(
        None, "--document", help="Only this document: can the caller read it, and why (not)."
    ),
    limit: int = typer.Option(100, "--limit", min=1, max=100_000, help="At most this many documents."),
    as_json: bool = typer.Option(False, "--json", help="Print the explanation as JSON."),
) -> None:
    """Which documents the caller can read (or this document), with the scope, its layers and
    the principal that matched each layer. Same resolution as search; reads the catalog only."""
    from governance.access_explain import explain as run_explain
    from governance.identity import User

    caller = User(id=user, email=user if "@" in user else None, groups=group, roles=role)
    catalog, policy = _catalog()
    try:
        result = run_explain(
            catalog, caller.principals(policy.roles), now=datetime.now(UTC), document_id=document, limit=limit
        )
    finally:
        catalog.dispose()
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    stdout.print(f"[bold]{user}[/] holds {', '.join(result.principals)}; {result.allowed_scopes} scopes allow them")
    if not result.documents:
        stdout.print("[dim]no readable document[/]")
    for d in result.documents:
        mark = "[green]can read[/]" if d.readable else "[red]cannot read[/]"
        stdout.print(f"{mark} [bold]{d.document_id}[/] {d.title or ''} — {d.why}")
        if d.scope:
            stdout.print(f"   scope {d.scope}")
        for m in d.layers:
            stdout.print(
                f"   layer {m.layer} ({m.principals} principals): "
                + (", ".join(m.matched) if m.matched else "[red]no match[/]")
            )
        if d.denied_by:
            stdout.print(f"   [red]denied[/]: {', '.join(d.denied_by)}")
    if result.truncated:
        stdout.print(f"[yellow]more than {limit} documents; raise --limit[/]")


@app.command("who")
def who(
    document: str = typer.Option(..., "--document", help="The document id."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """The principals that can read a document: one of every layer, none of the deny list."""
    from governance.access_explain import who as run_who

    catalog, _ = _catalog()
    try:
        result = run_who(catalog, document, now=datetime.now(UTC))
    finally:
        catalog.dispose()
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        stdout.print(f"[bold]{document}[/] ({result.status}) — {result.why}")
        if result.scope:
            stdout.print(f"   scope {result.scope}")
        for i, layer in enumerate(result.layers):
            stdout.print(f"   layer {i}: one of {', '.join(layer) if layer else '[red](nobody)[/]'}")
        if result.deny:
            stdout.print(f"   deny: {', '.join(result.deny)}")
    if result.status == "unknown":
        raise typer.Exit(code=2)


def _catalog() -> tuple[Catalog, Policy]:
    """The catalog and policy only: explaining access never touches the vector index."""
    from governance.catalog import Catalog
    from governance.policy import load_policy
    from governance.settings import get_settings

    settings = get_settings()
    return Catalog(settings.catalog_url), load_policy(settings.policy_for(settings.tenant or None))
