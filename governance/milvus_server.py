"""A real Milvus server on this machine: ``milvus`` 2.3.5 from PyPI, loopback only.

The PyPI package ``milvus`` (2.3.5) carries the Milvus standalone binary (embedded etcd,
RocksMQ, local storage) and a ``milvus-server`` launcher. As shipped, that binary binds its
gRPC ports (proxy, coordinators, nodes) and its metrics port on *all* interfaces: Milvus
2.3 has no setting for the listen address (``<component>.ip`` only sets the address it
advertises), and the embedded etcd always takes 2379/2380. So this module does not use the
launcher. It starts the binary in a private network namespace (``unshare --net``; with
``--map-root-user`` when not root), where only a loopback interface exists, and exposes
exactly one port on the host: the proxy's, through a listening socket bound to
``127.0.0.1:<free port>`` *before* the namespace is made and inherited by the process in it.
Nothing Milvus opens is reachable from another host, and two servers never collide on a
port.

Process tree (one session, one process group, led by the process :attr:`MilvusServer.pid`
names)::

    python -m governance.milvus_server _child   (in the namespace: forwards 127.0.0.1:<port>
      └── milvus run standalone                   on the host to 127.0.0.1:19530 inside)

:meth:`MilvusServer.stop` signals the whole group, then SIGKILLs it, and checks that no
process of the group or of the namespace is left (the upstream launcher's SIGTERM can leave
the ``milvus`` child running). Use it as a context manager::

    with MilvusServer(tmp / "milvus") as server:
        client = MilvusClient(server.uri)
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import logging
import lzma
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from governance.errors import MilvusServerError

log = logging.getLogger(__name__)

PACKAGE = "milvus"
SUPPORTED_VERSION = "2.3.5"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
GRACEFUL_STOP_S = 10  # Milvus's own gracefulStopTimeout (default 1800 s)
INNER_PROXY_PORT = 19530  # inside the namespace the defaults never collide
CHILD_COMMAND = "_child"
_PR_SET_PDEATHSIG = 1

# Strict erasure: settings that bound how long purged rows stay in the server's files
# (docs/governance.md, "What is kept on disk, and for how long — Milvus server"), measured on
# 2.3.5 by tests/test_server_erasure_disk.py. deploy/milvus/strict-erasure.yaml holds the same
# for the compose stack (tests/test_deploy_compose.py compares them). Milvus's default in [].
STRICT_ERASURE_CONFIG: dict[str, Any] = {
    # Any deleted row makes its segment due for a rewrite [0.2: a fifth of its rows]; also
    # when a manual compaction found the segment busy or not yet indexed.
    "dataCoord.compaction.single.ratio.threshold": 1.0e-9,
    "dataCoord.compaction.global.interval": 10,  # s between automatic compaction checks [60]
    "dataCoord.gc.interval": 10,  # s between garbage collections [3600]
    "dataCoord.gc.dropTolerance": 60,  # s a dropped collection's segment files stay [10800]
    "dataCoord.gc.missingTolerance": 3600,  # s a file no segment lists stays (a failed flush/compaction) [3600]
    "dataNode.segment.syncPeriod": 10,  # s buffered writes wait for binlogs; well below the WAL retention [600]
    "rocksmq.rocksmqPageSize": 4096,  # bytes per WAL page: only whole pages expire [64 MB]
    "rocksmq.retentionTimeInMinutes": 1,  # a consumed WAL page's life [4320: 3 days]
    "rocksmq.timtickerInterval": 5,  # s between WAL retention checks [600]
    "rocksmq.compactionInterval": 10,  # s between RocksDB compactions that drop expired pages [86400]
}


# -- the installed package ----------------------------------------------------------------
def package_dir() -> Path | None:
    """The installed ``milvus`` package directory, or None when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        return None
    root = Path(spec.origin).parent
    if not (root / "data" / "config.yaml.template").is_file() or not (root / "data" / "bin" / "milvus.lzma").is_file():
        return None
    return root


def package_version() -> str | None:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def unavailable_reason() -> str | None:
    """Why a server cannot be started here (None when it can): the package, its version,
    Linux, and a private network namespace."""
    if package_dir() is None:
        return "the PyPI package `milvus` (milvus-server 2.3.5) is not installed: pip install milvus==2.3.5"
    version = package_version()
    if version != SUPPORTED_VERSION:
        return f"milvus {version} is installed; this launcher knows the layout of {SUPPORTED_VERSION}"
    if not sys.platform.startswith("linux"):
        return "milvus-server is started in a Linux network namespace; this is not Linux"
    return _namespace_problem()


_ns_checked: str | None | bool = False


