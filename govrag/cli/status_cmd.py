"""``govrag status [--json]``."""

from __future__ import annotations

import typer
from rich.table import Table

from govrag.cli.output import print_json, stdout


def status(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """What is indexed: documents, chunks, scopes, quarantined files, last run, vector count."""
    from governance.stores import Stores

    stores = Stores.open()
    try:
        data = stores.catalog.runs.status_counts()
        data["vectors"] = stores.index.count()
        data["milvus_uri"] = stores.index.uri
        data["catalog"] = stores.catalog.safe_url
        data["quarantined_files_latest"] = stores.catalog.runs.quarantined_files(limit=20)
        data["recent_quarantine"] = stores.catalog.runs.quarantined(limit=20)  # the events, for scripts
    finally:
        stores.close()
    if as_json:
        print_json(data)
        return
    files = data.pop("quarantined_files_latest")
    data.pop("recent_quarantine")
    for key, value in data.items():
        stdout.print(f"[bold]{key.replace('_', ' ')}[/]: {value}")
    if data["documents_without_expiry"]:
        stdout.print(
            f"[yellow]warning:[/] {data['documents_without_expiry']} active documents have no expiry: no "
            "retention rule matched them (docs/policy.md, `retention`)"
        )
    if files:
        table = Table(title=f"quarantined files (latest {len(files)} of {data['quarantined_files']})")
        for column in ("file", "reason", "times", "last", "what to do"):
            table.add_column(column, overflow="fold")
        for q in files:
            table.add_row(q["path"], q["reason"], str(q["times"]), q["at"][:19], q["message"])
        stdout.print(table)
