"""A real Milvus server on this machine: ``milvus`` 2.3.5 from PyPI, loopback only.

The PyPI package ``milvus`` (2.3.5) carries the Milvus standalone binary (embedded etcd,
RocksMQ, local storage) and a ``milvus-server`` launcher. As shipped, that binary binds its
gRPC ports (proxy, coordinators, nodes) and its metrics port on *all* interfaces: Milvus
2.3 has no setting for the listen address (``<component>.ip`` only sets the address it
advertises), and the embedded etcd always takes 2379/2380. So this module does not use the
launcher. It starts the binary in a private network namespace (``unshare --net``; with
``--map-root-user`` when not root), where only a loopback interface exists, and exposes
exactly one port on the host: the proxy's, through a listening socket bound to
``127.0.0.1:<free port>`` *before* the namespace is made and inherited by the process in it
(:mod:`testsupport.milvus_namespace`). Nothing Milvus opens is reachable from another host,
and two servers never collide on a port.

Process tree (one session, one process group, led by the process :attr:`MilvusServer.pid`
names)::

    python -m testsupport.milvus_namespace   (in the namespace: forwards 127.0.0.1:<port>
      └── milvus run standalone                on the host to 127.0.0.1:19530 inside)

:meth:`MilvusServer.stop` signals the whole group, then SIGKILLs it, and checks that no
process of the group or of the namespace is left (the upstream launcher's SIGTERM can leave
the ``milvus`` child running). Use it as a context manager::

    with MilvusServer(tmp / "milvus") as server:
        client = MilvusClient(server.uri)

For tests and benchmarks only (see :mod:`testsupport`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from governance.errors import MilvusServerError
from testsupport.milvus_package import (
    SUPPORTED_VERSION,
    ensure_binaries,
    render_config,
    unavailable_reason,
    unshare_cmd,
)

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


# -- processes ----------------------------------------------------------------------------
def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def _netns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


KILL_TIMEOUT_S = 30.0  # after SIGKILL: processes in disk I/O die when it returns


def processes_of(pgid: int, netns: str | None = None) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid`` or in network namespace
    ``netns`` (a ``net:[inode]`` link); what must be gone after a stop."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            continue
        if stat[1] == pgid or (netns is not None and _netns(pid) == netns):
            out.append(pid)
    return sorted(out)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class MilvusServer:
    """One ``milvus run standalone`` process tree, reachable at :attr:`uri` only.

    ``data_dir`` holds the config, the logs and the data (about 1 GB once started);
    ``port`` is the host port (0: a free one, chosen and bound at start); ``bin_dir`` is
    where the binaries are unpacked (default: per-user cache). With ``tie_to_parent`` the
    server is killed when the process that started it dies (tests, benchmarks).
    ``config`` overrides settings of the rendered ``milvus.yaml`` by dotted key (segment
    size, compaction, index build parallelism: see docs/milvus.md).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int = 0,
        bin_dir: Path | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        tie_to_parent: bool = True,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.requested_port = port
        self.bin_dir = bin_dir
        self.start_timeout_s = start_timeout_s
        self.tie_to_parent = tie_to_parent
        self.config_overrides = dict(config or {})
        self.port: int | None = None
        self.pid: int | None = None
        self.netns: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- facts ----------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        if self.port is None:
            raise MilvusServerError("milvus-server is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """Milvus's own stdout/stderr (the first place to look when it will not start)."""
        return self.data_dir / "logs" / "milvus-stdout.log"

    @property
    def launcher_log(self) -> Path:
        return self.data_dir / "logs" / "launcher.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def processes(self) -> list[int]:
        """Live processes of this server (its process group and its namespace)."""
        return [] if self.pid is None else processes_of(self.pid, self.netns)

    # -- start ----------------------------------------------------------------------------
    def start(self) -> MilvusServer:
        """Start the server and wait until a client can list collections."""
        if self.running:
            return self
        reason = unavailable_reason()
        if reason:
            raise MilvusServerError(f"cannot start milvus-server: {reason}")
        bin_dir = ensure_binaries(self.bin_dir)
        config = render_config(self.data_dir, self.config_overrides)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.requested_port))
        except OSError as exc:
            listener.close()
            raise MilvusServerError(f"cannot bind 127.0.0.1:{self.requested_port}: {exc}") from exc
        listener.listen(128)
        self.port = int(listener.getsockname()[1])
        env = dict(os.environ)
        repo_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p)
        cmd = [
            *unshare_cmd(),
            sys.executable,
            "-m",
            "testsupport.milvus_namespace",
            "--listen-fd",
            str(listener.fileno()),
            "--bin-dir",
            str(bin_dir),
            "--data-dir",
            str(self.data_dir),
            "--config",
            str(config),
            "--parent-pid",
            str(os.getpid() if self.tie_to_parent else 0),
        ]
        with open(self.launcher_log, "ab") as launcher_log:
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    pass_fds=(listener.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=launcher_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=env,
                    cwd=str(self.data_dir),
                )
            except OSError as exc:
                raise MilvusServerError(f"cannot run {cmd[0]}: {exc}") from exc
            finally:
                listener.close()  # the child holds it now
        self.pid = self._proc.pid
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("milvus-server %s ready at %s (pid %s, data %s)", SUPPORTED_VERSION, self.uri, self.pid, self.data_dir)
        return self

    def _wait_ready(self) -> None:
        from pymilvus import MilvusClient

        deadline = time.monotonic() + self.start_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.netns is None and self.pid is not None:
                ns = _netns(self.pid)
                if ns and ns != _netns(os.getpid()):
                    self.netns = ns
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise MilvusServerError(
                    f"milvus-server exited with code {code} before it was ready; see {self.log_file} "
                    f"and {self.launcher_log}:\n{_log_tail(self.launcher_log)}\n{_log_tail(self.log_file)}",
                    hint=f"read {self.log_file}",
                )
            try:
                client = MilvusClient(uri=self.uri, timeout=3)
                try:
                    client.list_collections()
                    return
                finally:
                    client.close()
            except Exception as exc:  # not listening yet / still starting
                last = exc
                time.sleep(0.5)
        raise MilvusServerError(
            f"milvus-server did not answer at {self.uri} within {self.start_timeout_s:.0f}s "
            f"(last error: {last}); see {self.log_file}:\n{_log_tail(self.log_file)}",
            hint=f"read {self.log_file}",
        )

    # -- stop -----------------------------------------------------------------------------
    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop every process of the server: SIGTERM to the group, SIGKILL after
        ``timeout_s``; raises :class:`MilvusServerError` if any process survives."""
        if self.pid is None:
            return
        pgid = self.pid
        self._signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._reap()
            if not self.processes():
                break
            time.sleep(0.1)
        left = self.processes()
        if left:
            log.warning("milvus-server %s: SIGKILL to %s after %.0fs", pgid, left, timeout_s)
            # Again and again until none is left: a process forked while the group was being
            # killed, or one in uninterruptible disk I/O on a loaded machine, outlives one round.
            deadline = time.monotonic() + KILL_TIMEOUT_S
            while left and time.monotonic() < deadline:
                self._signal_group(pgid, signal.SIGKILL)
                for pid in left:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                self._reap()
                time.sleep(0.2)
                left = self.processes()
        self._reap(block=True)
        left = self.processes()
        if left:
            states = {pid: (_proc_stat(pid) or ("gone",))[0] for pid in left}
            raise MilvusServerError(
                f"milvus-server processes {left} survived SIGKILL for {KILL_TIMEOUT_S:.0f}s (states {states})",
                hint="kill them by PID",
            )
        self._proc = None

    def _signal_group(self, pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)

    def _reap(self, block: bool = False) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5 if block else 0.01)

    def __enter__(self) -> MilvusServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"MilvusServer(uri={self.port and self.uri!r}, pid={self.pid}, data_dir={str(self.data_dir)!r})"


def milvus_server(data_dir: Path | str, **kwargs: Any) -> MilvusServer:
    """A not yet started :class:`MilvusServer`; ``with milvus_server(d) as s:`` starts and stops it."""
    return MilvusServer(data_dir, **kwargs)


def unique_collection(prefix: str = "t") -> str:
    """A collection name no other test uses: tests share one server and each drops its own."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


__all__ = ["MilvusServer", "milvus_server", "processes_of", "unavailable_reason", "unique_collection"]