def _unshare_cmd() -> list[str]:
    exe = shutil.which("unshare")
    if not exe:
        raise MilvusServerError("the `unshare` command (util-linux) is not installed",
                                hint="install util-linux; it keeps milvus-server's ports off the network")
    cmd = [exe, "--net"]
    if os.geteuid() != 0:
        cmd.append("--map-root-user")
    return cmd


def _namespace_problem() -> str | None:
    global _ns_checked
    if _ns_checked is False:
        try:
            res = subprocess.run([*_unshare_cmd(), "true"], capture_output=True, text=True, timeout=20)
            _ns_checked = None if res.returncode == 0 else (
                f"cannot create a network namespace (`unshare --net`): {res.stderr.strip() or res.returncode}")
        except (MilvusServerError, OSError, subprocess.TimeoutExpired) as exc:
            _ns_checked = f"cannot create a network namespace: {exc}"
    return _ns_checked  # type: ignore[return-value]


def default_bin_dir() -> Path:
    """Where the binaries are unpacked once per user and version (~120 MB)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "govrag" / f"milvus-server-{SUPPORTED_VERSION}" / "bin"


def ensure_binaries(bin_dir: Path | None = None) -> Path:
    """Unpack the package's LZMA-compressed binary and libraries into ``bin_dir`` (once;
    a marker with the archive digest makes later calls free)."""
    from filelock import FileLock

    pkg = package_dir()
    if pkg is None:
        raise MilvusServerError(unavailable_reason() or "milvus package missing")
    bin_dir = (bin_dir or default_bin_dir()).resolve()
    bin_dir.mkdir(parents=True, exist_ok=True)
    src = pkg / "data" / "bin"
    archives = sorted(src.glob("*.lzma"))
    digest = hashlib.sha256(b"".join(f"{a.name}:{a.stat().st_size}:{a.stat().st_mtime_ns};".encode()
                                     for a in archives)).hexdigest()
    marker = bin_dir / ".unpacked"
    with FileLock(str(bin_dir / ".unpack.lock"), timeout=300):
        if marker.is_file() and marker.read_text() == digest and (bin_dir / "milvus").is_file():
            return bin_dir
        for archive in archives:
            target = bin_dir / archive.name[: -len(".lzma")]
            tmp = target.with_name(target.name + ".tmp")
            with lzma.open(archive, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            tmp.chmod(0o755)
            tmp.replace(target)
        marker.write_text(digest)
    return bin_dir


# -- configuration ------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")


def render_config(data_dir: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Write ``data_dir/configs/milvus.yaml`` from the package's template: every path under
    ``data_dir``, every component advertising 127.0.0.1, a short graceful stop, then
    ``overrides`` (dotted keys, e.g. ``{"dataCoord.segment.maxSize": 2048}``)."""
    import yaml

    pkg = package_dir()
    if pkg is None:
        raise MilvusServerError(unavailable_reason() or "milvus package missing")
    logs, storage = data_dir / "logs", data_dir / "data"
    paths = {
        "etcd_data_dir": str(storage / "etcd.data"), "etcd_log_path": str(logs / "etcd.log"),
        "local_storage_dir": str(storage), "rocksmq_data_dir": str(storage / "rocksmq"),
        "system_log_path": str(logs),
    }

    def fill(match: re.Match[str]) -> str:
        text = match.group(1).strip()
        key, _, default = text.partition(":")
        key = key.split("(")[0].strip()
        if key in paths:
            return paths[key]
        if not default.strip():
            raise MilvusServerError(f"milvus config template has an unknown placeholder {key!r}")
        return default.strip()

    template = (pkg / "data" / "config.yaml.template").read_text(encoding="utf-8")
    config: dict[str, Any] = yaml.safe_load(_PLACEHOLDER.sub(fill, template))
    for component in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode"):
        config.setdefault(component, {})["ip"] = "127.0.0.1"
    config["proxy"]["port"] = INNER_PROXY_PORT
    config.setdefault("common", {})["gracefulStopTimeout"] = GRACEFUL_STOP_S
    for dotted, value in (overrides or {}).items():
        _set_dotted(config, dotted, value)
    config_dir = data_dir / "configs"
    for d in (config_dir, logs, storage, data_dir / "run"):
        d.mkdir(parents=True, exist_ok=True)
    out = config_dir / "milvus.yaml"
    out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    shutil.copy(pkg / "data" / "glog.conf", config_dir / "glog.conf")
    return out


