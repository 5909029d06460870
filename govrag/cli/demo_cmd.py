"""``govrag demo``: the main job on embedded defaults, end to end."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from govrag.cli.output import stdout

DEMO_USERS = (
    ("alice@example.com", ["finance"], "Alice (finance)"),
    ("bob@example.com", ["eng"], "Bob (engineering)"),
)
DEMO_QUERIES = ("revenue and budget numbers", "how do we roll back a deployment", "how many days of annual leave")


def demo(
    out: Path = typer.Option(Path("./.govrag/sample-corpus"), "--out", help="Where to write the sample corpus."),
) -> None:
    """Generate the sample corpus, ingest it, and search as two users who see different results."""
    from governance.settings import get_settings
    from govrag.cli.ingest_cmd import ingest
    from govrag.sample_corpus import SAMPLE_POLICY, write_sample_corpus

    if not os.environ.get("GOVRAG_POLICY"):
        os.environ["GOVRAG_POLICY"] = str(SAMPLE_POLICY)
        get_settings.cache_clear()
    write_sample_corpus(out)
    stdout.rule("ingest the sample corpus")
    ingest([out], as_json=False, strict=False, policy=None, prune=False)
    ingest([out], as_json=False, strict=False, policy=None, prune=False)  # second run: everything unchanged

    from governance.identity import User
    from retrieval.search import default_retriever

    retriever = default_retriever()
    for query in DEMO_QUERIES:
        stdout.rule(f"search: {query!r}")
        for email, groups, label in DEMO_USERS:
            hits = retriever.search(User(id=email, email=email, groups=groups), query, k=3)
            titles = ", ".join(f"{h.title} ({h.score:.2f})" for h in hits) or "no results"
            stdout.print(f"[bold]{label}[/]: {titles}")
    stdout.print("\nquarantined inputs are listed by [bold]govrag status[/]")
