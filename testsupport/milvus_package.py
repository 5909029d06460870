"""The PyPI package ``milvus`` 2.3.5 on this machine: is it usable, its binaries, its config.

The package carries the Milvus standalone binary (embedded etcd, RocksMQ, local storage),
LZMA-compressed, and a ``milvus.yaml`` template. :func:`ensure_binaries` unpacks the binary
once per user and version; :func:`render_config` writes a config with every path under one
data directory and every component on 127.0.0.1. :func:`unavailable_reason` says why a
server cannot be started here (tests skip with it). :mod:`testsupport.milvus_server` starts
the server.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import lzma
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from governance.errors import MilvusServerError

PACKAGE = "milvus"
SUPPORTED_VERSION = "2.3.5"
GRACEFUL_STOP_S = 10  # Milvus's own gracefulStopTimeout (default 1800 s)
INNER_PROXY_PORT = 19530  # inside the namespace the defaults never collide


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
    """The installed version of ``milvus``, or None."""
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


_ns_checked: str | bool | None = False


def unshare_cmd() -> list[str]:
    """``unshare --net`` (with ``--map-root-user`` when not root): the command prefix that
    runs a process in a private network namespace."""
    exe = shutil.which("unshare")
    if not exe:
        raise MilvusServerError(
            "the `unshare` command (util-linux) is not installed",
            hint="install util-linux; it keeps milvus-server's ports off the network",
        )
    cmd = [exe, "--net"]
    if os.geteuid() != 0:
        cmd.append("--map-root-user")
    return cmd


def _namespace_problem() -> str | None:
    global _ns_checked
    if _ns_checked is False:
        try:
            res = subprocess.run([*unshare_cmd(), "true"], capture_output=True, text=True, timeout=20)
            _ns_checked = (
                None
                if res.returncode == 0
                else (f"cannot create a network namespace (`unshare --net`): {res.stderr.strip() or res.returncode}")
            )
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
    digest = hashlib.sha256(
        b"".join(f"{a.name}:{a.stat().st_size}:{a.stat().st_mtime_ns};".encode() for a in archives)
    ).hexdigest()
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
        "etcd_data_dir": str(storage / "etcd.data"),
        "etcd_log_path": str(logs / "etcd.log"),
        "local_storage_dir": str(storage),
        "rocksmq_data_dir": str(storage / "rocksmq"),
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
