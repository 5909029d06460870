"""The ``govrag`` command: one module per command group, assembled here."""

from __future__ import annotations

import os
import sys

import typer

from govrag.cli import (
    access_cmd,
    api_cmd,
    audit_cmd,
    demo_cmd,
    ingest_cmd,
    maintenance_cmd,
    metrics_cmd,
    policy_cmd,
    purge_cmd,
    search_cmd,
    server_cmd,
    status_cmd,
)

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="govrag: governed RAG ingestion with ACL-aware retrieval.",
)
app.command("ingest")(ingest_cmd.ingest)
app.command("search")(search_cmd.search)
app.command("status")(status_cmd.status)
app.command("demo")(demo_cmd.demo)
app.add_typer(server_cmd.app, name="server")
app.add_typer(api_cmd.app, name="api")
app.add_typer(audit_cmd.app, name="audit")
app.command("purge")(purge_cmd.purge)
app.add_typer(purge_cmd.hold_app, name="hold")
app.command("doctor")(maintenance_cmd.doctor)
app.add_typer(maintenance_cmd.acl_app, name="acl")
app.add_typer(access_cmd.app, name="access")
app.add_typer(metrics_cmd.app, name="metrics")
app.add_typer(policy_cmd.app, name="policy")

try:  # the NVFP4 / Triton commands (quantize, serve-embedder)
    from govrag.cli import embedder as _embedder_cmds

    _embedder_cmds.register(app)
except ImportError:  # pragma: no cover - optional until the Triton path is installed
    pass


def main() -> None:
    """Entry point: known errors become one line plus a hint; tracebacks only with GOVRAG_DEBUG=1."""
    from governance.errors import GovragError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import logging

    from governance.observability.logs import configure_logging
    from governance.settings import get_settings

    try:
        settings = get_settings()
        configure_logging(settings.log_format, settings.log_level)
    except Exception as exc:  # bad GOVRAG_* values: say which, without a traceback
        typer.secho(f"error: invalid GOVRAG_* setting: {exc}", err=True, fg="red")
        sys.exit(2)
    # pypdf narrates every repair it makes ("EOF marker not found"); quarantine says what matters.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except GovragError as exc:
        if os.environ.get("GOVRAG_DEBUG") == "1":
            raise
        typer.secho(f"error: {exc}", err=True, fg="red")
        if exc.hint:
            typer.secho(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except ValueError as exc:
        if os.environ.get("GOVRAG_DEBUG") == "1":
            raise
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except _click_exceptions() as exc:  # usage errors: one line, the usage, exit code 2
        sys.exit(_report_usage_error(exc))


def _click_exceptions() -> tuple[type[BaseException], ...]:
    """Click's exception classes: typer carries its own copy of click (``typer._click``),
    and a plain ``click`` may be installed beside it; a usage error may come from either."""
    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(__import__(module, fromlist=["ClickException"]).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _report_usage_error(exc: BaseException) -> int:
    """Print ``error: <what>`` and the command's usage line; return the exit code (2)."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    typer.secho(f"error: {message}", err=True, fg="red")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        usage = ctx.get_usage().replace("Usage: ", "usage: ", 1)
        typer.secho(f"{usage}  (try '{ctx.command_path} --help')", err=True)
    return int(getattr(exc, "exit_code", 2) or 2)


if __name__ == "__main__":
    main()
