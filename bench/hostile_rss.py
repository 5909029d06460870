"""Peak memory, time and outcome of `govrag ingest` on each hostile input.

Generates the hostile corpus (testsupport/hostile_inputs.py, full sizes) into a temp dir and runs
the real CLI on EACH input in its own fresh process, with its own GOVRAG_HOME, Milvus Lite
``.db`` and the corpus policy. For each run it records the peak RSS of the process tree
(``ru_maxrss`` of the child from ``wait4``, and psutil polling of the whole tree), wall time,
exit code, and the quarantine reason (``govrag status --json``) or the refusal message.

    .venv/bin/python bench/hostile_rss.py                       # everything, full sizes
    .venv/bin/python bench/hostile_rss.py --sizes test --only pdf_flate_bomb slack_zip_bomb

Each child runs under RLIMIT_AS (``--as-limit-gb``, default 8) so that a runaway input
cannot take the machine down; the goal is < 2 GiB peak RSS on every input.
Writes bench/results/hostile_rss.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine_details  # noqa: E402
from testsupport.hostile_inputs import BENCH, GENERATORS, TEST, Hostile, good_pdf, write_corpus  # noqa: E402

GOAL_BYTES = 2 * 1024**3


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv if venv.exists() else sys.executable)


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_one(args: list[str], env: dict[str, str], *, timeout: float, as_limit: int) -> dict:
    """Run a command, polling the tree's RSS; returns rc, wall, peak RSS (both ways), output."""

    def limit() -> None:  # in the child, before exec
        resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))
        os.setsid()

    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(args, env=env, stdout=out, stderr=err, preexec_fn=limit, cwd=REPO)
        peak_tree, timed_out, rusage, status = 0, False, None, None
        while True:
            pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            peak_tree = max(peak_tree, _tree_rss(p.pid))
            if time.perf_counter() - t0 > timeout:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, 9)
                _, status, rusage = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return {
        "rc": p.returncode,
        "timed_out": timed_out,
        "wall_s": round(wall, 2),
        "peak_rss_bytes": max(rusage.ru_maxrss * 1024, peak_tree),
        "maxrss_bytes": rusage.ru_maxrss * 1024,
        "tree_rss_polled_bytes": peak_tree,
        "stdout": stdout,
        "stderr": stderr,
    }


