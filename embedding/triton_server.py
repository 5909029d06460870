"""Start and stop a real ``tritonserver`` (from the nvidia-pytriton wheel) on loopback.

The server runs from its own venv (``GOVRAG_TRITON_ENV``, default ``<repo>/.venv-triton``,
built by ``scripts/setup_triton_env.sh``) because pytriton pins numpy<2. Inside that venv:

* ``pytriton/tritonserver/bin/tritonserver``            the server binary
* ``pytriton/tritonserver/backends/python/``            libtriton_python.so + utils
* ``pytriton/tritonserver/python_backend_stubs/3.11/``  the stub for Python 3.11

The stub is not in the backend dir in the wheel: pytriton copies the one matching the Python
version into a private backend dir at start, and so do we. The stub links
``libpython3.11.so``; it must be the venv interpreter's library, found through
``LD_LIBRARY_PATH=<sysconfig LIBDIR>``, and the venv's ``bin`` goes first on ``PATH`` so the
embedded interpreter finds the venv (and its torch, transformers, numpy<2).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from governance.errors import EmbedderUnavailable
from governance.milvus_process.local import free_port  # re-exported: bench/gpu_embed.py

REPO_ROOT = Path(__file__).resolve().parents[1]
# Not a top-level "triton" folder: it would shadow the OpenAI triton package for torch.
DEFAULT_MODEL_REPO = REPO_ROOT / "deploy" / "triton" / "model_repository"
MODEL_NAME = "govrag_embedder"
_FATAL_LOG_MARKERS = ("error while loading shared libraries", "failed to load")
_SETUP_HINT = "run scripts/setup_triton_env.sh (or set GOVRAG_TRITON_ENV to an env that has nvidia-pytriton)"


def triton_env() -> Path:
    """The venv the server runs from: ``GOVRAG_TRITON_ENV`` or ``<repo>/.venv-triton``."""
    return Path(os.environ.get("GOVRAG_TRITON_ENV") or REPO_ROOT / ".venv-triton")


@dataclass(frozen=True)
class TritonLayout:
    """Where the pieces live in a Triton venv."""

    env: Path
    python: Path
    binary: Path
    backend_dir: Path  # .../backends/python (without the stub)
    stub: Path
    libdir: Path
    wheel_libs: Path  # nvidia_pytriton.libs: the stub's bundled libs (its RPATH is relative)

    @classmethod
    def find(cls, env: Path | None = None) -> TritonLayout:
        """Locate the binary, backend and stub in ``env``; EmbedderUnavailable if absent."""
        env = Path(env or triton_env())
        python = env / "bin" / "python"
        if not python.exists():
            raise EmbedderUnavailable(f"no Triton environment at {env}", hint=_SETUP_HINT)
        probe = subprocess.run(
            [
                str(python),
                "-c",
                "import pathlib, sys, sysconfig, pytriton; "
                "print(pathlib.Path(pytriton.__file__).parent); "
                "print(sysconfig.get_config_var('LIBDIR')); "
                "print(f'{sys.version_info[0]}.{sys.version_info[1]}')",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if probe.returncode != 0:
            raise EmbedderUnavailable(
                f"nvidia-pytriton is not importable in {env}: {probe.stderr.strip()[-300:]}",
                hint=_SETUP_HINT,
            )
        pkg, libdir, version = probe.stdout.split()
        root = Path(pkg) / "tritonserver"
        layout = cls(
            env=env,
            python=python,
            binary=root / "bin" / "tritonserver",
            backend_dir=root / "backends" / "python",
            stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
            libdir=Path(libdir),
            wheel_libs=Path(pkg).parent / "nvidia_pytriton.libs",
        )
        for path in (layout.binary, layout.backend_dir, layout.stub):
            if not path.exists():
                raise EmbedderUnavailable(f"Triton install incomplete: {path} missing", hint=_SETUP_HINT)
        return layout


def render_model_repository(
    dst: Path,
    model_dir: Path,
    kind: str = "cpu",
    src: Path = DEFAULT_MODEL_REPO,
    instance_count: int = 1,
    max_batch_size: int | None = None,
) -> Path:
    """Copy the model repository to ``dst`` with ``model_dir`` and the instance kind filled in.

    ``nvfp4.py`` is copied next to ``model.py`` so the served model does not depend on the
    govrag source tree (as in a production Triton container).
    """
    if kind not in ("cpu", "gpu"):
        raise ValueError(f"kind must be cpu or gpu, not {kind!r}")
    src_model = Path(src) / MODEL_NAME
    dst_model = Path(dst) / MODEL_NAME
    shutil.copytree(src_model, dst_model, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO_ROOT / "embedding" / "nvfp4.py", dst_model / "1" / "nvfp4.py")
    cfg = (src_model / "config.pbtxt").read_text()
    cfg = re.sub(
        r'(key: "model_dir"\s*value: \{ string_value: )"[^"]*"',
        lambda m: f'{m.group(1)}"{Path(model_dir).resolve()}"',
        cfg,
    )
    cfg = re.sub(r"kind: KIND_\w+", f"kind: KIND_{kind.upper()}", cfg)
    cfg = re.sub(r"count: \d+", f"count: {instance_count}", cfg)
    if max_batch_size is not None:
        cfg = re.sub(r"max_batch_size: \d+", f"max_batch_size: {max_batch_size}", cfg)
    (dst_model / "config.pbtxt").write_text(cfg)
    return Path(dst)


@dataclass
class TritonProcess:
    """A running tritonserver; ``stop()`` ends it (SIGTERM, then SIGKILL) by its PID."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    workdir: Path
    log_path: Path
    _owns_workdir: bool = field(default=True, repr=False)

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> None:
        """Terminate the server (its own process group), wait, then kill if it hangs."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> TritonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ready(http_port: int) -> bool:
    try:
        with urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=2) as resp:
            return resp.status == 200
    except (URLError, OSError):
        return False


def start_triton(
    model_dir: Path,
    model_repo: Path | None = None,
    http_port: int | None = None,
    grpc_port: int | None = None,
    kind: str = "cpu",
    env_dir: Path | None = None,
    ready_timeout_s: float = 120.0,
    instance_count: int = 1,
    extra_args: list[str] | None = None,
) -> TritonProcess:
    """Run ``tritonserver`` on 127.0.0.1 serving ``govrag_embedder`` from ``model_dir``.

    ``model_repo`` is the source repository to render (default: the one in this repo).
    Returns once the server reports ready; raises EmbedderUnavailable (with the log tail)
    if it exits or is not ready within ``ready_timeout_s``.
    """
    layout = TritonLayout.find(env_dir)
    http_port = http_port or free_port()
    grpc_port = grpc_port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="govrag-triton-"))
    repo = render_model_repository(
        workdir / "models",
        Path(model_dir),
        kind=kind,
        src=Path(model_repo or DEFAULT_MODEL_REPO),
        instance_count=instance_count,
    )
    # Private backend dir = the wheel's python backend + the stub for this Python version.
    backends = workdir / "backends"
    shutil.copytree(layout.backend_dir, backends / "python", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(layout.stub, backends / "python" / "triton_python_backend_stub")

    env = dict(os.environ)
    # libpython first (the venv interpreter's), then the wheel's bundled libs: the copied
    # stub's RPATH ($ORIGIN/../../../../nvidia_pytriton.libs) no longer resolves.
    env["LD_LIBRARY_PATH"] = ":".join(
        p for p in (str(layout.libdir), str(layout.wheel_libs), env.get("LD_LIBRARY_PATH", "")) if p
    )
    env["PATH"] = f"{layout.env / 'bin'}:{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)  # the main venv's packages (numpy 2) must not leak in
    env.pop("PYTHONHOME", None)
    cmd = [
        str(layout.binary),
        f"--model-repository={repo}",
        f"--backend-directory={backends}",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--allow-metrics=false",  # no third port; nothing listens beyond loopback
        "--strict-readiness=true",
        "--exit-on-error=true",
        "--log-info=true",
        *(extra_args or []),
    ]
    log_path = workdir / "tritonserver.log"
    with open(log_path, "wb") as log:
        # own process group: stop() signals the server and its Python stubs together
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    server = TritonProcess(proc, http_port, grpc_port, workdir, log_path)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if not server.alive():
            tail = server.log_tail()
            server.stop()
            raise EmbedderUnavailable(f"tritonserver exited with {proc.returncode}:\n{tail}", hint=_SETUP_HINT)
        if _ready(http_port):
            return server
        tail = server.log_tail(20000)
        fatal = next((m for m in _FATAL_LOG_MARKERS if m in tail), None)
        if fatal:  # the server keeps running with a failed model: do not wait for nothing
            server.stop()
            raise EmbedderUnavailable(
                f"tritonserver failed to load the model ({fatal}):\n{tail[-3000:]}", hint=_SETUP_HINT
            )
        time.sleep(0.25)
    tail = server.log_tail()
    server.stop()
    raise EmbedderUnavailable(f"tritonserver not ready after {ready_timeout_s:.0f}s:\n{tail}", hint=_SETUP_HINT)
