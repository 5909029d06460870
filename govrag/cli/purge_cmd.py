"""``govrag purge`` and ``govrag hold``: retention, right to be forgotten, legal hold."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING

import typer

from govrag.cli.output import print_json, stdout

if TYPE_CHECKING:  # imported when used: the CLI starts fast
    from governance.catalog import Catalog


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment (a bare container)
        return "unknown"


ACTOR_HELP = "Who does this, for the audit log (default: the OS user)."


def purge(
    expired: bool = typer.Option(False, "--expired", help="Every document whose expiry has passed."),
    document: str | None = typer.Option(None, "--document", help="One document id."),
    source: str | None = typer.Option(None, "--source", help="A source kind (pdf, slack, confluence) or origin."),
    subject: str | None = typer.Option(
        None, "--subject", help="Right to be forgotten: a principal, e.g. user:jane@example.com."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Report what would be purged (documents, vectors, holds); change nothing."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation on a terminal."),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
    allow_unknown_subject: bool = typer.Option(
        False,
        "--allow-unknown-subject",
        help="Record the erasure of a --subject the catalog does not know (future ingests drop their content).",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Delete vectors and text (a tombstone stays: id, hash, when, why). Held documents are kept.
    Asks for confirmation on a terminal unless --yes or --dry-run."""
    from governance import purge as purging
    from governance.stores import Stores

    chosen = [x for x in (expired or None, document, source, subject) if x]
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --expired, --document, --source, --subject")
    actor = actor or _os_user()
    stores = Stores.open()
    try:
        if subject:
            from embedding import make_embedder
            from ingest.pipeline.erasure import forget_subject
            from ingest.pipeline.run import Ingestor

            ingestor = Ingestor(stores, lambda: make_embedder(stores.settings))
            _check_subject(stores.catalog, subject, allow_unknown_subject)
            if not dry_run and not yes:
                preview = forget_subject(ingestor, subject, dry_run=True, actor=actor)
                _confirm(
                    f"erase {subject}: purge {len(preview.documents)} documents, re-index "
                    f"{len(preview.reindexed)} without their words ({len(preview.held)} held)"
                )
            report = forget_subject(ingestor, subject, dry_run=dry_run, actor=actor)
        else:
            ids = purging.select(stores.catalog, expired=expired, document=document, source=source)
            if not ids:
                _check_known(stores.catalog, document=document, source=source)
            reason = (
                "expired" if expired else f"purge --document {document}" if document else f"purge --source {source}"
            )
            selector = {k: v for k, v in {"expired": expired, "document": document, "source": source}.items() if v}
            if ids and not dry_run and not yes:
                preview = purging.purge_documents(
                    stores.catalog, stores.index, ids, reason=reason, selector=selector, dry_run=True
                )
                _confirm(
                    f"purge {len(preview.documents)} documents ({preview.vectors_deleted} vectors; "
                    f"{len(preview.held)} held and kept)"
                )
            report = purging.purge_documents(
                stores.catalog, stores.index, ids, reason=reason, selector=selector, dry_run=dry_run, actor=actor
            )
            if expired:
                from datetime import datetime

                purging.expire_quarantine(
                    stores.catalog,
                    report,
                    keep_days=stores.settings.quarantine_keep_days,
                    now=datetime.now(UTC),
                )
    finally:
        stores.close()
    if as_json:
        print_json(report.model_dump())
        return
    verb = "would purge" if dry_run else "purged"
    stdout.print(
        f"{verb} {len(report.documents)} documents, {report.vectors_deleted} vectors "
        f"{'would be ' if dry_run else ''}deleted"
        + ("" if report.verified else " [red](verification found vectors left: run again)[/]")
    )
    if dry_run:
        for doc_id in report.documents[:50]:
            stdout.print(f"  {doc_id}")
        if len(report.documents) > 50:
            stdout.print(f"  … and {len(report.documents) - 50} more (--json lists them all)")
    if report.quarantine_records_deleted:
        stdout.print(
            f"deleted {report.quarantine_records_deleted} quarantine records older than GOVRAG_QUARANTINE_KEEP_DAYS"
        )
    if report.reindexed:
        stdout.print(
            f"{'would re-index' if dry_run else 're-indexed'} without the subject: {len(report.reindexed)} documents"
        )
    for doc_id, hold in report.held.items():
        stdout.print(f"[yellow]held[/] {doc_id} ({hold}){' would block it' if dry_run else ''}")