def outcome_of(case: Hostile, res: dict, status: dict | None) -> tuple[str, str]:
    """(observed outcome, reason text) from the run and `govrag status --json`."""
    if res["timed_out"]:
        return "timeout", ""
    if res["rc"] not in (0, 4):
        line = next((ln for ln in res["stderr"].splitlines() if ln.startswith("error:")), res["stderr"].strip()[-300:])
        return ("refused" if line.startswith("error:") else f"crash(rc={res['rc']})"), line
    summary = None
    with contextlib.suppress(ValueError):
        summary = json.loads(res["stdout"])
    quarantine = (summary or {}).get("quarantine") or (status or {}).get("recent_quarantine") or []
    hostile = [q for q in quarantine if "good.pdf" not in q.get("path", "")]
    if hostile:
        reasons = sorted({q["reason"] for q in hostile})
        return "quarantined", ",".join(reasons) + " — " + hostile[0].get("message", "")[:300]
    return "ingested-safely", f"new={(summary or {}).get('new')}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", choices=["bench", "test"], default="bench")
    ap.add_argument("--only", nargs="*", help="input names (default: all)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--as-limit-gb", type=float, default=8)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument(
        "--without-good",
        action="store_true",
        help="ingest the hostile input alone (default: with one good PDF, so the model loads too)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "hostile_rss.json")
    a = ap.parse_args()
    names = a.only or list(GENERATORS)
    unknown = sorted(set(names) - set(GENERATORS))
    if unknown:
        ap.error(f"unknown inputs: {unknown}")
    sizes = BENCH if a.sizes == "bench" else TEST
    tmp = Path(tempfile.mkdtemp(prefix="govrag-hostile-"))
    rows = []
    try:
        corpus_dir = tmp / "corpus"
        t = time.perf_counter()
        print(f"generating {len(names)} inputs into {corpus_dir} ...", flush=True)
        write_corpus(corpus_dir, sizes, [])  # policy only
        good = good_pdf(tmp)
        for name in names:
            case = write_corpus(corpus_dir, sizes, [name])[0]
            home = tmp / "homes" / name
            home.mkdir(parents=True)
            env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")}
            env.update(
                GOVRAG_HOME=str(home),
                GOVRAG_MILVUS_URI=str(home / "milvus.db"),
                GOVRAG_POLICY=str(corpus_dir / "policy.yaml"),
                HF_HUB_OFFLINE="1",
                TRANSFORMERS_OFFLINE="1",
                SCARF_NO_ANALYTICS="true",
                DO_NOT_TRACK="true",
                PYTHONPATH=str(REPO),
            )
            size = (
                sum(f.stat().st_size for f in case.path.rglob("*") if f.is_file())
                if case.path.is_dir()
                else case.path.stat().st_size
            )
            cmd = [
                _python(),
                "-m",
                "govrag.cli.main",
                "ingest",
                str(case.path),
                *([] if a.without_good else [str(good)]),
                "--json",
            ]
            res = run_one(cmd, env, timeout=a.timeout, as_limit=int(a.as_limit_gb * 1024**3))
            status = None
            st = subprocess.run(
                [_python(), "-m", "govrag.cli.main", "status", "--json"],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=300,
            )
            with contextlib.suppress(ValueError):
                status = json.loads(st.stdout)
            observed, reason = outcome_of(case, res, status)
            ok = (
                (observed == case.outcome or (case.outcome == "refused" and observed == "refused"))
                and (not case.reason or case.reason in reason)
                and res["peak_rss_bytes"] < GOAL_BYTES
            )
            row = {
                "input": name,
                "kind": case.kind,
                "what": case.what,
                "input_bytes": size,
                "expected": case.outcome + (f" ({case.reason})" if case.reason else ""),
                "observed": observed,
                "reason": reason,
                "ok": ok,
                **{
                    k: res[k]
                    for k in ("rc", "timed_out", "wall_s", "peak_rss_bytes", "maxrss_bytes", "tree_rss_polled_bytes")
                },
                "vectors": (status or {}).get("vectors"),
            }
            if not ok:
                row["stderr_tail"] = res["stderr"][-1500:]
            rows.append(row)
            print(
                f"{name:34} {observed:16} rc={res['rc']:<3} {res['wall_s']:7.1f}s "
                f"peak {res['peak_rss_bytes'] / 2**20:7.0f} MiB  {'ok' if ok else 'FAIL'}  {reason[:90]}",
                flush=True,
            )
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(case.path.parent if case.path.is_file() else case.path, ignore_errors=True)
        gen_s = time.perf_counter() - t
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    worst = max(rows, key=lambda r: r["peak_rss_bytes"])
    print()
    print(f"{'input':34} {'outcome':16} {'rc':>3} {'wall s':>7} {'peak RSS MiB':>12}")
    for r in rows:
        print(
            f"{r['input']:34} {r['observed']:16} {r['rc']:>3} {r['wall_s']:>7.1f} {r['peak_rss_bytes'] / 2**20:>12.0f}"
        )
    print(
        f"\nworst: {worst['input']} at {worst['peak_rss_bytes'] / 2**20:.0f} MiB "
        f"(goal < {GOAL_BYTES / 2**30:.0f} GiB); {sum(not r['ok'] for r in rows)} not ok of {len(rows)}"
    )
    result = {
        "machine": machine_details(),
        "sizes": a.sizes,
        "goal_peak_rss_bytes": GOAL_BYTES,
        "as_limit_bytes": int(a.as_limit_gb * 1024**3),
        "command": "python -m govrag.cli.main ingest INPUT good.pdf --json",
        "total_seconds": round(gen_s, 1),
        "worst": {k: worst[k] for k in ("input", "peak_rss_bytes", "wall_s")},
        "rows": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {a.out}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
