"""How long ``govrag search`` takes from the shell prompt to the printed hits, cold (a new
process each time, as a user types it), against the same search through the library with
the torch embedder (what the command did before it used the NumPy quick-start embedder).

Both run in fresh processes against one ingested sample corpus (the embedded default:
SQLite catalog, local milvus-lite server under HOME); runs alternate so machine noise
hits both alike. Also reports where a cold library search spends its time.

    python bench/cli_search_start.py [--runs 5] [--out bench/results/cli_search_start.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_details  # noqa: E402

LIBRARY = """
import time; t0 = time.perf_counter()
from retrieval import search, User
hits = search(User(id="alice@example.com", email="alice@example.com", groups=["finance"]), "revenue", 10)
print(len(hits))
"""
PHASES = """
import json, time; t = time.perf_counter(); out = {}
def lap(name):
    global t; now = time.perf_counter(); out[name] = round(now - t, 3); t = now
from retrieval.search import default_retriever; lap("import govrag search modules")
from governance.identity import User
r = default_retriever(); lap("open catalog and index")
import torch; lap("import torch")
import sentence_transformers; lap("import sentence_transformers")
r.embedder; lap("load the model")
r.search(
    User(id="alice@example.com", email="alice@example.com", groups=["finance"]), "revenue", 10
); lap("embed + search")
from embedding.numpy_minilm import NumpyMiniLM
m = NumpyMiniLM(); lap("quick start: load the NumPy model")
m.embed(["revenue"]); lap("quick start: embed one query")
print(json.dumps(out))
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cli_search_start.json")
    args = ap.parse_args()
    govrag = str(Path(sys.executable).parent / "govrag")
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")} | {
            "GOVRAG_HOME": f"{tmp}/home",
            "GOVRAG_POLICY": str(ROOT / "govrag" / "sample" / "policy.yaml"),
            "HF_HUB_OFFLINE": "1",
        }
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"from govrag.sample_corpus import write_sample_corpus; write_sample_corpus('{tmp}/corpus')",
            ],
            check=True,
            env=env,
        )
        subprocess.run([govrag, "ingest", f"{tmp}/corpus", "--json"], env=env, check=True, capture_output=True)
        cli, library = [], []
        for _ in range(args.runs):
            cli.append(timed([govrag, "search", "revenue", "--user", "alice@example.com", "--group", "finance"], env))
            library.append(timed([sys.executable, "-c", LIBRARY], env))
        phases = json.loads(
            subprocess.run([sys.executable, "-c", PHASES], env=env, check=True, capture_output=True, text=True).stdout
        )
        subprocess.run([govrag, "server", "stop"], env=env, capture_output=True)
    result = {
        "machine": machine_details(),
        "runs": args.runs,
        "govrag_search_cold_s": {"median": round(statistics.median(cli), 2), "all": [round(x, 2) for x in cli]},
        "library_torch_cold_s": {"median": round(statistics.median(library), 2), "all": [round(x, 2) for x in library]},
        "ratio": round(statistics.median(library) / statistics.median(cli), 2),
        "phases_library_cold_s": phases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
