"""CLI commands for the NVFP4 embedder: ``govrag quantize`` and ``govrag serve-embedder``.

``register(app)`` adds both commands to the root Typer app.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from governance.errors import GovragError

DEFAULT_MODEL_DIR = Path(".govrag") / "models" / "minilm-nvfp4"


def quantize(
    out: Path = typer.Option(DEFAULT_MODEL_DIR, "--out", help="directory to write the NVFP4 model to"),
    method: str = typer.Option(
        "gptq",
        "--method",
        help="gptq (default: calibrated on generic text, 7 sensitive layers kept in BF16), mse or rtn",
    ),
) -> None:
    """Quantize all-MiniLM-L6-v2's Linear weights to NVFP4 (compressed-tensors layout)."""
    from embedding.quantize import quantize_model

    report = quantize_model(out, method=method)
    typer.echo(
        f"wrote {report.out_dir} ({report.method}): {report.quantized_tensors} Linear weights "
        f"{report.linear_bytes_before / 1e6:.1f} MB -> {report.linear_bytes_after / 1e6:.1f} MB; "
        f"file {report.file_bytes_before / 1e6:.1f} MB -> {report.file_bytes_after / 1e6:.1f} MB"
    )


def serve_embedder(
    model_dir: Path = typer.Option(DEFAULT_MODEL_DIR, "--model-dir", help="NVFP4 model dir (govrag quantize)"),
    repo: Path | None = typer.Option(None, "--repo", help="Triton model repository to render"),
    http_port: int = typer.Option(8000, "--http-port"),
    grpc_port: int = typer.Option(8001, "--grpc-port"),
    kind: str = typer.Option("cpu", "--kind", help="cpu or gpu (Triton instance kind)"),
) -> None:
    """Run tritonserver on 127.0.0.1 serving the NVFP4 embedder; Ctrl-C stops it cleanly."""
    from embedding.triton_server import start_triton

    if kind not in ("cpu", "gpu"):
        raise typer.BadParameter("use cpu or gpu", param_hint="--kind")
    if not (model_dir / "model.safetensors").exists():
        typer.echo(f"no model at {model_dir}; run: govrag quantize --out {model_dir}", err=True)
        raise typer.Exit(2)
    try:
        server = start_triton(model_dir, model_repo=repo, http_port=http_port, grpc_port=grpc_port, kind=kind)
    except GovragError as exc:
        typer.echo(f"error: {exc}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        raise typer.Exit(exc.exit_code) from exc
    typer.echo(f"Triton ready: grpc {server.grpc_url}  http {server.http_url}  (Ctrl-C to stop)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            if not server.alive():
                typer.echo(f"tritonserver exited:\n{server.log_tail()}", err=True)
                raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        typer.echo("Triton stopped")


def register(app: typer.Typer) -> None:
    """Add ``quantize`` and ``serve-embedder`` to the root app."""
    app.command("quantize")(quantize)
    app.command("serve-embedder")(serve_embedder)
