#!/usr/bin/env python
"""Embedding throughput for 128-token chunks: in-process vs Triton-served NVFP4 vs Triton BF16.

Made for ONE run on a lent GPU machine with no network (``bash bench/gpu_run.sh``), and for a
CPU smoke run here (``bash bench/gpu_run.sh --device cpu --smoke``). Variants:

  (a) sentence-transformers ``encode`` in process, BF16 on GPU (FP32 on CPU): texts in,
      tokenization included. Also (a') the same encoder on pre-tokenized ids (the GPU ceiling).
  (b) Triton ``govrag_embedder`` serving the NVFP4 model, dequantized at load to BF16 on GPU
      (FP32 on CPU). Hopper (H100/H200, sm_90) has no FP4 tensor cores, so NVFP4 is storage
      there: this measures the served model, not FP4 arithmetic.
  (c) Triton ``govrag_embedder`` serving the dense BF16 model (same code path, no NVFP4).

Triton rows go end to end through ``tritonclient`` gRPC with ``--concurrency`` requests in
flight, in two client modes: ``pretok`` (token ids made once, sent as INT64 INPUT_IDS /
ATTENTION_MASK: what a pipeline that stores tokens with its chunks would do) and ``tok``
(texts tokenized in the client by ``--tok-workers`` processes while the requests fly).

Weights: the GPU machine cannot receive the 90 MB model, so unless ``--model-dir`` names a
real one, all-MiniLM-L6-v2's *architecture* is built from its config.json (carried in
``.gpu_carry/model`` with the tokenizer) with random weights. Throughput and memory do not
depend on the weight values; accuracy is measured on CPU (docs/nvfp4.md). The NVFP4 copy is
made on the spot with the repo's own quantizer.

Triton itself comes from a pruned copy of the nvidia-pytriton wheel (``--site``: the
``tritonserver`` binary, the Python backend, the Python-version stub and the bundled libs).
The server's Python backend stub runs with the interpreter running this script (its torch,
transformers, numpy), found through PATH, and that interpreter's ``libpython`` through
LD_LIBRARY_PATH.

Everything is bounded by ``--budget-s`` (default 360 s): each part checks the time left,
every part runs in try/except and prints its error, progress is printed with flush. The
markdown table goes to stdout and to ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import glob
import importlib
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import traceback
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
for _k, _v in (
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("TOKENIZERS_PARALLELISM", "false"),
    ("TRANSFORMERS_VERBOSITY", "error"),
    ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
):
    os.environ.setdefault(_k, _v)
for _k in ("no_proxy", "NO_PROXY"):  # loopback must never go through a proxy (urllib and gRPC read these)
    os.environ[_k] = ",".join(x for x in (os.environ.get(_k), "127.0.0.1", "localhost") if x)

T0 = time.monotonic()
ROWS: list[dict[str, Any]] = []
REF: dict[str, Any] = {}  # in-process vectors of the first 16 chunks, to check served ones
NOTES: list[str] = []
SEQ = 128
MODEL = "govrag_embedder"


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def left(budget: float) -> float:
    return budget - (time.monotonic() - T0)


def part(name: str, fn: Callable[[], Any]) -> Any:
    """Run one part; print the traceback and go on if it fails."""
    try:
        return fn()
    except Exception:  # a failed part must not stop the others
        log(f"{name} FAILED:\n{traceback.format_exc()}")
        NOTES.append(f"{name} failed (see log)")
        return None


def govrag_import(module: str) -> Any:
    """Import a govrag module; if the package ``__init__`` needs absent deps (pydantic-settings
    on the GPU machine), register bare package objects and import the module file alone."""
    try:
        return importlib.import_module(module)
    except ImportError:
        for pkg in ("ingest", "embedding", "governance"):
            if pkg not in sys.modules or not hasattr(sys.modules[pkg], "__path__"):
                shim = types.ModuleType(pkg)
                shim.__path__ = [str(REPO / pkg.replace(".", "/"))]  # type: ignore[attr-defined]
                sys.modules[pkg] = shim
        return importlib.import_module(module)


def numpy_major() -> int:
    import numpy

    return int(numpy.__version__.split(".")[0])


def sh(cmd: list[str], timeout: float = 10) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout.strip()
    except Exception as exc:
        return f"<{type(exc).__name__}: {exc}>"


# ---------------------------------------------------------------------------- environment


def find_libpython() -> Path | None:
    """Directory holding this interpreter's ``libpythonX.Y.so.1.0`` (what the stub links)."""
    name = f"libpython{sys.version_info[0]}.{sys.version_info[1]}.so.1.0"
    cands = [
        sysconfig.get_config_var("LIBDIR") or "",
        os.path.join(sys.base_prefix, "lib"),
        os.path.join(sys.base_exec_prefix, "lib"),
        "/usr/lib/x86_64-linux-gnu",
        "/usr/local/lib",
        "/usr/lib64",
    ]
    for d in cands:
        if d and os.path.exists(os.path.join(d, name)):
            return Path(d)
    hits = glob.glob(f"/opt/**/{name}", recursive=True) + glob.glob(f"/root/**/{name}", recursive=True)
    return Path(hits[0]).parent if hits else None


