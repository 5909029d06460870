"""Reading a Slack export: its users, its conversations, their day files, and how new it is.

Reads ``users.json`` (or ``org_users.json``), ``team_info.json``, ``channels.json``
(public), ``groups.json`` (private), ``dms.json`` and ``mpims.json``, and each
conversation folder's ``YYYY-MM-DD.json`` day files. Nothing here decides who may read
what: that is :mod:`ingest.sources.slack.permissions`.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from governance.errors import SourceError
from ingest.sources.archive import zip_names
from ingest.sources.base import SharedState, as_of_stamp, newest, read_json_file

log = logging.getLogger(__name__)

USER_FILES = ("users.json", "org_users.json")
META_FILES = {"channels.json": "public", "groups.json": "private", "mpims.json": "mpim", "dms.json": "im"}
DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.json$")
NOISE_SUBTYPES = frozenset(
    {
        "channel_join",
        "channel_leave",
        "group_join",
        "group_leave",
        "message_deleted",
        "tombstone",
        "bot_add",
        "bot_remove",
        "channel_archive",
        "channel_unarchive",
        "group_archive",
        "group_unarchive",
        "pinned_item",
        "unpinned_item",
        "message_replied",
        "reminder_add",
        "joiner_notification",
        "sh_room_created",
        "huddle_thread",
    }
)
# Size limits, checked before a file is read (parsed JSON takes ~4x its size in memory, and a
# day's messages become one document to chunk and embed): docs/hostile_inputs.md.
MAX_JSON_BYTES = 128 * 1024 * 1024  # users.json, channels.json, groups.json... (~0.9 GB parsed)
MAX_DAY_JSON_BYTES = 16 * 1024 * 1024  # one channel-day file (~90k messages)


# -- detection ---------------------------------------------------------------------------------
def _looks_like_export(names: set[str], has_day_dirs: bool) -> bool:
    return bool(names & set(META_FILES)) or (bool(names & set(USER_FILES)) and has_day_dirs)


def detect(path: Path) -> bool:
    """A folder or zip with conversation lists, or a users list next to day folders."""
    path = Path(path)
    if path.is_dir():
        try:
            names = {p.name for p in path.iterdir() if p.is_file()}
            day_dirs = any(p.is_dir() and any(DAY_FILE.match(f.name) for f in p.iterdir()) for p in path.iterdir())
        except OSError:
            return False
        return _looks_like_export(names, day_dirs)
    if path.is_file() and path.suffix.lower() == ".zip":
        entries = zip_names(path)
        top = {n for n in entries if "/" not in n.strip("/")}
        day_dirs = any(n.count("/") == 1 and DAY_FILE.match(n.split("/")[1] or "") for n in entries)
        return _looks_like_export(top, day_dirs)
    return False


# -- the export --------------------------------------------------------------------------------
@dataclass
class Conversation:
    id: str
    name: str
    kind: str  # public | private | mpim | im
    members: list[str]
    folder: str


@dataclass
class SlackExport(SharedState):
    root: Path
    display: str
    team: str
    team_names: list[str]
    domain: str | None
    users: dict[str, dict]
    conversations: dict[str, Conversation]  # by folder name (and by id)
    by_id: dict[str, Conversation]
    problems: dict[str, str] = field(default_factory=dict)  # metadata file -> error
    home_team: str | None = None  # the team id the export's own accounts carry (Slack Connect: others)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # folder name -> conversation ids claiming it
    as_of: str | None = None

    def display_name(self, uid: str, fallback: str | None = None) -> str:
        """How a user is named in text: display name, real name, handle, else ``fallback``."""
        u = self.users.get(uid)
        if u:
            prof = u.get("profile") or {}
            for key in ("display_name", "real_name"):
                if prof.get(key):
                    return str(prof[key])
            for key in ("real_name", "name"):
                if u.get(key):
                    return str(u[key])
        return fallback or uid


def read_json(path: Path, max_bytes: int | None = None) -> Any:
    """A JSON file of the export: size-limited, strict UTF-8, depth-safe, surrogates scrubbed."""
    if max_bytes is None:
        return read_json_file(path, MAX_JSON_BYTES, "ingest.sources.slack.load.MAX_JSON_BYTES")
    return read_json_file(path, max_bytes, "ingest.sources.slack.load.MAX_DAY_JSON_BYTES")


_KIND_RANK = {"public": 0, "private": 1, "mpim": 2, "im": 3}  # stricter kinds win contradictions


def _row_kind(kind: str, row: dict) -> str:
    """The conversation's kind, failing closed when the row contradicts its file: a
    ``channels.json`` entry marked ``is_private`` (or as a group DM / DM) is not public."""
    if kind == "public" and (row.get("is_private") or row.get("is_group") or row.get("is_mpim") or row.get("is_im")):
        return "mpim" if row.get("is_mpim") else "im" if row.get("is_im") else "private"
    return kind


def _epoch(value: Any) -> datetime | None:
    try:
        t = float(value)
    except (TypeError, ValueError):
        return None
    if not 0 < t < 253402300799:  # year 9999: nonsense times are ignored, never trusted as "newest"
        return None
    return datetime.fromtimestamp(t, tz=UTC)


def message_time(value: Any) -> datetime | None:
    """A message ``ts`` as a time, or None when it is not one."""
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _export_times(root: Path, display: str, raw_users: list[dict]) -> tuple[datetime | None, datetime | None]:
    """(newest ``updated`` of the export's users, when its metadata files were written).

    Neither message dates nor conversation times say when an export was made: a date-ranged
    export of an earlier period, made later, holds older messages; a channel deleted since
    takes its times with it. Users stay in ``users.json`` (deactivated ones flagged), and
    every profile change or deactivation moves their ``updated`` forward, so its maximum
    never goes back between exports of one workspace; the files' own times (zip entries, or
    the metadata files of an unpacked export) say when the export was written, and break
    ties."""
    files = []
    zip_path = Path(display)
    if zip_path.is_file() and zip_path.suffix.lower() == ".zip":
        import zipfile

        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                if "/" not in info.filename.strip("/"):
                    with contextlib.suppress(ValueError):
                        files.append(datetime(*info.date_time, tzinfo=UTC))
    else:
        for name in (*USER_FILES, *META_FILES):
            f = root / name
            if f.is_file():
                files.append(datetime.fromtimestamp(f.stat().st_mtime, tz=UTC))
    return newest(_epoch(u.get("updated")) for u in raw_users), newest(files)


def _read_users(root: Path, display: str) -> list[dict]:
    users_file = next((root / n for n in USER_FILES if (root / n).is_file()), None)
    if users_file is None:
        raise SourceError(
            f"{display}: Slack export without users.json or org_users.json",
            hint="export again with the users list; without it no permission can be resolved",
        )
    try:
        raw_users = read_json(users_file)
        if not isinstance(raw_users, list) or not all(
            isinstance(u, dict) and isinstance(u.get("id"), str) for u in raw_users
        ):
            raise ValueError("expected a list of user objects with an id")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise SourceError(
            f"{display}: {users_file.name} is unreadable: {exc}",
            hint="re-export the workspace; nothing from it was ingested",
        ) from exc
    return raw_users


def _read_team(root: Path, display: str) -> tuple[str | None, list[str], str | None]:
    """(team id, its names, its domain) from ``team_info.json``, when there is one."""
    team, team_names, domain = None, [], None
    info_file = root / "team_info.json"
    if info_file.is_file():
        try:
            info = read_json(info_file)
            t = info.get("team", info) if isinstance(info, dict) else {}
            team, domain = t.get("id"), t.get("domain")
            team_names = [str(x) for x in (t.get("name"), t.get("domain")) if x]
        except (ValueError, OSError, UnicodeDecodeError, AttributeError):
            log.warning("%s: team_info.json unreadable, ignored", display)
    return team, team_names, domain


def _home_team(team: str | None, raw_users: list[dict]) -> str | None:
    """The team the export states: ``team_info.json``'s, else the one most users carry."""
    teams = Counter(u.get("team_id") or (u.get("profile") or {}).get("team") for u in raw_users)
    teams.pop(None, None)
    return str(team) if team else (str(teams.most_common(1)[0][0]) if teams else None)


def _read_conversations(export: SlackExport) -> None:
    """Fill ``export.by_id`` from the metadata files; unreadable ones go to ``problems``."""
    for fname, kind in META_FILES.items():
        f = export.root / fname
        if not f.is_file():
            continue
        try:
            rows = read_json(f)
            if not isinstance(rows, list):
                raise ValueError("expected a list of conversations")
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            export.problems[fname] = str(exc)
            log.warning("%s: %s unreadable: %s", export.display, fname, exc)
            continue
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                export.problems[fname] = "a conversation without an id"
                continue
            _add_conversation(export, row, _row_kind(kind, row))


def _add_conversation(export: SlackExport, row: dict, row_kind: str) -> None:
    cid = row["id"]
    members = row.get("members") or []
    if row_kind == "im" and not members:
        members = [x for x in (row.get("user"),) if x]
    members = [m for m in members if isinstance(m, str)] if isinstance(members, list) else []
    name = str(row.get("name") or cid)
    known = export.by_id.get(cid)
    if known is not None:
        # Listed twice (channels.json and groups.json): the stricter kind, and only
        # the members both lists agree on.
        if _KIND_RANK[row_kind] > _KIND_RANK[known.kind]:
            known.kind = row_kind
        known.members = [m for m in known.members if m in set(members)]
        return
    export.by_id[cid] = Conversation(
        id=cid, name=name, kind=row_kind, members=members, folder=name if row_kind != "im" else cid
    )


def _claim_folders(export: SlackExport) -> None:
    """Which conversation each folder name belongs to; a name two conversations claim is
    ``ambiguous`` (its messages could belong to either)."""
    claims: dict[str, set[str]] = defaultdict(set)
    for conv in export.by_id.values():
        claims[conv.folder].add(conv.id)
        claims[conv.name].add(conv.id)
    for folder, ids in claims.items():
        if folder in export.by_id:  # a folder named by a conversation id is that conversation
            continue
        if len(ids) > 1:
            export.ambiguous[folder] = sorted(ids)
        else:
            export.conversations[folder] = export.by_id[next(iter(ids))]
    export.conversations.update(export.by_id)


def load_export(root: Path, display: str | None = None, site: str | None = None) -> SlackExport:
    """Read the metadata files of an unpacked export. ``site`` names the team when the
    export does not (no ``team_info.json``, no ``team_id`` on its users)."""
    root = Path(root)
    display = display or str(root)
    raw_users = _read_users(root, display)
    team, team_names, domain = _read_team(root, display)
    home_team = _home_team(team, raw_users)
    identity = home_team or site  # what the export states wins; ``site`` only names exports that do not
    if not identity:
        # Two exports that state no team would share every scope key and document id.
        raise SourceError(
            f"{display}: the Slack export states no team id (no team_info.json, no team_id on its users)",
            hint="name the workspace: govrag ingest --site TEAM_ID, or a policy `sources` rule with site:",
        )
    team = re.sub(r"[^A-Za-z0-9_.-]", "_", str(identity))[:64] or "_"

    export = SlackExport(
        root=root,
        display=display,
        team=team,
        team_names=team_names,
        domain=domain,
        users={u["id"]: u for u in raw_users},
        conversations={},
        by_id={},
        home_team=home_team,
    )
    _read_conversations(export)
    _claim_folders(export)
    export.as_of = as_of_stamp(*_export_times(root, display, raw_users))
    return export


# -- day files ---------------------------------------------------------------------------------
def day_files(folder: Path) -> list[Path]:
    """A conversation folder's day files, by date (symlinks are never followed)."""
    return sorted(f for f in folder.iterdir() if DAY_FILE.match(f.name) and f.is_file() and not f.is_symlink())


def read_day(f: Path) -> list[Any]:
    """The rows of one day file (``JsonTooLarge`` / ``ValueError`` when it is not one)."""
    rows = read_json(f, MAX_DAY_JSON_BYTES)
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list):
        raise ValueError("expected a list of messages")
    return rows


def clean_messages(rows: list[Any]) -> list[dict]:
    """Apply ``message_changed``/``message_deleted`` events and drop noise."""
    edits: dict[str, dict] = {}
    deleted: set[str] = set()
    msgs = []
    for m in rows:
        if not isinstance(m, dict):
            continue
        sub = m.get("subtype")
        if sub == "message_changed" and isinstance(m.get("message"), dict) and m["message"].get("ts"):
            edits[str(m["message"]["ts"])] = m["message"]
            continue
        if sub == "message_deleted" and m.get("deleted_ts"):
            deleted.add(str(m["deleted_ts"]))
            continue
        if m.get("hidden") or sub in NOISE_SUBTYPES or m.get("type", "message") != "message":
            continue
        if not isinstance(m.get("ts"), (str, int, float)) or message_time(m["ts"]) is None:
            continue
        msgs.append(m)
    out = []
    for m in msgs:
        ts = str(m["ts"])
        if ts in deleted:
            continue
        if ts in edits:
            m = {**m, **{k: v for k, v in edits[ts].items() if k in ("text", "edited", "files", "attachments")}}
            m.setdefault("edited", {"ts": ts})
        out.append(m)
    return out
