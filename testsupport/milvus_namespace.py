"""Inside milvus-server's network namespace: start Milvus and bridge the host's port to it.

:class:`testsupport.milvus_server.MilvusServer` runs this module under ``unshare --net``::

    python -m testsupport.milvus_namespace --listen-fd N ...   (forwards 127.0.0.1:<port> on
      └── milvus run standalone                                the host to 127.0.0.1:19530 inside)

It brings the namespace's loopback up, starts ``milvus run standalone`` (killed if this
process dies), and forwards every connection accepted on the inherited host socket to the
proxy port inside. It exits, stopping Milvus, on SIGTERM, when Milvus dies, or when the
process that started the server dies.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

from testsupport.milvus_package import GRACEFUL_STOP_S, INNER_PROXY_PORT

_PR_SET_PDEATHSIG = 1


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
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


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


def main(argv: list[str]) -> int:
    """The namespace side: loopback up, ``milvus run standalone``, forward the inherited
    host socket to the proxy port; exit (stopping Milvus) on SIGTERM or when Milvus dies."""
    ap = argparse.ArgumentParser(prog="python -m testsupport.milvus_namespace")
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
    env.update(
        DEPLOY_MODE="STANDALONE",
        METRICS_PORT="9091",
        MILVUSCONF=str(args.config.parent) + "/",
        MILVUS_RUN_DIR=str(args.data_dir / "run"),
        LD_LIBRARY_PATH=os.pathsep.join(p for p in (str(args.bin_dir), env.get("LD_LIBRARY_PATH")) if p),
    )
    env.pop("PYTHONPATH", None)
    with open(args.data_dir / "logs" / "milvus-stdout.log", "ab") as out:
        milvus = subprocess.Popen(
            [str(args.bin_dir / "milvus"), "run", "standalone"],
            cwd=str(args.data_dir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    print(f"milvus pid {milvus.pid} in {os.readlink('/proc/self/ns/net')}", flush=True)
    while not stop.is_set() and milvus.poll() is None:
        try:
            conn, _ = listener.accept()
        except (TimeoutError, InterruptedError):
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
    sys.exit(main(sys.argv[1:]))
