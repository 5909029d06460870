"""Cost of denying a Slack workspace's deactivated accounts in every conversation.

A workspace mapped to one IdP group (the recommendation for large workspaces), with
``--conversations`` conversations (a third public, a third private channels, a third DMs) and
``--deactivated`` deactivated accounts among ``--users``. Measures on SQLite: the first apply
of the export's permission state, the deny rows stored, one more deactivation (the next
export), and the scope resolution of an active and of a deactivated caller (median of 50).

    python bench/deny_lists.py [--users 3000] [--deactivated 600] [--conversations 3000] [--out FILE]

Run it on two commits to compare storage schemes (the script only uses public APIs and SQL
counts, so it runs unchanged on a catalog that stores deny rows per scope).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import inspect, text

from bench.machine import machine_details
from governance.policy import Policy
from governance.settings import Settings
from governance.stores import Stores
from ingest.pipeline.permission_state import apply_permission_state
from ingest.sources import slack
from testsupport.sources_fixtures import SConv, SUser, add_messages, msg, write_slack_export

TEAM = "T0DENY"


def _export(dest: Path, users: int, deactivated: int, conversations: int, updated: int) -> Path:
    people = [
        SUser(f"U{i}", f"user{i}", f"user{i}@corp.example", deleted=i >= users - deactivated, team=TEAM)
        for i in range(users)
    ]
    convs = []
    for i in range(conversations):
        a, b = f"U{i % (users - deactivated)}", f"U{(i + 1) % (users - deactivated)}"
        kind = ("public", "private", "im")[i % 3]
        convs.append(SConv(f"{'CGD'[i % 3]}{i}", f"conv{i}", kind, [a, b]))
    add_messages(convs[0], [msg("U0", "hello", 0)])
    path = write_slack_export(dest, people, convs, team_info={"id": TEAM})
    data = json.loads((path / "users.json").read_text())
    for u in data:
        u["updated"] = updated
    (path / "users.json").write_text(json.dumps(data))
    return path


def _deny_rows(stores: Stores) -> int:
    with stores.catalog.session() as s:
        n = s.execute(text("SELECT count(*) FROM scope_principals WHERE layer = -1")).scalar_one()
        if "deny_list_principals" in inspect(stores.catalog.engine).get_table_names():
            n += s.execute(text("SELECT count(*) FROM deny_list_principals")).scalar_one()
    return int(n)


def _resolve_ms(stores: Stores, principals: list[str]) -> float:
    times = []
    for _ in range(50):
        t = time.perf_counter()
        stores.catalog.scopes.allowed_scope_ids(principals)
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


def run(users: int, deactivated: int, conversations: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="denylists-"))
    policy = Policy(workspaces={TEAM: ["group:all-staff"]})
    url = f"sqlite:///{tmp / 'catalog.sqlite3'}"
    stores = Stores.open(Settings(home=tmp / "home", database_url=url, milvus_uri=str(tmp / "m.db"), collection="b"))
    out: dict = {"users": users, "deactivated": deactivated, "conversations": conversations}
    try:
        export = slack.open_source(_export(tmp / "v1", users, deactivated, conversations, 1_700_000_000), policy)
        t = time.perf_counter()
        out["scopes_changed"] = apply_permission_state(stores.catalog, export.state).scopes_changed
        out["first_apply_seconds"] = round(time.perf_counter() - t, 2)
        out["deny_rows"] = _deny_rows(stores)
        nxt = slack.open_source(_export(tmp / "v2", users, deactivated + 1, conversations, 1_700_000_100), policy)
        t = time.perf_counter()
        out["one_more_deactivated_changed"] = apply_permission_state(stores.catalog, nxt.state).scopes_changed
        out["one_more_deactivated_seconds"] = round(time.perf_counter() - t, 2)
        out["deny_rows_after"] = _deny_rows(stores)
        out["catalog_bytes"] = sum(f.stat().st_size for f in tmp.glob("catalog.sqlite3*"))
        active = ["group:all-staff", "user:user1@corp.example"]
        gone = ["group:all-staff", f"user:user{users - 1}@corp.example"]
        out["resolve_active_ms"] = _resolve_ms(stores, active)
        out["resolve_deactivated_ms"] = _resolve_ms(stores, gone)
        out["deactivated_reads"] = len(stores.catalog.scopes.allowed_scope_ids(gone))
    finally:
        stores.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=3000)
    ap.add_argument("--deactivated", type=int, default=600)
    ap.add_argument("--conversations", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=Path("bench/results/deny_lists.json"))
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {
        "benchmark": "deny_lists",
        "commit": commit,
        "machine": machine_details(),
        "run": run(args.users, args.deactivated, args.conversations),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["run"], indent=1))


if __name__ == "__main__":
    main()
