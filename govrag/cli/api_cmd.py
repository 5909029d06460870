"""``govrag api serve``: the retrieval HTTP service (docs/service.md)."""

from __future__ import annotations

import typer

app = typer.Typer(help="The retrieval HTTP service: POST /v1/search with a bearer JWT.")


@app.command()
def serve(
    host: str | None = typer.Option(None, "--host", help="Bind address (default: GOVRAG_API_HOST, else 127.0.0.1)."),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Port (default: GOVRAG_API_PORT, else 8080)."
    ),
    log_level: str = typer.Option(
        "info", "--log-level", help="Level of uvicorn's and the service's own logs (search lines are INFO)."
    ),
) -> None:
    """Serve search over HTTP until interrupted (Ctrl-C / SIGTERM stop it cleanly)."""
    import logging

    import uvicorn

    from governance.settings import get_settings
    from retrieval.service import create_app

    settings = get_settings()
    # `govrag` already installed its log handler (GOVRAG_LOG_FORMAT / GOVRAG_LOG_LEVEL); the
    # service's own logger gets --log-level so its one line per search is not filtered out.
    logging.getLogger("govrag.api").setLevel(log_level.upper())
    if not logging.getLogger().handlers:  # called without govrag's entry point
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = create_app(settings, warmup=True)  # ConfigError (no JWKS / secret) ends here with a hint
    # The service logs one line per search itself; uvicorn's access log would repeat it.
    uvicorn.run(
        service,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level=log_level.lower(),
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )
