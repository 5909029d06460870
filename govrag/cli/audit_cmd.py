"""``govrag audit verify|export``: the hash-chained audit log for compliance."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from governance.audit_kinds import KINDS
from govrag.cli.output import print_json, stdout

app = typer.Typer(help="Read and verify the append-only, hash-chained audit log.")


def _catalog():
    from governance.catalog import Catalog
    from governance.settings import get_settings

    return Catalog(get_settings().catalog_url)


@app.command()
def verify(as_json: bool = typer.Option(False, "--json")) -> None:
    """Check the whole chain; exit 5 and name the events when any was edited, deleted or reordered."""
    from governance import audit

    catalog = _catalog()
    try:
        problems = audit.verify(catalog)
        total = len(audit.events(catalog, limit=1))
    finally:
        catalog.dispose()
    if as_json:
        print_json({"ok": not problems, "problems": [p.__dict__ for p in problems]})
    elif problems:
        for p in problems:
            stdout.print(f"[red]event {p.seq}[/]: {p.problem}")
    else:
        stdout.print("[green]audit chain intact[/]" + ("" if total else " (empty)"))
    if problems:
        raise typer.Exit(code=5)


@app.command()
def export(
    since: datetime | None = typer.Option(None, "--since", help="ISO time, e.g. 2026-11-01 or 2026-11-01T12:00:00"),
    kind: str | None = typer.Option(None, "--kind", help="Only events of this kind: " + ", ".join(KINDS) + "."),
    limit: int = typer.Option(100_000, "--limit", min=1),
    as_json: bool = typer.Option(True, "--json/--lines", help="One JSON array (default) or JSON lines."),
) -> None:
    """Export events oldest first, with their hashes so the export can be re-verified."""
    import json

    from governance import audit

    if kind is not None and kind not in KINDS:
        import difflib

        close = difflib.get_close_matches(kind, KINDS, n=1)
        raise typer.BadParameter(
            f"unknown kind {kind!r}"
            + (f" (did you mean {close[0]!r}?)" if close else "")
            + f"; one of: {', '.join(KINDS)}",
            param_hint="--kind",
        )
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    catalog = _catalog()
    try:
        rows = audit.events(catalog, kind=kind, since=since, limit=limit, newest_first=False)
    finally:
        catalog.dispose()
    if as_json:
        print_json(rows)
    else:
        for row in rows:
            print(json.dumps(row, default=str, ensure_ascii=False))
