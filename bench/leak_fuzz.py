"""Leak fuzzing, long mode: the state machine of ``testsupport/leak_fuzz_machine.py`` on the
real stack (Milvus Lite in-process, SQLite catalog, MiniLM on CPU) for many more examples
and steps, Slack export folders (membership changes without messages, visibility flips,
older exports applied after newer ones) included. Leaks and misses are counted, not raised, so one run reports them all.

    python bench/leak_fuzz.py [--examples 500] [--steps 50] [--seed 1] [--max-docs 12]
                              [--max-users 6] [--minutes 0] [--out bench/results/leak_fuzz.json]

``--minutes`` stops starting new examples after that long (0: no limit); the JSON says how
many examples ran. Exit status 1 when a leak, a miss or an error (an operation of the real
stack that raised) was found.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, seed, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.stateful import run_state_machine_as_test

from bench.machine import machine_details
from testsupport.leak_fuzz_machine import FakeClock, machine_class, open_stores
from testsupport.leak_model import FuzzStats

BATCH = 10  # examples per hypothesis run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=500)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-docs", type=int, default=12)
    ap.add_argument("--max-users", type=int, default=6)
    ap.add_argument("--minutes", type=float, default=0.0, help="stop starting examples after this long (0: no limit)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "leak_fuzz.json")
    args = ap.parse_args()

    from embedding.local import LocalEmbedder

    t0 = time.perf_counter()
    embedder = LocalEmbedder()
    embedder.embed(["warm up"])
    stats = FuzzStats()
    deadline = time.perf_counter() + args.minutes * 60 if args.minutes > 0 else None
    stopped_early = False
    with tempfile.TemporaryDirectory(prefix="govrag-leak-fuzz-") as tmp:
        stores = open_stores(Path(tmp))
        setup_s = time.perf_counter() - t0
        cls = machine_class(
            stores,
            embedder,
            stats,
            strict=False,
            max_docs=args.max_docs,
            max_users=args.max_users,
            workdir=Path(tmp) / "slack-exports",
        )
        started = time.perf_counter()
        search_mod = importlib.import_module("retrieval.search")
        # Batches of examples, each with its own seed (seed, batch) so a run is reproducible
        # and a time limit can stop between batches.
        batch, done = 0, 0
        with mock.patch.object(search_mod, "datetime", FakeClock.datetime):
            while done < args.examples:
                if deadline is not None and time.perf_counter() > deadline:
                    stopped_early = True
                    break
                n = min(BATCH, args.examples - done)
                seed(args.seed * 1_000_003 + batch)(cls)
                before = stats.examples
                with contextlib.suppress(Unsatisfiable):
                    run_state_machine_as_test(
                        cls,
                        settings=settings(
                            max_examples=n,
                            stateful_step_count=args.steps,
                            deadline=None,
                            database=None,
                            suppress_health_check=list(HealthCheck),
                            derandomize=False,
                        ),
                    )
                done += max(1, stats.examples - before)
                batch += 1
        fuzz_s = time.perf_counter() - started
        stores.close()

    print(stats.line())
    print(f"wall time {fuzz_s:.1f} s fuzzing (+{setup_s:.1f} s setup); ops {dict(sorted(stats.ops.items()))}")
    for finding in stats.findings[:20]:
        print("  ", finding)
    result = {
        "benchmark": "leak_fuzz",
        "command": " ".join(["python bench/leak_fuzz.py", *sys.argv[1:]]),
        "seed": args.seed,
        "examples_requested": args.examples,
        "steps_per_example": args.steps,
        "max_docs": args.max_docs,
        "max_users": args.max_users,
        "stopped_at_time_limit": stopped_early,
        "examples": stats.examples,
        "steps": stats.steps,
        "searches": stats.searches,
        "hits_checked": stats.hits_checked,
        "pairs_checked": stats.docs_checked,
        "checks": stats.checks,
        "slack_exports": stats.slack_exports,
        "slack_exports_applied_after_newer": stats.slack_stale_applied,
        "leaks": stats.leaks,
        "misses": stats.misses,
        "errors": stats.errors,
        "findings": stats.findings,
        "ops": dict(sorted(stats.ops.items())),
        "seconds": round(fuzz_s, 1),
        "setup_seconds": round(setup_s, 1),
        "searches_per_second": round(stats.searches / fuzz_s, 2) if fuzz_s else None,
        "machine": machine_details(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return 1 if stats.leaks or stats.misses or stats.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