def triton_layout(site: Path) -> dict[str, Path]:
    root = site / "pytriton" / "tritonserver"
    ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    lay = {
        "binary": root / "bin" / "tritonserver",
        "backend": root / "backends" / "python",
        "stub": root / "python_backend_stubs" / ver / "triton_python_backend_stub",
        "libs": site / "nvidia_pytriton.libs",
    }
    missing = [str(p) for p in lay.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"Triton pieces missing under {site}: {missing}")
    return lay


def env_report(args: argparse.Namespace) -> str:
    import numpy
    import torch

    log(f"python {sys.version.split()[0]} at {sys.executable} (prefix {sys.prefix}, base {sys.base_prefix})")
    log(f"torch {torch.__version__}, cuda available {torch.cuda.is_available()}, numpy {numpy.__version__}")
    for mod in (
        "transformers",
        "sentence_transformers",
        "tokenizers",
        "safetensors",
        "grpc",
        "google.protobuf",
        "tritonclient",
    ):
        try:
            m = importlib.import_module(mod)
            log(f"  {mod} {getattr(m, '__version__', '?')} ({Path(m.__file__ or '?').parent})")
        except Exception as exc:
            log(f"  {mod}: NOT importable ({exc})")
    gpu = f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    if args.device.startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        cap = torch.cuda.get_device_capability(0)
        gpu = (
            f"{p.name} (sm_{cap[0]}{cap[1]}, {p.total_memory / 2**30:.0f} GiB; FP4 tensor cores: "
            f"{'yes' if cap[0] >= 10 else 'no, NVFP4 is dequantized to BF16'})"
        )
        log(
            "nvidia-smi: "
            + sh(["nvidia-smi", "--query-gpu=name,driver_version,memory.used,memory.total", "--format=csv,noheader"])
        )
    log(f"device: {gpu}; cpu cores {os.cpu_count()}")
    stubs = sorted(p.name for p in (args.site / "pytriton" / "tritonserver" / "python_backend_stubs").glob("*"))
    log(f"pytriton under {args.site}: stubs {stubs}")
    libdir = find_libpython()
    log(f"libpython dir: {libdir}; Py_ENABLE_SHARED={sysconfig.get_config_var('Py_ENABLE_SHARED')}")
    log("/dev/shm: " + sh(["df", "-h", "/dev/shm"]).replace("\n", " | "))
    try:
        lay = triton_layout(args.site)
        ld = ":".join(str(p) for p in (libdir, lay["libs"]) if p)
        res = subprocess.run(
            ["ldd", str(lay["stub"]), str(lay["binary"])],
            env=dict(os.environ, LD_LIBRARY_PATH=ld),
            capture_output=True,
            text=True,
            timeout=20,
        )
        out = res.stdout + res.stderr
        pylib = sorted({ln.strip().split(" (")[0] for ln in out.splitlines() if "libpython" in ln})
        missing = [ln.strip() for ln in out.splitlines() if "not found" in ln]  # libs or GLIBC(XX) versions
        log(f"glibc {platform.libc_ver()[1]} (the Triton binaries need >= 2.34 and GLIBCXX_3.4.30)")
        log(f"stub {lay['stub'].parent.name}: {pylib or 'no libpython line'}; missing: {missing or 'none'}")
    except Exception as exc:
        log(f"triton layout: {exc}")
    return gpu


