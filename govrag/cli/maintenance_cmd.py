"""``govrag doctor [--repair]`` and ``govrag acl sync PATH``."""

from __future__ import annotations

from pathlib import Path

import typer

from govrag.cli.output import print_json, stdout

acl_app = typer.Typer(help="Access control: sync permissions from a source without re-embedding.")


def _ingestor():
    from governance.stores import Stores
    from ingest.embed import make_embedder
    from ingest.pipeline.run import Ingestor

    stores = Stores.open()
    return stores, Ingestor(stores, lambda: make_embedder(stores.settings))


def doctor(
    repair: bool = typer.Option(False, "--repair", help="Fix what is found (the catalog is the source of truth)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare catalog and index: orphan / missing / stale vectors, expired-but-present, secrets."""
    from ingest.pipeline.doctor import doctor as run_doctor

    stores, ingestor = _ingestor()
    try:
        before, result, after = run_doctor(ingestor, fix=repair, actor="cli")
    finally:
        stores.close()
    final = after or before
    if as_json:
        print_json({"before": before.counts(), "samples": before.samples(),
                    "repair": result.model_dump() if result else None,
                    "after": after.counts() if after else None, "ok": final.agrees and final.no_expired})
    else:
        for key, value in before.counts().items():
            stdout.print(f"{key}: {value}")
        if result:
            stdout.print(f"[bold]repaired[/]: {result.model_dump()}")
        stdout.print("[green]catalog and index agree[/]" if final.agrees and final.no_expired
                     else "[red]problems remain[/] (run with --repair)")
    if not (final.agrees and final.no_expired):
        raise typer.Exit(code=6)


@acl_app.command("sync")
def acl_sync(paths: list[Path] = typer.Argument(..., help="Exports or folders whose permissions to re-read."),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Re-read permissions: membership and restriction changes update the catalog only (no
    re-embedding, no vector rewrite); documents no rule covers any more leave search."""
    from ingest.pipeline.permission_sync import sync_permissions
    from ingest.sources import discover

    stores, ingestor = _ingestor()
    try:
        items = [item for p in paths for item in discover(p, policy=stores.policy)]
        summary = sync_permissions(ingestor, items, actor="cli")
    finally:
        stores.close()
    if as_json:
        print_json(summary.model_dump())
    else:
        stdout.print(f"scopes changed: {summary.scopes_changed} of {summary.scopes_resolved}; "
                     f"documents seen {summary.documents_seen}, access updated {summary.access_updated}")
