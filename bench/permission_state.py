"""Cost of applying a Slack export's permission state: every conversation has its own scope
row (stable keys), so a workspace with many public channels and many members stores and
compares many rows. Measures, on SQLite and (optionally) PostgreSQL:

- opening the export (metadata, scopes built for every conversation);
- the first apply (every scope row written), a re-apply of the same export (fingerprints
  compared, nothing written), and an apply after one member joined the workspace (every
  public scope rewritten) — with ``workspaces: source-members`` and with the workspace mapped
  to one IdP group (the recommendation for large workspaces).

    python bench/permission_state.py [--users 2000] [--channels 500] [--pg URL] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from governance.policy import Policy
from governance.settings import Settings
from governance.stores import Stores
from ingest.pipeline.permission_state import apply_permission_state
from ingest.sources import slack
from testsupport.sources_fixtures import SConv, SUser, add_messages, msg, write_slack_export


def _export(dest: Path, users: int, channels: int, updated: int) -> Path:
    people = [SUser(f"U{i}", f"user{i}", f"user{i}@corp.example", team="T0BENCH") for i in range(users)]
    convs = [SConv(f"C{i}", f"ch{i}", "public", ["U0"]) for i in range(channels)]
    add_messages(convs[0], [msg("U0", "hello", 0)])
    path = write_slack_export(dest, people, convs, team_info={"id": "T0BENCH"})
    data = json.loads((path / "users.json").read_text())
    for u in data:
        u["updated"] = updated
    (path / "users.json").write_text(json.dumps(data))
    return path


def _scratch_database(admin_url: str) -> str:
    """A new empty PostgreSQL database next to ``admin_url``'s (each run starts empty)."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"govrag_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def run(users: int, channels: int, database_url: str | None, mapped: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="permstate-"))
    policy = Policy(workspaces={"T0BENCH": ["group:all-staff"]}) if mapped else Policy()
    url = _scratch_database(database_url) if database_url else f"sqlite:///{tmp / 'catalog.sqlite3'}"
    stores = Stores.open(Settings(home=tmp / "home", database_url=url, milvus_uri=str(tmp / "m.db"), collection="b"))
    out: dict = {
        "users": users,
        "channels": channels,
        "workspace": "group" if mapped else "source-members",
        "catalog": url.split(":", 1)[0],
    }
    try:
        t = time.perf_counter()
        export = slack.open_source(_export(tmp / "v1", users, channels, 1_700_000_000), policy)
        out["open_seconds"] = round(time.perf_counter() - t, 2)
        for label in ("first_apply", "reapply"):
            t = time.perf_counter()
            result = apply_permission_state(stores.catalog, export.state)
            out[f"{label}_seconds"] = round(time.perf_counter() - t, 2)
            out[f"{label}_changed"] = result.scopes_changed
        joined = slack.open_source(_export(tmp / "v2", users + 1, channels, 1_700_000_100), policy)
        t = time.perf_counter()
        out["one_member_joined_changed"] = apply_permission_state(stores.catalog, joined.state).scopes_changed
        out["one_member_joined_seconds"] = round(time.perf_counter() - t, 2)
    finally:
        stores.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--channels", type=int, default=500)
    ap.add_argument("--pg", default=None, help="a PostgreSQL URL to measure too (each run creates its own database)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/permission_state.json"))
    args = ap.parse_args()
    runs = [run(args.users, args.channels, None, mapped) for mapped in (False, True)]
    if args.pg:
        runs += [run(args.users, args.channels, args.pg, mapped) for mapped in (False, True)]
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load": os.getloadavg(),
        },
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
