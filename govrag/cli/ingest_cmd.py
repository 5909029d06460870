"""``govrag ingest PATH... [--json] [--strict] [--workers N]``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from govrag.cli.output import print_json, stderr, stdout

if TYPE_CHECKING:  # imported when used: the CLI starts fast
    from ingest.sources.base import SourceItem


def format_rates(rates: dict[str, float], parse_workers: int) -> str:
    """``parse 85/s (2 processes) · embed 120/s · write 900/s``, the slowest stage marked: each
    stage's chunks per second while it works, so the user sees which one is the wall."""
    if not rates:
        return "rates pending"
    slowest = min(rates, key=lambda stage: rates[stage])
    parts = []
    for stage, rate in rates.items():
        text = f"{stage} {rate:,.0f}/s"
        if stage == "parse":
            text += f" ({parse_workers} processes)" if parse_workers else " (in process)"
        parts.append(f"[bold]{text}[/]" if stage == slowest and len(rates) > 1 else text)
    return " · ".join(parts)


def ingest(
    paths: list[Path] = typer.Argument(..., help="PDF files or folders (drop folders)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 4 when anything was quarantined."),
    policy: Path | None = typer.Option(None, "--policy", help="Policy YAML (default: GOVRAG_POLICY)."),
    prune: bool = typer.Option(
        False,
        "--prune",
        help="The paths are fresh full exports: tombstone documents of the same "
        "workspace / space that are gone from them.",
    ),
    site: str | None = typer.Option(
        None,
        "--site",
        help="Confluence site (host) or Slack team id of exports that do "
        "not state it (Confluence HTML exports never do).",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=0,
        help="Processes that parse documents (default: GOVRAG_INGEST_WORKERS, else one per core; "
        "0: parse in this process).",
    ),
) -> None:
    """Ingest documents: parse, clean, version, embed and index them with their access scope."""
    from embedding import make_embedder
    from governance.settings import get_settings
    from governance.stores import Stores
    from ingest.pipeline.run import Ingestor

    settings = get_settings()
    if policy is not None:
        from governance.policy import load_policy

        load_policy(policy, hint_name="--policy")  # errors name the option the user gave
        settings = settings.model_copy(update={"policy": policy})
    stores = Stores.open(settings)
    try:
        ingestor = Ingestor(stores, lambda: make_embedder(settings), site=site, workers=workers)
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[chunks]} chunks · {task.fields[rates]} · {task.fields[current]}"),
            TimeElapsedColumn(),
            console=stderr,
            transient=as_json,
        ) as bar:
            task = bar.add_task("ingest", total=None, chunks=0, current="", rates="")

            def progress(event: str, item: SourceItem | None, n: int) -> None:
                if event == "start":
                    bar.update(task, total=n)
                elif event == "document":
                    chunks = bar.tasks[0].fields["chunks"] + n
                    running = ingestor.running
                    rates = format_rates(running.stage_rates(), running.parse_workers) if running else ""
                    bar.update(task, advance=1, chunks=chunks, current=item.rel_path if item else "", rates=rates)

            summary = ingestor.ingest_paths(paths, progress, prune=prune)
    finally:
        stores.close()

    if as_json:
        print_json(
            summary.model_dump()
            | {
                "chunks_per_second": round(summary.chunks_per_second, 2),
                "stage_chunks_per_second": summary.stage_rates(),
            }
        )
    else:
        table = Table(title=f"ingest run {summary.run_id}", show_header=False)
        for key in (
            "documents_seen",
            "new",
            "changed",
            "unchanged",
            "access_updated",
            "scopes_changed",
            "quarantined",
            "tombstoned",
            "expired_skipped",
            "stale_skipped",
            "chunks_written",
            "vectors_deleted",
        ):
            table.add_row(key.replace("_", " "), str(getattr(summary, key)))
        if summary.redactions:
            table.add_row("redacted", ", ".join(f"{k} {n}" for k, n in sorted(summary.redactions.items())))
        if summary.tagged:
            table.add_row("tagged sensitive", str(summary.tagged))
        table.add_row(
            "seconds",
            f"{summary.seconds:.2f} (parse {summary.parse_seconds:.2f}, embed {summary.embed_seconds:.2f}, "
            f"write {summary.write_seconds:.2f})",
        )
        if summary.stage_rates():
            table.add_row("chunks/s by stage", format_rates(summary.stage_rates(), summary.parse_workers))
        stdout.print(table)
        for q in summary.quarantine:
            stdout.print(f"[yellow]quarantined[/] {q.path}: [bold]{q.reason}[/] — {q.message}")
    for warning in summary.warnings:
        stderr.print(f"[yellow]warning:[/] {warning}")
    if strict and summary.quarantined:
        raise typer.Exit(code=4)
