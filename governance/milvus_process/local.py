"""The embedded default vector store: one ``milvus-lite server`` per ``GOVRAG_HOME``.

Milvus Lite refuses a second process on the same database (``DataDirLockedError``), yet
Dagster runs each run in its own process and applications search while an ingest runs. So
every govrag process starts, or attaches to, one loopback server under ``GOVRAG_HOME``;
a file lock makes sure only one process starts it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from governance.errors import IndexUnavailable

START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class LocalServer:
    pid: int
    port: int
    data_dir: str

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _state_dir(home: Path) -> Path:
    return home / "milvus"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reusable_port(previous: LocalServer | None) -> int:
    """The port the last server of this home used, when it is free again: processes that
    stayed up across a restart (the HTTP service, a Dagster daemon) hold that URI and
    reconnect to it; a new port would strand them until they reopen their stores."""
    if previous is not None:
        with socket.socket() as s:
            # As the server's gRPC listener does: a killed server's connections linger in
            # TIME_WAIT, which only SO_REUSEADDR lets a new listener ignore.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", previous.port))
                return previous.port
            except OSError:
                pass
    return free_port()


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child of ours is reaped and counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _read_state(home: Path) -> LocalServer | None:
    try:
        data = json.loads((_state_dir(home) / "server.json").read_text())
        return LocalServer(pid=int(data["pid"]), port=int(data["port"]), data_dir=str(data["data_dir"]))
    except (FileNotFoundError, ValueError, KeyError):
        return None


def running_server(home: Path) -> LocalServer | None:
    """The live server of this home, or None."""
    state = _read_state(home)
    if state and process_alive(state.pid) and _port_open(state.port):
        return state
    return None


def _binary() -> list[str]:
    """The ``milvus-lite`` command, run by this Python with govrag's physical compaction
    installed (``governance.milvus_process.lite_compaction``): a purge's deleted rows leave
    the data files."""
    if importlib.util.find_spec("milvus_lite") is None:
        raise IndexUnavailable("the milvus-lite command is not installed", hint="pip install milvus-lite")
    return [sys.executable, "-m", "governance.milvus_process.lite_compaction"]


def ensure_server(home: Path) -> LocalServer:
    """Attach to this home's milvus-lite server, starting it if none is running."""
    state_dir = _state_dir(home)
    state_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(state_dir / "server.lock"), timeout=START_TIMEOUT_S + 30):
        live = running_server(home)
        if live:
            return live
        data_dir = state_dir / "data"
        port = _reusable_port(_read_state(home))
        with open(state_dir / "server.log", "ab") as log:
            # start_new_session: the server outlives the CLI command that started it and
            # does not get the terminal's Ctrl-C.
            proc = subprocess.Popen(
                [*_binary(), "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise IndexUnavailable(
                    f"milvus-lite server exited with code {proc.returncode}",
                    hint=f"see {state_dir / 'server.log'}",
                )
            if _port_open(port):
                server = LocalServer(pid=proc.pid, port=port, data_dir=str(data_dir))
                tmp = state_dir / "server.json.tmp"
                tmp.write_text(json.dumps(server.__dict__))
                tmp.replace(state_dir / "server.json")
                return server
            time.sleep(0.2)
        proc.kill()
        raise IndexUnavailable(
            f"milvus-lite server did not listen within {START_TIMEOUT_S:.0f}s",
            hint=f"see {state_dir / 'server.log'}",
        )


def stop_server(home: Path, timeout_s: float = 20.0) -> bool:
    """Stop this home's server; True when one was running."""
    state = _read_state(home)
    if not state or not process_alive(state.pid):
        return False
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process_alive(state.pid):
        time.sleep(0.1)
    if process_alive(state.pid):
        os.kill(state.pid, signal.SIGKILL)
    (_state_dir(home) / "server.json").unlink(missing_ok=True)
    return True


def resolve_uri(milvus_uri: str | None, home: Path) -> str:
    """The URI to connect to: the configured one, or this home's local server."""
    if milvus_uri:
        return milvus_uri
    return ensure_server(home).uri