def _set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise MilvusServerError(f"milvus config override {dotted!r}: {key!r} is not a section")
        node = child
    if parents == ["proxy"] and leaf in ("ip", "port"):
        raise MilvusServerError(f"milvus config override {dotted!r}: the proxy address is managed here")
    node[leaf] = value


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

    def __init__(self, data_dir: Path | str, *, port: int = 0, bin_dir: Path | None = None,
                 start_timeout_s: float = START_TIMEOUT_S, tie_to_parent: bool = True,
                 config: dict[str, Any] | None = None) -> None:
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
    def start(self) -> "MilvusServer":
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
        cmd = [*_unshare_cmd(), sys.executable, "-m", "governance.milvus_server", CHILD_COMMAND,
               "--listen-fd", str(listener.fileno()), "--bin-dir", str(bin_dir),
               "--data-dir", str(self.data_dir), "--config", str(config),
               "--parent-pid", str(os.getpid() if self.tie_to_parent else 0)]
        launcher_log = open(self.launcher_log, "ab")
        try:
            self._proc = subprocess.Popen(cmd, pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL,
                                          stdout=launcher_log, stderr=subprocess.STDOUT,
                                          start_new_session=True, env=env, cwd=str(self.data_dir))
        except OSError as exc:
            raise MilvusServerError(f"cannot run {cmd[0]}: {exc}") from exc
        finally:
            listener.close()  # the child holds it now
            launcher_log.close()
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
                    hint=f"read {self.log_file}")
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
            hint=f"read {self.log_file}")

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
            self._signal_group(pgid, signal.SIGKILL)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.processes():
                self._reap()
                time.sleep(0.1)
        self._reap(block=True)
        left = self.processes()
        if left:
            raise MilvusServerError(f"milvus-server processes {left} survived SIGKILL", hint="kill them by PID")
        self._proc = None

    def _signal_group(self, pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass

    def _reap(self, block: bool = False) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5 if block else 0.01)
            except subprocess.TimeoutExpired:
                pass

    def __enter__(self) -> "MilvusServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"MilvusServer(uri={self.port and self.uri!r}, pid={self.pid}, data_dir={str(self.data_dir)!r})"


def milvus_server(data_dir: Path | str, **kwargs: Any) -> MilvusServer:
    """A not yet started :class:`MilvusServer`; ``with milvus_server(d) as s:`` starts and stops it."""
    return MilvusServer(data_dir, **kwargs)


# -- inside the namespace -----------------------------------------------------------------
def _loopback_up() -> None:
    """``ip link set lo up`` without iproute2 (a new namespace's loopback is down)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, ifr)[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def _die_with_parent(sig: int = signal.SIGKILL) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _bridge(client: socket.socket, port: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        client.close()  # Milvus not listening yet: the caller retries
        return
    upstream.settimeout(None)
    client.settimeout(None)
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _child(argv: list[str]) -> int:
    """The namespace side: loopback up, ``milvus run standalone``, forward the inherited
    host socket to the proxy port; exit (stopping Milvus) on SIGTERM or when Milvus dies."""
    ap = argparse.ArgumentParser(prog="governance.milvus_server _child")
    ap.add_argument("--listen-fd", type=int, required=True)
    ap.add_argument("--bin-dir", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--parent-pid", type=int, default=0)
    args = ap.parse_args(argv)
    if args.parent_pid:
        _die_with_parent(signal.SIGTERM)
        if os.getppid() != args.parent_pid:
            return 3  # the parent is already gone
    _loopback_up()
    listener = socket.socket(fileno=args.listen_fd)
    listener.settimeout(0.5)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    env = dict(os.environ)
    env.update(DEPLOY_MODE="STANDALONE", METRICS_PORT="9091", MILVUSCONF=str(args.config.parent) + "/",
               MILVUS_RUN_DIR=str(args.data_dir / "run"),
               LD_LIBRARY_PATH=os.pathsep.join(p for p in (str(args.bin_dir), env.get("LD_LIBRARY_PATH")) if p))
    env.pop("PYTHONPATH", None)
    out = open(args.data_dir / "logs" / "milvus-stdout.log", "ab")
    milvus = subprocess.Popen([str(args.bin_dir / "milvus"), "run", "standalone"], cwd=str(args.data_dir),
                              env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                              preexec_fn=_die_with_parent)
    print(f"milvus pid {milvus.pid} in {os.readlink('/proc/self/ns/net')}", flush=True)
    while not stop.is_set() and milvus.poll() is None:
        try:
            conn, _ = listener.accept()
        except (socket.timeout, InterruptedError):
            continue
        except OSError:
            break
        threading.Thread(target=_bridge, args=(conn, INNER_PROXY_PORT), daemon=True).start()
    listener.close()
    if milvus.poll() is None:
        milvus.terminate()
        try:
            milvus.wait(GRACEFUL_STOP_S + 5)
        except subprocess.TimeoutExpired:
            milvus.kill()
            milvus.wait()
    print(f"milvus exited with {milvus.returncode}", flush=True)
    return 0 if stop.is_set() else (milvus.returncode or 1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD_COMMAND:
        sys.exit(_child(sys.argv[2:]))
    print("usage: python -m governance.milvus_server _child ... (started by MilvusServer)", file=sys.stderr)
    sys.exit(2)
