"""Slack exports of team T0ACME for the permission tests: a policy, five people (a guest, a
partner of another team), conversations holding one phrase each, and exports stamped with
the time they were made, so a later export is newer by its own timestamps."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from testsupport.sources_fixtures import BASE_TS, SConv, SUser, add_messages, msg, write_slack_export

DAY = 86400
POLICY = """\
version: 1
retention:
  - match: {}
    keep_for: 3650d
workspaces:
  default: source-members
"""

SECRET = "the heron migration plan stays between us"
GENERAL = "quarterly lantern festival budget approved"
SHARED = "vendor onboarding checklist for the partner"


def people() -> list[SUser]:
    """alice, bob and carol of the team; gus, a guest; xena, of another team (T0OTHER)."""
    return [
        SUser("U1", "alice", "alice@corp.example"),
        SUser("U2", "bob", "bob@corp.example"),
        SUser("U3", "carol", "carol@corp.example"),
        SUser("U4", "gus", "gus@guest.example", guest=True),
        SUser("U5", "xena", "xena@partner.example", team="T0OTHER"),
    ]


def slack_export(
    dest: Path,
    convs: list[SConv],
    *,
    at: int,
    users: list[SUser] | None = None,
    as_zip: bool = False,
    zip_name: str | None = None,
    rows: Callable[[str, list[dict]], None] | None = None,
) -> Path:
    """An export of team T0ACME made at ``BASE_TS + at`` seconds (users' ``updated``), so
    later exports are newer by the export's own timestamps. ``rows(file, rows)`` may edit the
    metadata rows before they are written."""
    users = users if users is not None else people()
    folder = write_slack_export(dest, users, convs, team_info={"id": "T0ACME", "name": "Acme", "domain": "acme"})
    for name in ("users.json", "channels.json", "groups.json", "dms.json", "mpims.json"):
        f = folder / name
        data = json.loads(f.read_text())
        if name == "users.json":
            for u in data:
                u["updated"] = BASE_TS + at
        if rows is not None:
            rows(name, data)
        f.write_text(json.dumps(data))
    if not as_zip:
        return folder
    out = dest.parent / (zip_name or f"{dest.name}.zip")
    with zipfile.ZipFile(out, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder).as_posix())
    shutil.rmtree(folder)
    return out


def conv(cid: str, name: str, kind: str, members: Iterable[str], phrase: str | None = None, at: int = 0) -> SConv:
    """A conversation; with ``phrase``, one message of its first member at ``at`` seconds."""
    c = SConv(cid, name, kind, list(members))
    if phrase:
        add_messages(c, [msg(next(iter(c.members), "U1"), phrase, at)])
    return c
