"""``govrag purge`` and ``govrag hold``: retention, right to be forgotten, legal hold."""

from __future__ import annotations

from typing import Optional

import typer

from govrag.cli.output import print_json, stdout


def purge(
    expired: bool = typer.Option(False, "--expired", help="Every document whose expiry has passed."),
    document: Optional[str] = typer.Option(None, "--document", help="One document id."),
    source: Optional[str] = typer.Option(None, "--source", help="A source kind (pdf, slack, confluence) or origin."),
    subject: Optional[str] = typer.Option(None, "--subject", help="Right to be forgotten: a principal, e.g. user:jane@example.com."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be purged; change nothing."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Delete vectors and text (a tombstone stays: id, hash, when, why). Held documents are kept."""
    from governance import purge as purging
    from governance.stores import Stores

    chosen = [x for x in (expired or None, document, source, subject) if x]
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --expired, --document, --source, --subject")
    stores = Stores.open()
    try:
        if subject:
            from ingest.embed import make_embedder
            from ingest.pipeline.erasure import forget_subject
            from ingest.pipeline.run import Ingestor

            ingestor = Ingestor(stores, lambda: make_embedder(stores.settings))
            report = forget_subject(ingestor, subject, dry_run=dry_run, actor="cli")
        else:
            ids = purging.select(stores.catalog, expired=expired, document=document, source=source)
            reason = "expired" if expired else f"purge --document {document}" if document else f"purge --source {source}"
            selector = {"expired": expired, "document": document, "source": source}
            report = purging.purge_documents(stores.catalog, stores.index, ids, reason=reason,
                                             selector={k: v for k, v in selector.items() if v}, dry_run=dry_run, actor="cli")
    finally:
        stores.close()
    if as_json:
        print_json(report.model_dump())
        return
    verb = "would purge" if dry_run else "purged"
    stdout.print(f"{verb} {len(report.documents)} documents, {report.vectors_deleted} vectors deleted"
                 + ("" if report.verified else " [red](verification found vectors left: run again)[/]"))
    if report.reindexed:
        stdout.print(f"{'would re-index' if dry_run else 're-indexed'} without the subject: {len(report.reindexed)} documents")
    for doc_id, hold in report.held.items():
        stdout.print(f"[yellow]held[/] {doc_id} ({hold})")


hold_app = typer.Typer(help="Legal holds: a held document is never purged (it still obeys access rules).")


@hold_app.command("add")
def hold_add(kind: str = typer.Argument(..., help="document | source | subject"), value: str = typer.Argument(...),
             reason: str = typer.Option("", "--reason")) -> None:
    """Put a document, a source or a subject under legal hold."""
    from governance import audit
    from governance.catalog import Catalog
    from governance.settings import get_settings

    catalog = Catalog(get_settings().catalog_url)
    try:
        added = catalog.add_hold(kind, value, reason, actor="cli")
        if added:
            audit.record(catalog, "hold_add", "cli", {"kind": kind, "value": value, "reason": reason})
    finally:
        catalog.dispose()
    stdout.print("hold added" if added else "already held")


@hold_app.command("remove")
def hold_remove(kind: str = typer.Argument(...), value: str = typer.Argument(...)) -> None:
    """Release a legal hold."""
    from governance import audit
    from governance.catalog import Catalog
    from governance.settings import get_settings

    catalog = Catalog(get_settings().catalog_url)
    try:
        removed = catalog.remove_hold(kind, value)
        if removed:
            audit.record(catalog, "hold_remove", "cli", {"kind": kind, "value": value})
    finally:
        catalog.dispose()
    stdout.print("hold removed" if removed else "no such hold")


@hold_app.command("list")
def hold_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List legal holds."""
    from governance.catalog import Catalog
    from governance.settings import get_settings

    catalog = Catalog(get_settings().catalog_url)
    try:
        holds = catalog.holds()
    finally:
        catalog.dispose()
    if as_json:
        print_json(holds)
        return
    for h in holds:
        stdout.print(f"{h['kind']} {h['value']}  ({h['reason'] or 'no reason'}, {h['created_at']})")
