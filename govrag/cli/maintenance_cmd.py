"""``govrag doctor [--repair]`` and ``govrag acl sync PATH``."""

from __future__ import annotations

from pathlib import Path

import typer

from govrag.cli.output import print_json, stdout

acl_app = typer.Typer(help="Access control: sync permissions from a source without re-embedding.")


def _ingestor(site: str | None = None):
    from embedding import make_embedder
    from governance.stores import Stores
    from ingest.pipeline.run import Ingestor

    stores = Stores.open()
    return stores, Ingestor(stores, lambda: make_embedder(stores.settings), site=site)


def doctor(
    repair: bool = typer.Option(False, "--repair", help="Fix what is found (the catalog is the source of truth)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare catalog and index: orphan / missing / stale vectors, expired-but-present, secrets."""
    from ingest.pipeline.doctor import doctor as run_doctor

    stores, ingestor = _ingestor()
    try:
        before, result, after = run_doctor(ingestor, fix=repair, actor="cli")
        no_expiry = stores.catalog.runs.status_counts()["documents_without_expiry"]
    finally:
        stores.close()
    final = after or before
    if as_json:
        print_json(
            {
                "before": before.counts(),
                "samples": before.samples(),
                "repair": result.model_dump() if result else None,
                "after": after.counts() if after else None,
                "ok": final.agrees and final.no_expired,
                "documents_without_expiry": no_expiry,
            }
        )
    else:
        for key, value in before.counts().items():
            stdout.print(f"{key}: {value}")
        stdout.print(f"documents_without_expiry: {no_expiry}")
        if no_expiry:
            stdout.print(
                f"[yellow]warning:[/] {no_expiry} active documents have no expiry: no retention rule "
                "matched them (a misspelt `retention:` key is refused; check the rules' `match`)"
            )
        if result:
            stdout.print(f"[bold]repaired[/]: {result.model_dump()}")
        stdout.print(
            "[green]catalog and index agree[/]"
            if final.agrees and final.no_expired
            else "[red]problems remain[/] (run with --repair)"
        )
    if not (final.agrees and final.no_expired):
        raise typer.Exit(code=6)


@acl_app.command("sync")
def acl_sync(
    paths: list[Path] = typer.Argument(..., help="Exports or folders whose permissions to re-read."),
    as_json: bool = typer.Option(False, "--json"),
    site: str | None = typer.Option(
        None, "--site", help="Confluence site (host) or Slack team id of exports that do not state it."
    ),
) -> None:
    """Re-read permissions: every conversation, space and restriction the exports state
    (with messages in them or not) updates the catalog only (no re-embedding, no vector
    rewrite); an export older than one already applied changes nothing; documents no rule
    covers any more leave search."""
    from ingest.pipeline.permission_sync import sync_permissions

    stores, ingestor = _ingestor(site)
    exports = []
    try:
        exports = [ingestor.open(p) for p in paths]
        summary = sync_permissions(ingestor, exports, actor="cli")
    finally:
        for export in exports:
            export.close()
        stores.close()
    if as_json:
        print_json(summary.model_dump())
    else:
        stdout.print(
            f"scopes changed: {summary.scopes_changed} of {summary.scopes_resolved}; "
            f"documents seen {summary.documents_seen}, access updated {summary.access_updated}"
        )
        if summary.scopes_stale or summary.stale_documents:
            stdout.print(
                f"[yellow]older than what was applied before[/]: {summary.scopes_stale} scope statements and "
                f"{summary.stale_documents} documents left as a newer export stated them"
            )
