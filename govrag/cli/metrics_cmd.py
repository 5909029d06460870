"""``govrag metrics``: Prometheus metrics for batch jobs, read from the catalog."""

from __future__ import annotations

import signal
import threading

import typer

app = typer.Typer(help="Prometheus metrics for ingest/purge jobs (the HTTP service exports its own at /metrics).")


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    port: int | None = typer.Option(None, "--port", help="Port (default GOVRAG_METRICS_PORT, 9464)."),
    once: bool = typer.Option(False, "--once", help="Print one scrape to stdout and exit (textfile collectors)."),
) -> None:
    """Serve catalog gauges (documents, chunks, scopes, quarantine by reason, last runs) and
    process metrics at http://HOST:PORT/metrics."""
    from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest, start_http_server

    from governance.catalog import Catalog
    from governance.observability.catalog_metrics import CatalogCollector
    from governance.settings import get_settings

    settings = get_settings()
    catalog = Catalog(settings.catalog_url)
    registry = CollectorRegistry()
    registry.register(CatalogCollector(catalog))
    ProcessCollector(registry=registry)
    if once:
        typer.echo(generate_latest(registry).decode(), nl=False)
        catalog.dispose()
        return
    bind_port = port or settings.metrics_port
    server, _thread = start_http_server(bind_port, addr=host, registry=registry)
    typer.echo(f"metrics on http://{host}:{bind_port}/metrics (Ctrl-C to stop)")
    stop = threading.Event()
    # SIGTERM (a supervisor, `docker stop`) ends it as cleanly as Ctrl-C does, whatever
    # handler an imported library may have installed.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        catalog.dispose()
