"""``govrag policy check FILE [PATH...] [--site S] [--json]``: validate a policy and show what
it would do to each document of the given exports or folders, writing nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from govrag.cli.output import print_json, stdout

app = typer.Typer(no_args_is_help=True, help="Check a policy file before using it.")


@app.command("check")
def check(
    policy_file: Path = typer.Argument(..., help="The policy YAML to check."),
    paths: list[Path] | None = typer.Argument(None, help="Exports or folders to try it on (nothing is written)."),
    site: str | None = typer.Option(None, "--site", help="Confluence site / Slack team id of exports that state none."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdicts as JSON."),
) -> None:
    """Validate FILE (unknown keys, bad durations, bad principals are errors) and, given
    PATHs, show for each document the access rule that matches, its layers, classification,
    retention rule and expiry, or why it would be quarantined."""
    from governance.policy import load_policy

    policy = load_policy(policy_file, hint_name="the policy FILE argument")
    rows = [row for path in paths or [] for row in verdicts(policy, path, site)]
    if as_json:
        print_json({"policy": str(policy_file), "valid": True, "documents": rows})
        return
    stdout.print(
        f"[green]{policy_file}: valid[/] ({len(policy.access)} access, {len(policy.retention)} retention, "
        f"{len(policy.redaction)} redaction rules; {len(policy.roles)} roles; {len(policy.workspaces)} "
        f"workspaces; {len(policy.sources)} sources)"
    )
    if not rows:
        return
    table = Table(title="what ingest would do")
    for column in ("document", "outcome", "access rule", "layers", "classification", "retention rule", "expires"):
        table.add_column(column, overflow="fold")
    for r in rows:
        layers = " AND ".join("(" + " | ".join(layer) + ")" for layer in r.get("layers", []))
        if r.get("deny"):
            layers += " NOT " + " | ".join(r["deny"])
        table.add_row(
            r["document_id"] or r["path"],
            r["outcome"] if r["outcome"] != "quarantined" else f"quarantined: {r['reason']}",
            _rule(r.get("access_rule")),
            layers or r.get("message", ""),
            r.get("classification", ""),
            _rule(r.get("retention_rule")),
            (r.get("expires_at") or "never")[:16].replace("T", " "),
        )
    stdout.print(table)


def _rule(index: int | None) -> str:
    return "-" if index is None else f"#{index + 1}"


def verdicts(policy: Any, path: Path, site: str | None) -> list[dict[str, Any]]:
    """What ingest would decide for every document under ``path`` (each one parsed as
    ingest parses it; nothing is written)."""
    from governance.errors import QuarantinedDocument, SourceError
    from governance.scope_rules import resolve_scope
    from ingest.sources import open_source

    now = datetime.now(UTC)
    try:
        export = open_source(path, policy=policy, site=site)
    except SourceError as exc:
        return [
            {
                "document_id": None,
                "path": str(path),
                "outcome": "quarantined",
                "reason": getattr(exc, "reason", "unreadable"),
                "message": str(exc),
            }
        ]
    rows = []
    with export:
        for item in export.items:
            row: dict[str, Any] = {"document_id": item.document_id, "path": item.rel_path, "source": item.source}
            try:
                scope, classification = resolve_scope(policy, item)
                # Parsed like ingest parses it: a broken file is quarantined, and a PDF's own
                # date (not its file time) anchors retention.
                modified = item.parse().modified_at or item.modified_at
            except QuarantinedDocument as exc:
                rows.append(row | {"outcome": "quarantined", "reason": exc.reason, "message": str(exc)})
                continue
            except SourceError as exc:
                rows.append(row | {"outcome": "quarantined", "reason": "unreadable", "message": str(exc)})
                continue
            facts = {**item.facts, "classification": classification}
            expires = policy.expires_at(facts, modified=modified, ingested=now)
            access = policy.access_rule(item.facts)
            retention = policy.retention_rule(facts)  # the rules ingest applies, found the same way
            rows.append(
                row
                | {
                    "outcome": "past retention (skipped)" if expires is not None and expires <= now else "indexed",
                    "access_rule": access[0] if access else None,
                    "layers": [sorted(layer) for layer in scope.layers],
                    "deny": sorted(scope.deny),
                    "classification": classification,
                    "retention_rule": policy.retention.index(retention) if retention else None,
                    "expires_at": expires.isoformat() if expires else None,
                }
            )
    return rows
