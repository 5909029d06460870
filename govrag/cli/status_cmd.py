"""``govrag status [--json]``."""

from __future__ import annotations

import typer

from govrag.cli.output import print_json, stdout


def status(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """What is indexed: documents, chunks, scopes, quarantine, last run, vector count."""
    from governance.stores import Stores

    stores = Stores.open()
    try:
        data = stores.catalog.status_counts()
        data["vectors"] = stores.index.count()
        data["milvus_uri"] = stores.index.uri
        data["catalog"] = stores.catalog.safe_url
        data["recent_quarantine"] = stores.catalog.quarantined(limit=20)
    finally:
        stores.close()
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if key != "recent_quarantine":
            stdout.print(f"[bold]{key}[/]: {value}")
    for q in data["recent_quarantine"]:
        stdout.print(f"[yellow]quarantined[/] {q['path']}: {q['reason']}")