# ---------------------------------------------------------------------------- model + data


def prepare_models(args: argparse.Namespace, work: Path) -> tuple[Path, Path, str]:
    """(dense dir, nvfp4 dir, weights note). Dense = real model or random init from config."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    quantize = govrag_import("embedding.quantize")
    if args.model_dir:
        dense = Path(args.model_dir)
        note = f"real weights from {dense}"
    else:
        cfg_dir = args.carry / "model"
        dense = work / "dense"
        shutil.copytree(cfg_dir, dense)
        torch.manual_seed(0)
        model = BertModel(BertConfig.from_pretrained(str(cfg_dir)))  # random init (initializer_range)
        sd = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("position_ids")}
        save_file(sd, str(dense / "model.safetensors"), metadata={"format": "pt"})
        note = (
            "random-init weights, architecture from all-MiniLM-L6-v2's config.json "
            "(throughput and memory do not depend on weight values; accuracy is measured on CPU)"
        )
    nv = work / "nvfp4"
    t = time.perf_counter()
    rep = quantize.quantize_model(nv, base_dir=dense, method=args.quant_method)
    log(
        f"quantized ({args.quant_method}) in {time.perf_counter() - t:.1f}s: Linear "
        f"{rep.linear_bytes_before / 1e6:.1f} MB -> {rep.linear_bytes_after / 1e6:.1f} MB, file "
        f"{rep.file_bytes_before / 1e6:.1f} -> {rep.file_bytes_after / 1e6:.1f} MB"
    )
    return dense, nv, note


def make_data(tok_dir: Path, n: int) -> tuple[list[str], Any, Any]:
    """``n`` distinct texts that tokenize to 128 tokens (with [CLS]/[SEP]), and their ids/mask."""
    import numpy as np
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    vocab = np.array(sorted(i for w, i in tok.get_vocab().items() if w.isalpha() and len(w) > 2))
    rng = np.random.default_rng(0)
    ids = rng.choice(vocab, size=(n, SEQ - 2))
    texts = tok.batch_decode(ids.tolist())
    t = time.perf_counter()
    enc = tok(texts, truncation=True, max_length=SEQ, padding="max_length", return_tensors="np")
    dt = time.perf_counter() - t
    log(
        f"{n} texts; one fast-tokenizer batch call: {n / dt:.0f} texts/s; "
        f"mean real tokens {enc['attention_mask'].sum(1).mean():.1f} of {SEQ}"
    )
    return texts, enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)


# ---------------------------------------------------------------------------- measurements


def record(variant: str, mode: str, bs: int, rate: float, mem: str) -> None:
    ROWS.append({"variant": variant, "mode": mode, "batch": bs, "rate": rate, "mem": mem})
    log(f"{variant:28s} {mode:14s} batch {bs:5d}: {rate:10.1f} chunks/s   mem {mem}")


def timed(fn: Callable[[], Any], n: int, repeats: int, budget: float) -> float:
    fn()  # warm-up: kernels, allocator, connections, server-side first batch
    best = 0.0
    for _ in range(repeats):
        if left(budget) < 8:
            break
        t = time.perf_counter()
        fn()
        best = max(best, n / (time.perf_counter() - t))
    return best


def bench_inprocess(args: argparse.Namespace, dense: Path, texts: list[str], ids: Any, mask: Any) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    cuda = args.device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    dname = "BF16" if cuda else "FP32"
    model = SentenceTransformer(str(dense), device=args.device)
    model.max_seq_length = SEQ
    model.to(dtype)
    na = min(len(texts), args.n_inprocess)

    def mem() -> str:
        return f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB peak alloc" if cuda else "n/a"

    for bs in args.batch_sizes:
        if left(args.budget_s) < args.reserve_s:
            log("budget: skipping the rest of (a)")
            break
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        rate = timed(
            # `model` is deleted below, after the last call: that frees the GPU memory
            lambda bs=bs: model.encode(  # noqa: F821
                texts[:na], batch_size=bs, convert_to_numpy=True, normalize_embeddings=True
            ),
            na,
            args.repeats,
            args.budget_s,
        )
        record(f"(a) in-process ST {dname}", "texts", bs, rate, mem())
    # (a') the same encoder on pre-tokenized ids: what the GPU can do when fed
    enc = model[0].auto_model
    tids, tmask = torch.from_numpy(ids), torch.from_numpy(mask)
    REF["dense"] = model.encode(texts[:16], batch_size=16, convert_to_numpy=True, normalize_embeddings=True)

    def run_ids(bs: int) -> None:
        with torch.inference_mode():
            for i in range(0, len(tids), bs):
                a = tids[i : i + bs].to(args.device, non_blocking=True)
                m = tmask[i : i + bs].to(args.device, non_blocking=True)
                h = enc(input_ids=a, attention_mask=m).last_hidden_state  # noqa: F821 (deleted after the last call)
                mm = m.unsqueeze(-1).to(h.dtype)
                v = torch.nn.functional.normalize((h * mm).sum(1).float() / mm.sum(1).float(), dim=1)
                v.cpu()

    for bs in args.batch_sizes:
        if left(args.budget_s) < args.reserve_s:
            break
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        rate = timed(functools.partial(run_ids, bs), len(tids), args.repeats, args.budget_s)
        record(f"(a') in-process encoder {dname}", "pretok", bs, rate, mem())
    del model, enc
    if cuda:
        torch.cuda.empty_cache()


class GpuMemPoll:
    """Highest ``nvidia-smi`` memory.used (MiB, GPU 0) while active."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def used() -> float | None:
        out = sh(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"], 5)
        try:
            return float(out.split()[0])
        except (ValueError, IndexError):
            return None

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            u = self.used()
            if u is not None:
                self.peak = max(self.peak, u)

    def __enter__(self) -> GpuMemPoll:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(timeout=5)


def proc_gpu_mib(pgid: int) -> float | None:
    """GPU memory nvidia-smi attributes to processes in the server's process group."""
    out = sh(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
    total, seen = 0.0, False
    for line in out.splitlines():
        try:
            pid, mib = (int(float(x)) for x in line.split(","))
            if os.getpgid(pid) == pgid:
                total += mib
                seen = True
        except (ValueError, ProcessLookupError, PermissionError):
            continue
    return total if seen else None


def start_server(args: argparse.Namespace, lay: dict[str, Path], model_dir: Path, work: Path) -> Any:
    """tritonserver on loopback with govrag_embedder (KIND_GPU/CPU, dynamic batching)."""
    ts = govrag_import("embedding.triton_server")
    kind = "gpu" if args.device.startswith("cuda") else "cpu"
    d = Path(tempfile.mkdtemp(prefix="triton-", dir=work))
    repo = ts.render_model_repository(d / "models", model_dir, kind=kind, instance_count=args.instances)
    cfg = repo / MODEL / "config.pbtxt"
    text = cfg.read_text().replace(
        "max_queue_delay_microseconds: 2000", f"max_queue_delay_microseconds: {args.queue_delay_us}"
    )
    cfg.write_text(text)
    backends = d / "backends"
    shutil.copytree(lay["backend"], backends / "python", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(lay["stub"], backends / "python" / "triton_python_backend_stub")
    os.chmod(backends / "python" / "triton_python_backend_stub", 0o755)
    os.chmod(lay["binary"], 0o755)
    libdir = find_libpython()
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(
        p for p in (str(libdir or ""), str(lay["libs"]), env.get("LD_LIBRARY_PATH", "")) if p
    )
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # the stub finds this python
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    http, grpc_port = ts.free_port(), ts.free_port()
    shm = "--backend-config=python,shm-default-byte-size=16777216"
    cmd = [
        str(lay["binary"]),
        f"--model-repository={repo}",
        f"--backend-directory={backends}",
        "--http-address=127.0.0.1",
        f"--http-port={http}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--allow-metrics=false",
        "--strict-readiness=true",
        "--exit-on-error=true",
        "--log-info=true",
        shm,
        "--backend-config=python,shm-growth-byte-size=16777216",
    ]
    log_path = d / "tritonserver.log"
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    server = ts.TritonProcess(proc, http, grpc_port, d, log_path, _owns_workdir=False)
    deadline = time.monotonic() + min(args.ready_timeout_s, max(20.0, left(args.budget_s) - 20))
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"tritonserver exited {proc.returncode}:\n{server.log_tail(4000)}")
        if ts._ready(http):  # same module's readiness probe
            return server
        tail = server.log_tail(20000)
        if "failed to load" in tail or "error while loading shared libraries" in tail:
            server.stop()
            raise RuntimeError(f"model failed to load:\n{tail[-4000:]}")
        time.sleep(0.25)
    tail = server.log_tail(4000)
    server.stop()
    raise RuntimeError(f"tritonserver not ready in time:\n{tail}")


def _tok_init(tok_dir: str) -> None:
    """A worker holds the pipeline's tokenizer (embedding.tokenizer.HFTokenizer), as an ingest
    worker does: unpadded ids per text; the batch is padded here, as embed_ids pads it."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    global _TOK, _PAD  # one tokenizer per worker process
    tokenizer = govrag_import("embedding.tokenizer")
    _TOK, _PAD = tokenizer.HFTokenizer.for_model(tok_dir), tokenizer.pad_batch


def _tok_batch(texts: list[str]) -> tuple[Any, Any]:
    return _PAD(_TOK(texts))  # type: ignore[no-any-return]


class Client:
    """Threads with one gRPC client each; ``send`` = one request of INT64 ids (or TEXT)."""

    def __init__(self, url: str, concurrency: int) -> None:
        import tritonclient.grpc as grpcclient

        self.g = grpcclient
        self.url = url
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(max_workers=concurrency)

    def _client(self) -> Any:
        c = getattr(self.local, "c", None)
        if c is None:
            c = self.local.c = self.g.InferenceServerClient(url=self.url)
        return c

    def send(self, ids: Any, mask: Any) -> int:
        g = self.g
        a = g.InferInput("INPUT_IDS", list(ids.shape), "INT64")
        a.set_data_from_numpy(ids)
        b = g.InferInput("ATTENTION_MASK", list(mask.shape), "INT64")
        b.set_data_from_numpy(mask)
        r = self._client().infer(MODEL, [a, b], outputs=[g.InferRequestedOutput("EMBEDDING")], client_timeout=120)
        out = r.as_numpy("EMBEDDING")
        if out is None or out.shape != (ids.shape[0], 384):
            raise RuntimeError(f"bad output shape {getattr(out, 'shape', None)}")
        return out.shape[0]

    def send_text(self, texts: list[str]) -> int:
        import numpy as np

        g = self.g
        arr = np.array([t.encode() for t in texts], dtype=np.object_).reshape(-1, 1)
        a = g.InferInput("TEXT", list(arr.shape), "BYTES")
        a.set_data_from_numpy(arr)
        r = self._client().infer(MODEL, [a], outputs=[g.InferRequestedOutput("EMBEDDING")], client_timeout=120)
        return r.as_numpy("EMBEDDING").shape[0]

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def check_served(client: Client, label: str, ids: Any, mask: Any) -> None:
    """Served vectors are finite unit rows; the dense model's match the in-process ones."""
    import numpy as np

    g = client.g
    a = g.InferInput("INPUT_IDS", list(ids.shape), "INT64")
    a.set_data_from_numpy(ids)
    b = g.InferInput("ATTENTION_MASK", list(mask.shape), "INT64")
    b.set_data_from_numpy(mask)
    v = client._client().infer(MODEL, [a, b], outputs=[g.InferRequestedOutput("EMBEDDING")]).as_numpy("EMBEDDING")
    norms = np.linalg.norm(v, axis=1)
    msg = f"{label}: served {v.shape}, finite {bool(np.isfinite(v).all())}, norms {norms.min():.4f}..{norms.max():.4f}"
    if "dense" in label and "dense" in REF:
        cos = (v * REF["dense"]).sum(1)
        msg += f"; cos vs in-process ST: min {cos.min():.5f}"
    log(msg)


def bench_triton(
    args: argparse.Namespace,
    label: str,
    lay: dict[str, Path],
    model_dir: Path,
    work: Path,
    texts: list[str],
    ids: Any,
    mask: Any,
    tok_pool: Any,
) -> None:
    cuda = args.device.startswith("cuda")
    base = GpuMemPoll.used() if cuda else None
    t = time.perf_counter()
    server = start_server(args, lay, model_dir, work)
    log(f"{label}: tritonserver ready in {time.perf_counter() - t:.1f}s ({args.instances} instance(s))")
    client = None
    try:
        client = Client(server.grpc_url, args.concurrency)
        n = len(ids)
        part(f"{label} check", lambda: check_served(client, label, ids[:16], mask[:16]))
        with GpuMemPoll() as poll:

            def mem() -> str:
                if not cuda:
                    return "n/a"
                own = proc_gpu_mib(server.process.pid)
                s = f"{poll.peak - base:.0f} MiB peak used Δ" if base is not None and poll.peak else "?"
                return s + (f" ({own:.0f} MiB by server procs)" if own is not None else "")

            for bs in args.batch_sizes:
                if left(args.budget_s) < args.reserve_s:
                    log(f"budget: skipping the rest of {label} pretok")
                    break
                batches = [(ids[i : i + bs], mask[i : i + bs]) for i in range(0, n, bs)]
                rate = timed(
                    lambda batches=batches: list(client.pool.map(lambda b: client.send(*b), batches)),
                    n,
                    args.repeats,
                    args.budget_s,
                )
                record(label, "pretok", bs, rate, mem())
            if tok_pool is not None:
                for bs in args.tok_batch_sizes:
                    if left(args.budget_s) < args.reserve_s:
                        log(f"budget: skipping the rest of {label} client-tok")
                        break
                    tb = [texts[i : i + bs] for i in range(0, len(texts), bs)]

                    def run(tb: list[list[str]] = tb) -> None:
                        futs = [client.pool.submit(client.send, a, m) for a, m in tok_pool.imap(_tok_batch, tb)]
                        for f in futs:
                            f.result()

                    rate = timed(run, len(texts), args.repeats, args.budget_s)
                    record(label, f"tok x{args.tok_workers}proc", bs, rate, mem())
            if args.embed_ids_batch:
                part(f"{label} embed_ids", lambda: bench_embed_ids(args, label, server, model_dir, texts))
            if args.server_tok and numpy_major() >= 2:
                log(
                    "TEXT (server-side tokenization) row skipped: the Python backend stub's numpy bridge is "
                    "built for numpy 1.x and crashes on BYTES inputs with numpy 2 (INT64 I/O goes via DLPack)"
                )
            elif args.server_tok and left(args.budget_s) > args.reserve_s:
                bs = args.server_tok
                ns = min(len(texts), args.n_server_tok)
                tb = [texts[i : i + bs] for i in range(0, ns, bs)]
                rate = timed(lambda: list(client.pool.map(client.send_text, tb)), ns, 1, args.budget_s)
                record(label, "TEXT (server tok)", bs, rate, mem())
    finally:
        if client is not None:
            client.close()
        if args.out:  # keep the server log next to the table
            tag = label.split(")")[0].strip("(")
            shutil.copy2(server.log_path, Path(args.out).parent / f"tritonserver_{tag}.log")
        server.stop()
        log(f"{label}: server stopped")


def bench_embed_ids(args: argparse.Namespace, label: str, server: Any, model_dir: Path, texts: list[str]) -> None:
    """The ingest writer's path: ids made once by the pipeline's tokenizer, sent by
    ``TritonEmbedder.embed_ids`` (length-sorted batches, padded per batch, INT64)."""
    tokenizer = govrag_import("embedding.tokenizer").HFTokenizer.for_model(model_dir)
    client_mod = govrag_import("embedding.triton_client")
    emb = client_mod.TritonEmbedder(
        server.grpc_url, batch_size=args.embed_ids_batch, concurrency=args.concurrency, timeout_s=120
    )
    ids = tokenizer(texts)
    rate = timed(lambda: emb.embed_ids(ids), len(ids), args.repeats, args.budget_s)
    record(label, "ids via TritonEmbedder.embed_ids", args.embed_ids_batch, rate, "n/a")


# ---------------------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description="embedding throughput, 128-token chunks (GPU check)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CPU check of the whole flow)")
    p.add_argument(
        "--site",
        type=Path,
        default=Path(os.environ.get("GOVRAG_GPU_SITE", "/tmp/site")),
        help="where the pruned pytriton tree (and the wheels) were unpacked",
    )
    p.add_argument("--carry", type=Path, default=REPO / ".gpu_carry")
    p.add_argument("--model-dir", default=None, help="real base model dir (default: random init from config)")
    p.add_argument("--quant-method", default="rtn", help="quantizer method (format is the same for all)")
    p.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=None)
    p.add_argument("--tok-batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=None)
    p.add_argument("--n", type=int, default=None, help="chunks per Triton measurement")
    p.add_argument("--n-inprocess", type=int, default=None, help="chunks per in-process ST measurement")
    p.add_argument("--n-server-tok", type=int, default=None)
    p.add_argument("--server-tok", type=int, default=None, help="batch size for one TEXT (server-tok) row; 0 = off")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument("--instances", type=int, default=None, help="Triton model instances")
    p.add_argument("--queue-delay-us", type=int, default=500)
    p.add_argument("--tok-workers", type=int, default=None)
    p.add_argument(
        "--embed-ids-batch", type=int, default=None, help="batch of the TritonEmbedder.embed_ids row; 0 = off"
    )
    p.add_argument("--budget-s", type=float, default=360.0)
    p.add_argument("--reserve-s", type=float, default=15.0)
    p.add_argument("--ready-timeout-s", type=float, default=150.0)
    p.add_argument("--skip", default="", help="comma list of a,b,c,tok to skip")
    p.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = p.parse_args()
    cuda = args.device.startswith("cuda")
    cores = os.cpu_count() or 2
    if args.smoke:
        args.batch_sizes = args.batch_sizes or [8, 32]
        args.tok_batch_sizes = args.tok_batch_sizes or [32]
        args.n = args.n or 64
        args.n_inprocess = args.n_inprocess or 32
        args.n_server_tok = args.n_server_tok or 32
        args.server_tok = 16 if args.server_tok is None else args.server_tok
        args.repeats = 1
    args.batch_sizes = args.batch_sizes or ([32, 128, 512, 1024] if cuda else [16, 64])
    args.tok_batch_sizes = args.tok_batch_sizes or ([128, 512] if cuda else [64])
    args.n = args.n or (16384 if cuda else 256)
    args.n_inprocess = args.n_inprocess or (8192 if cuda else 128)
    args.n_server_tok = args.n_server_tok or (4096 if cuda else 64)
    args.server_tok = 256 if args.server_tok is None else args.server_tok
    args.concurrency = args.concurrency or (8 if cuda else 2)
    args.instances = args.instances or (2 if cuda else 1)
    args.embed_ids_batch = (128 if cuda else 64) if args.embed_ids_batch is None else args.embed_ids_batch
    args.tok_workers = args.tok_workers or max(1, min(12, cores - 4) if cuda else 1)
    skip = set(args.skip.split(","))

    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    log(f"bench/gpu_embed.py {' '.join(sys.argv[1:])}")
    gpu = part("environment", lambda: env_report(args)) or args.device
    work = Path(tempfile.mkdtemp(prefix="gpu-embed-"))
    models = part("model preparation", lambda: prepare_models(args, work))
    if models is None:
        return 1
    dense, nvdir, weights_note = models
    log(f"weights: {weights_note}")
    data = part("data", lambda: make_data(dense, max(args.n, args.n_inprocess)))
    if data is None:
        return 1
    texts, ids, mask = data
    ids, mask = ids[: args.n], mask[: args.n]

    lay = part("triton layout", lambda: triton_layout(args.site))
    tok_pool = None
    if lay is not None and "tok" not in skip:

        def mk_pool() -> Any:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(args.tok_workers, initializer=_tok_init, initargs=(str(dense),))
            pool.map(_tok_batch, [texts[:4]] * args.tok_workers)  # start and warm every worker
            log(f"{args.tok_workers} tokenizer worker processes ready")
            return pool

        tok_pool = part("tokenizer pool", mk_pool)

    if "a" not in skip:
        part("(a) in-process", lambda: bench_inprocess(args, dense, texts, ids, mask))
    dt = "BF16" if cuda else "FP32"
    if lay is not None and "b" not in skip and left(args.budget_s) > 40:
        part(
            "(b) Triton NVFP4",
            lambda: bench_triton(
                args, f"(b) Triton NVFP4->{dt}", lay, nvdir, work, texts[: args.n], ids, mask, tok_pool
            ),
        )
    if lay is not None and "c" not in skip and left(args.budget_s) > 40:
        part(
            "(c) Triton dense",
            lambda: bench_triton(
                args, f"(c) Triton dense {dt}", lay, dense, work, texts[: args.n], ids, mask, tok_pool
            ),
        )
    if tok_pool is not None:
        tok_pool.terminate()

    lines = [
        f"Device: {gpu}. Weights: {weights_note}. 128-token chunks; best of {args.repeats} after a "
        f"warm-up; Triton: gRPC, {args.concurrency} requests in flight, {args.instances} model instance(s), "
        f"dynamic batching (max queue delay {args.queue_delay_us} µs), Python backend; client tokenization "
        f"with {args.tok_workers} worker processes. NVFP4 rows: weights stored as NVFP4 (quantized here with "
        f"`{args.quant_method}` and the default BF16 keep list: same layout and bytes as the default recipe), "
        f"dequantized to {dt} at load; "
        + ("no FP4 tensor cores on this GPU." if cuda else "CPU has no FP4 arithmetic."),
        "",
        "| variant | input | batch | chunks/s | GPU memory |",
        "|---|---|---:|---:|---|",
    ]
    lines += [f"| {r['variant']} | {r['mode']} | {r['batch']} | {r['rate']:.0f} | {r['mem']} |" for r in ROWS]
    if NOTES:
        lines += ["", "Notes: " + "; ".join(NOTES)]
    table = "\n".join(lines)
    print("\n" + table, flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table + "\n")
    shutil.rmtree(work, ignore_errors=True)
    log("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