def _confirm(what: str) -> None:
    """Ask on a terminal (scripts and jobs, without one, are not asked)."""
    import sys

    if not sys.stdin.isatty():
        return
    if not typer.confirm(f"{what}. This cannot be undone. Go on?", default=False):
        stdout.print("nothing purged")
        raise typer.Exit(code=1)


def _check_known(catalog: Catalog, *, document: str | None, source: str | None) -> None:
    """A selector that matched nothing: an error when it names nothing the catalog knows."""
    from governance.errors import UnknownTarget

    if document is not None:
        row = catalog.documents.document_row(document)
        if row is None:
            raise UnknownTarget(
                f"no document {document!r} in the catalog",
                hint="ids look like pdf:finance/report.pdf or slack:T0123:channel:C0123:…; "
                "`govrag access explain --user …` or `govrag audit export` list them",
            )
        stdout.print(f"{document} is already {row['status']}")
    elif source is not None:
        known = sorted(catalog.runs.status_counts()["documents_by_source"])
        raise UnknownTarget(
            f"no document has the source or origin {source!r}",
            hint=f"sources with documents: {', '.join(known) or 'none'}; an origin is the export "
            "path a document came from",
        )


def _check_subject(catalog: Catalog, subject: str, allow_unknown: bool) -> None:
    from governance.errors import UnknownTarget
    from governance.identity import parse_principal

    principal = parse_principal(subject)
    if (
        allow_unknown
        or catalog.documents.select_documents(author=principal)
        or catalog.documents.select_documents(contributor=principal)
        or catalog.scopes.allowed_scope_ids([principal])
    ):
        return
    raise UnknownTarget(
        f"the catalog knows no {principal!r}: no document by them, no access for them",
        hint="check the spelling (principals look like user:jane@example.com); to record the "
        "erasure anyway, so future ingests drop their content, add --allow-unknown-subject",
    )


hold_app = typer.Typer(help="Legal holds: a held document is never purged (it still obeys access rules).")


@hold_app.command("add")
def hold_add(
    kind: str = typer.Argument(..., help="document | source | subject"),
    value: str = typer.Argument(...),
    reason: str = typer.Option("", "--reason"),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
) -> None:
    """Put a document, a source or a subject under legal hold."""
    from governance import audit
    from governance.catalog import Catalog
    from governance.settings import get_settings

    catalog = Catalog(get_settings().catalog_url)
    try:
        actor = actor or _os_user()
        added = catalog.holds.add_hold(kind, value, reason, actor=actor)
        if added:
            audit.record(catalog, "hold_add", actor, {"kind": kind, "value": value, "reason": reason})
    finally:
        catalog.dispose()
    stdout.print("hold added" if added else "already held")


@hold_app.command("remove")
def hold_remove(
    kind: str = typer.Argument(...),
    value: str = typer.Argument(...),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
) -> None:
    """Release a legal hold."""
    from governance import audit
    from governance.catalog import Catalog
    from governance.settings import get_settings

    catalog = Catalog(get_settings().catalog_url)
    try:
        removed = catalog.holds.remove_hold(kind, value)
        if removed:
            audit.record(catalog, "hold_remove", actor or _os_user(), {"kind": kind, "value": value})
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
        holds = catalog.holds.holds()
    finally:
        catalog.dispose()
    if as_json:
        print_json(holds)
        return
    for h in holds:
        stdout.print(f"{h['kind']} {h['value']}  ({h['reason'] or 'no reason'}, {h['created_at']})")
