#!/usr/bin/env python
"""CPU version of bench/gpu_embed.py: same three variants, small sizes, both tokenization modes.

    python bench/cpu_embed.py [--out docs/benchmarks_embed_cpu.md]

Extra arguments are passed to bench/gpu_embed.py (e.g. --batch-sizes 16,64 --n 128).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_embed  # noqa: E402

if __name__ == "__main__":
    defaults = ["--device", "cpu", "--client-tokenize", "--concurrency", "2", "--batch-sizes", "16,64",
                "--n", "128", "--repeats", "2", "--budget-s", "500"]
    sys.argv = [sys.argv[0], *defaults, *sys.argv[1:]]
    raise SystemExit(gpu_embed.main())
