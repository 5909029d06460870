"""``govrag server start|stop|status``: the embedded default's local milvus-lite server."""

from __future__ import annotations

import typer

from govrag.cli.output import print_json, stdout

app = typer.Typer(help="The local milvus-lite server under GOVRAG_HOME (started on demand).")


@app.command()
def start() -> None:
    """Start (or attach to) the local server."""
    from governance.milvus_process.local import ensure_server
    from governance.settings import get_settings

    server = ensure_server(get_settings().resolved_home)
    stdout.print(f"milvus-lite server pid {server.pid} at {server.uri}")


@app.command()
def stop() -> None:
    """Stop the local server."""
    from governance.milvus_process.local import stop_server
    from governance.settings import get_settings

    stopped = stop_server(get_settings().resolved_home)
    stdout.print("stopped" if stopped else "not running")


@app.command("status")
def server_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Whether the local server runs, and where."""
    from governance.milvus_process.local import running_server
    from governance.settings import get_settings

    server = running_server(get_settings().resolved_home)
    data = None if server is None else {"pid": server.pid, "uri": server.uri, "data_dir": server.data_dir}
    if as_json:
        print_json(data)
    else:
        stdout.print("not running" if data is None else f"pid {data['pid']} at {data['uri']}")
