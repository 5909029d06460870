"""Slack workspace exports (zip or unpacked folder), with the permissions Slack had.

Reads ``users.json`` (or ``org_users.json``), ``channels.json`` (public), ``groups.json``
(private), ``dms.json`` and ``mpims.json`` and every conversation's ``YYYY-MM-DD.json``.
Documents:

- one per thread (``thread_ts``): the root and every reply, broadcast replies included,
  sorted by time — id ``slack:<team>:<channel id>:<thread_ts>``;
- one per channel-day for unthreaded talk — id ``slack:<team>:<channel id>:day:<date>``.

Permissions (see docs/sources.md):

- private channels, DMs, group DMs: one layer of their *active* members — ``user:<email>``
  (lower-cased), or ``user:slack:<team>:<user id>`` when the user has no email;
  scope key ``slack:<team>:channel:<channel id>``;
- public channels: the workspace-wide scope ``slack:<team>:workspace``, one layer held by
  every full member (or what the policy's ``workspaces`` key maps the team to). Guests
  (``is_restricted``/``is_ultra_restricted``) are not in it; a public channel with guest
  members gets its own scope ``slack:<team>:channel:<id>`` = workspace holders ∪ those guests;
- deleted users, bots and apps are in no layer at all;
- a conversation folder that no metadata file describes, or a private conversation left
  with no active member, is quarantined (fail closed), never given to a policy rule.

Scope keys name the conversation, not its members, so a membership change updates one
catalog row and no vector. Files are kept as text metadata (title, name, type) and never
downloaded.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from governance.contracts import AccessScope
from governance.errors import AccessDenied, QuarantinedDocument, SourceError
from governance.identity import principal
from governance.policy import Policy
from ingest.sources.archive import extract_zip, remove_extraction, zip_names
from ingest.sources.base import (
    POLICY_SEP,
    JsonTooLarge,
    Parsed,
    PermissionState,
    SourceExport,
    SourceItem,
    bounded_id,
    read_json_file,
)
from ingest.sources.workspaces import workspace_principals

log = logging.getLogger(__name__)

PARSER_VERSION = "slack-1"
USER_FILES = ("users.json", "org_users.json")
META_FILES = {"channels.json": "public", "groups.json": "private", "mpims.json": "mpim", "dms.json": "im"}
DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.json$")
NOISE_SUBTYPES = frozenset({
    "channel_join", "channel_leave", "group_join", "group_leave", "message_deleted", "tombstone",
    "bot_add", "bot_remove", "channel_archive", "channel_unarchive", "group_archive", "group_unarchive",
    "pinned_item", "unpinned_item", "message_replied", "reminder_add", "joiner_notification",
    "sh_room_created", "huddle_thread",
})
# Size limits, checked before a file is read (parsed JSON takes ~4x its size in memory, and a
# day's messages become one document to chunk and embed): docs/hostile_inputs.md.
MAX_JSON_BYTES = 128 * 1024 * 1024      # users.json, channels.json, groups.json... (~0.9 GB parsed)
MAX_DAY_JSON_BYTES = 16 * 1024 * 1024   # one channel-day file (~90k messages)


# -- detection ---------------------------------------------------------------------------------
def _looks_like_export(names: set[str], has_day_dirs: bool) -> bool:
    return bool(names & set(META_FILES)) or (bool(names & set(USER_FILES)) and has_day_dirs)


def detect(path: Path) -> bool:
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
class SlackExport:
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

    # users
    def user_principal(self, uid: str) -> str | None:
        u = self.users.get(uid)
        if u is None:
            return None
        email = ((u.get("profile") or {}).get("email") or u.get("email") or "").strip()
        try:
            return principal("user", email) if email else principal("user", f"slack:{self.team}:{uid}")
        except AccessDenied:
            log.warning("slack user %s has an unusable email/id; left out of every scope", uid)
            return None

    def is_reader(self, uid: str) -> bool:
        """An active human account (not deleted, not a bot or app)."""
        u = self.users.get(uid)
        return bool(u) and not u.get("deleted") and not u.get("is_bot") and not u.get("is_app_user") \
            and uid != "USLACKBOT"

    def is_guest(self, uid: str) -> bool:
        u = self.users.get(uid) or {}
        return bool(u.get("is_restricted") or u.get("is_ultra_restricted"))

    def is_external(self, uid: str) -> bool:
        """An account of another team (Slack Connect, shared channels): it may read the
        conversations it is a member of, never this workspace's "everyone" layer."""
        u = self.users.get(uid) or {}
        if u.get("is_stranger"):
            return True
        team = u.get("team_id") or (u.get("profile") or {}).get("team")
        return bool(self.home_team and team and team != self.home_team)

    def full_members(self) -> set[str]:
        out = set()
        for uid in self.users:
            if self.is_reader(uid) and not self.is_guest(uid) and not self.is_external(uid):
                p = self.user_principal(uid)
                if p:
                    out.add(p)
        return out

    def deactivated(self) -> set[str]:
        """Principals of deactivated (``deleted: true``) accounts that no active account of
        this export also holds: denied in every scope of the workspace."""
        gone = {p for uid, u in self.users.items() if u.get("deleted") and (p := self.user_principal(uid))}
        active = {p for uid in self.users if self.is_reader(uid) and (p := self.user_principal(uid))}
        return gone - active

    def display_name(self, uid: str, fallback: str | None = None) -> str:
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

    def channel_label(self, conv: Conversation) -> str:
        """How titles name a conversation. Not by its members: a title is copied into every
        chunk, and erasing a person (who is known by principal, not by display name) could not
        take their name back out of it; who is in a DM is what its access scope says."""
        if conv.kind == "im":
            return f"DM {conv.id}"
        if conv.kind == "mpim":
            return f"group DM {conv.id}"
        return f"#{conv.name}"


def _read_json(path: Path, max_bytes: int | None = None) -> Any:
    """A JSON file of the export: size-limited, strict UTF-8, depth-safe, surrogates scrubbed."""
    if max_bytes is None:
        return read_json_file(path, MAX_JSON_BYTES, "ingest.sources.slack.MAX_JSON_BYTES")
    return read_json_file(path, max_bytes, "ingest.sources.slack.MAX_DAY_JSON_BYTES")


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
    return datetime.fromtimestamp(t, tz=timezone.utc)


def _export_times(root: Path, display: str, raw_users: list[dict]) -> tuple[datetime | None, datetime | None]:
    """(newest ``updated`` of the export's users, when its metadata files were written).

    Neither message dates nor conversation times say when an export was made: a date-ranged
    export of an earlier period, made later, holds older messages; a channel deleted since
    takes its times with it. Users stay in ``users.json`` (deactivated ones flagged), and
    every profile change or deactivation moves their ``updated`` forward, so its maximum
    never goes back between exports of one workspace; the files' own times (zip entries, or
    the metadata files of an unpacked export) say when the export was written, and break
    ties."""
    from ingest.sources.base import newest

    files = []
    zip_path = Path(display)
    if zip_path.is_file() and zip_path.suffix.lower() == ".zip":
        import zipfile

        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                if "/" not in info.filename.strip("/"):
                    try:
                        files.append(datetime(*info.date_time, tzinfo=timezone.utc))
                    except ValueError:
                        pass
    else:
        for name in (*USER_FILES, *META_FILES):
            f = root / name
            if f.is_file():
                files.append(datetime.fromtimestamp(f.stat().st_mtime, tz=timezone.utc))
    return newest(_epoch(u.get("updated")) for u in raw_users), newest(files)


def load_export(root: Path, display: str | None = None, site: str | None = None) -> SlackExport:
    """Read the metadata files of an unpacked export. ``site`` names the team when the
    export does not (no ``team_info.json``, no ``team_id`` on its users)."""
    from ingest.sources.base import as_of_stamp

    root = Path(root)
    display = display or str(root)
    users_file = next((root / n for n in USER_FILES if (root / n).is_file()), None)
    if users_file is None:
        raise SourceError(f"{display}: Slack export without users.json or org_users.json",
                          hint="export again with the users list; without it no permission can be resolved")
    try:
        raw_users = _read_json(users_file)
        if not isinstance(raw_users, list) or not all(isinstance(u, dict) and isinstance(u.get("id"), str) for u in raw_users):
            raise ValueError("expected a list of user objects with an id")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{display}: {users_file.name} is unreadable: {exc}",
                          hint="re-export the workspace; nothing from it was ingested") from exc
    users = {u["id"]: u for u in raw_users}

    team, team_names, domain = None, [], None
    info_file = root / "team_info.json"
    if info_file.is_file():
        try:
            info = _read_json(info_file)
            t = info.get("team", info) if isinstance(info, dict) else {}
            team, domain = t.get("id"), t.get("domain")
            team_names = [str(x) for x in (t.get("name"), t.get("domain")) if x]
        except (ValueError, OSError, UnicodeDecodeError, AttributeError):
            log.warning("%s: team_info.json unreadable, ignored", display)
    teams = Counter(u.get("team_id") or (u.get("profile") or {}).get("team") for u in raw_users)
    teams.pop(None, None)
    home_team = str(team) if team else (str(teams.most_common(1)[0][0]) if teams else None)
    identity = home_team or site  # what the export states wins; ``site`` only names exports that do not
    if not identity:
        # Two exports that state no team would share every scope key and document id.
        raise SourceError(f"{display}: the Slack export states no team id (no team_info.json, no team_id on its users)",
                          hint="name the workspace: govrag ingest --site TEAM_ID, or a policy `sources` rule with site:")
    team = re.sub(r"[^A-Za-z0-9_.-]", "_", str(identity))[:64] or "_"

    export = SlackExport(root=root, display=display, team=team, team_names=team_names, domain=domain,
                         users=users, conversations={}, by_id={}, home_team=home_team)
    for fname, kind in META_FILES.items():
        f = root / fname
        if not f.is_file():
            continue
        try:
            rows = _read_json(f)
            if not isinstance(rows, list):
                raise ValueError("expected a list of conversations")
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            export.problems[fname] = str(exc)
            log.warning("%s: %s unreadable: %s", display, fname, exc)
            continue
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                export.problems[fname] = "a conversation without an id"
                continue
            cid = row["id"]
            row_kind = _row_kind(kind, row)
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
                continue
            conv = Conversation(id=cid, name=name, kind=row_kind, members=members,
                                folder=name if row_kind != "im" else cid)
            export.by_id[cid] = conv
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
    export.as_of = as_of_stamp(*_export_times(root, display, raw_users))
    return export


# -- scopes ------------------------------------------------------------------------------------
_NOBODY_DESC = "readable by nobody"


def _nobody(key: str, why: str) -> AccessScope:
    return AccessScope(key=key, layers=[[]], description=f"{_NOBODY_DESC}: {why}")


class ScopeBuilder:
    def __init__(self, export: SlackExport, policy: Policy) -> None:
        self.export = export
        names = [export.team, *export.team_names]
        self.workspace = frozenset(workspace_principals(policy, names, export.full_members()))
        self.deny = frozenset(export.deactivated())
        self._cache: dict[str, tuple[AccessScope, str | None]] = {}

    def scope(self, conv: Conversation) -> tuple[AccessScope, str | None]:
        """The conversation's scope, and a quarantine reason when it must not be ingested."""
        if conv.id in self._cache:
            return self._cache[conv.id]
        try:
            out = self._scope(conv)
        except AccessDenied as exc:  # e.g. a layer over the principal limit
            log.warning("slack %s: %s", conv.id, exc)
            out = (_nobody(bounded_id(f"slack:{self.export.team}:channel:{conv.id}"), str(exc)), "acl_too_large")
        self._cache[conv.id] = out
        return out

    def _scope(self, conv: Conversation) -> tuple[AccessScope, str | None]:
        # One key per conversation, whatever it is now (public, private, with guests or
        # not): visibility flips, guests leaving and deactivations change the scope's row,
        # never the key, so every earlier document of the conversation follows at once.
        ex, team = self.export, self.export.team
        key = bounded_id(f"slack:{team}:channel:{conv.id}")
        readers = [m for m in dict.fromkeys(conv.members) if ex.is_reader(m)]
        if conv.kind == "public":
            # Guests and accounts of other teams read the public channels they are in.
            outsiders = {p for m in readers if (ex.is_guest(m) or ex.is_external(m)) and (p := ex.user_principal(m))}
            layer = self.workspace | outsiders
            if not layer:
                return _nobody(key, "nobody holds the workspace"), None
            return AccessScope(key=key, layers=[layer], deny=self._deny_for(layer),
                               description=f"Slack {team} public #{conv.name}"), None
        members = {p for m in readers if (p := ex.user_principal(m))}
        if not members:
            return _nobody(key, "no active member"), "empty_acl"
        return AccessScope(key=key, layers=[members], deny=self._deny_for(members),
                           description=f"Slack {team} {conv.kind} {conv.id if conv.kind == 'mpim' else conv.name}"), None

    def _deny_for(self, layer: frozenset[str]) -> frozenset[str]:
        """The deny list a scope needs: only a layer holding a shared principal (the IdP
        group a workspace is mapped to) can admit a deactivated account; a layer of active
        members' own principals never holds one, so it stores no deny rows."""
        return self.deny if any(not p.startswith("user:") for p in layer) else frozenset()


# -- text --------------------------------------------------------------------------------------
_ANGLE = re.compile(r"<([^<>\n]{1,2000})>")
_FENCE = re.compile(r"```")
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])")
_CODE = re.compile(r"`([^`\n]+)`")


def render_text(text: str, export: SlackExport) -> str:
    """Slack mrkdwn → plain text: mentions by name, links as ``label (url)``, no markup."""
    if not isinstance(text, str) or not text:
        return ""

    def angle(m: re.Match[str]) -> str:
        inner = m.group(1)
        head, _, label = inner.partition("|")
        if head.startswith("@"):
            uid = head[1:]
            return "@" + (export.display_name(uid, label or None) if uid in export.users else (label or uid))
        if head.startswith("#"):
            cid = head[1:]
            conv = export.by_id.get(cid)
            return "#" + (label or (conv.name if conv else cid))
        if head.startswith("!"):
            cmd = head[1:]
            if cmd in ("channel", "here", "everyone", "group"):
                return "@" + cmd
            return label or ""
        if head.startswith("mailto:"):
            return label or head[7:]
        if label and label != head:
            return f"{label} ({head})"
        return head

    text = _ANGLE.sub(angle, text)
    text = _FENCE.sub("", text)
    text = _CODE.sub(r"\1", text)
    text = _BOLD.sub(r"\1", text)
    text = _ITALIC.sub(r"\1", text)
    text = _STRIKE.sub(r"\1", text)
    return html.unescape(text).strip()


def _ts(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _author(m: dict, export: SlackExport) -> str:
    uid = m.get("user")
    if uid is None and isinstance(m.get("comment"), dict):
        uid = m["comment"].get("user")
    if isinstance(uid, str) and uid in export.users and not m.get("bot_id"):
        return export.display_name(uid)
    prof = m.get("user_profile") or {}
    for name in (prof.get("display_name"), prof.get("real_name"), m.get("username"),
                 (m.get("bot_profile") or {}).get("name")):
        if name:
            return str(name) + (" (bot)" if m.get("bot_id") or m.get("subtype") == "bot_message" else "")
    if isinstance(uid, str):
        return export.display_name(uid)
    return f"bot {m.get('bot_id')}" if m.get("bot_id") else "unknown"


def _extras(m: dict, export: SlackExport) -> list[str]:
    out = []
    files = list(m.get("files") or [])
    if isinstance(m.get("file"), dict):
        files.append(m["file"])
    for f in files:
        if not isinstance(f, dict):
            continue
        title, name = f.get("title"), f.get("name")
        kind = f.get("pretty_type") or f.get("filetype")
        bits = [str(x) for x in (title, name if name != title else None) if x]
        out.append("[file: " + (" — ".join(bits) or str(f.get("id", "?"))) + (f", {kind}" if kind else "") + "]")
    for a in m.get("attachments") or []:
        if not isinstance(a, dict):
            continue
        parts = []
        for key in ("pretext", "author_name", "title", "text"):
            v = a.get(key)
            if v and render_text(str(v), export) not in parts:
                parts.append(render_text(str(v), export))
        if not parts and a.get("fallback"):
            parts.append(render_text(str(a["fallback"]), export))
        for fld in a.get("fields") or []:
            if isinstance(fld, dict) and (fld.get("title") or fld.get("value")):
                parts.append(f"{fld.get('title', '')}: {render_text(str(fld.get('value', '')), export)}")
        if parts:
            out.append("[attachment: " + " | ".join(p for p in parts if p) + "]")
    return out


def render_message(m: dict, export: SlackExport) -> str:
    when = _ts(m.get("ts"))
    stamp = when.strftime("%Y-%m-%d %H:%M UTC") if when else "?"
    body = render_text(m.get("text") or "", export)
    extras = _extras(m, export)
    if m.get("subtype") == "file_share" and extras and body.endswith(")") and "uploaded a file" in body:
        body = ""  # the [file: ...] line says it better
    text = " ".join(x for x in (body, *extras) if x)
    if not text:
        return ""
    edited = " (edited)" if m.get("edited") else ""
    reply = "↳ " if m.get("thread_ts") and m.get("thread_ts") != m.get("ts") else ""
    return f"{reply}[{stamp}] {_author(m, export)}: {text}{edited}"


# -- messages → documents ----------------------------------------------------------------------
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
        if not isinstance(m.get("ts"), (str, int, float)) or _ts(m["ts"]) is None:
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


@dataclass
class _Doc:
    conv: Conversation
    key: str  # thread_ts or day:<date>
    date: str
    messages: list[dict]
    is_thread: bool


def group_documents(conv: Conversation, days: list[tuple[str, list[dict]]]) -> list[_Doc]:
    threads: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    plain: dict[str, list[dict]] = defaultdict(list)
    for date, msgs in days:
        for m in msgs:
            tts = m.get("thread_ts")
            if tts:
                threads[str(tts)].append((date, m))
            else:
                plain[date].append(m)
    docs = []
    for tts, items in threads.items():
        msgs = [m for _, m in items]
        has_root = any(str(m.get("ts")) == tts for m in msgs)
        if not has_root:
            root = next((m["root"] for m in msgs if isinstance(m.get("root"), dict)), None)
            if root and root.get("ts"):
                msgs.append({**root, "type": "message"})
                has_root = True
        if len(msgs) == 1 and has_root and not (msgs[0].get("reply_count") or msgs[0].get("replies")):
            plain[items[0][0]].append(msgs[0])  # a root nobody answered: ordinary talk
            continue
        msgs.sort(key=lambda m: (float(m["ts"]), str(m["ts"])))
        root_date = next((d for d, m in items if str(m.get("ts")) == tts), items[0][0])
        docs.append(_Doc(conv, tts, root_date, msgs, True))
    for date, msgs in plain.items():
        msgs.sort(key=lambda m: (float(m["ts"]), str(m["ts"])))
        docs.append(_Doc(conv, f"day:{date}", date, msgs, False))
    docs.sort(key=lambda d: (d.date, d.key))
    return docs


def _elements(title: str, lines: list[str], authors: list[str | None]) -> list[Any]:
    """A Title and one NarrativeText per message; each message element carries its author's
    principal as ``govrag_author`` (erasure under the right to be forgotten drops it)."""
    from unstructured.documents.elements import NarrativeText, Title

    out: list[Any] = [Title(title)]
    for line, author in zip(lines, authors):
        el = NarrativeText(line)
        el.govrag_author = author  # type: ignore[attr-defined]
        out.append(el)
    return out


def _author_principal(m: dict, export: SlackExport) -> str | None:
    uid = m.get("user")
    if uid is None and isinstance(m.get("comment"), dict):
        uid = m["comment"].get("user")
    if not isinstance(uid, str) or m.get("bot_id") or m.get("subtype") == "bot_message":
        return None
    return export.user_principal(uid)


def _snippet(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a word boundary: a word cut in half can be half
    a secret that redaction no longer recognises (a thread's title quotes its root)."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    if not text[limit].isspace():  # the cut falls inside a word: leave that word out
        head = re.sub(r"\S+$", "", head)
    return head.rstrip()


class _Rendered:
    """A document's title and lines, rendered once on first need (fingerprint or parse)."""

    def __init__(self, doc: _Doc, export: SlackExport) -> None:
        self.doc, self.export = doc, export
        self._lines: list[str] | None = None
        self._authors: list[str | None] = []

    @property
    def title(self) -> str:
        d, label = self.doc, self.export.channel_label(self.doc.conv)
        if d.is_thread:
            root = next((m for m in d.messages if str(m.get("ts")) == d.key), d.messages[0])
            snippet = _snippet(render_text(root.get("text") or "", self.export), 80) or "thread"
            return f"{label} thread, {d.date}: {snippet}"
        return f"{label}, {d.date}"

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            rendered = [(line, m) for m in self.doc.messages if (line := render_message(m, self.export))]
            self._lines = [line for line, _ in rendered]
            self._authors = [_author_principal(m, self.export) for _, m in rendered]
        return self._lines

    def fingerprint(self) -> str:
        h = hashlib.sha256(PARSER_VERSION.encode())
        h.update(json.dumps([self.title, self.lines], ensure_ascii=False, separators=(",", ":")).encode())
        return h.hexdigest()

    def parse(self) -> Parsed:
        d = self.doc
        first = d.messages[0] if d.messages else {}
        times = [t for m in d.messages for t in (_ts(m.get("ts")), _ts((m.get("edited") or {}).get("ts"))) if t]
        lines = self.lines
        return Parsed(elements=_elements(self.title, lines, self._authors), title=self.title,
                      author=_author(first, self.export) if first else None,
                      owner=_author_principal(first, self.export) if first else None,
                      modified_at=max(times) if times else None)


def _raiser(exc: QuarantinedDocument):
    def fail() -> Any:
        raise exc
    return fail


def _uri(export: SlackExport, conv: Conversation, ts: str, thread_ts: str | None = None) -> str:
    if export.domain:
        u = f"https://{export.domain}.slack.com/archives/{conv.id}/p{ts.replace('.', '')}"
        return u + (f"?thread_ts={thread_ts}&cid={conv.id}" if thread_ts else "")
    u = f"slack://channel?team={export.team}&id={conv.id}&message={ts}"
    return u + (f"&thread_ts={thread_ts}" if thread_ts else "")


def iter_items(export: SlackExport, policy: Policy, builder: ScopeBuilder | None = None) -> Iterator[SourceItem]:
    builder = builder or ScopeBuilder(export, policy)
    root, team = export.root, export.team
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        day_files = sorted(f for f in folder.iterdir()
                           if DAY_FILE.match(f.name) and f.is_file() and not f.is_symlink())
        if not day_files:
            continue
        conv = export.conversations.get(folder.name)
        if conv is None:
            claimed = export.ambiguous.get(folder.name)
            if claimed:
                why = f"claimed by conversations {', '.join(claimed)}: which one's access applies is unknown"
                reason, hint = "ambiguous_conversation", ("export again after renaming one of the conversations; "
                                                          "messages that could belong to either are never ingested")
            else:
                why = (f"{', '.join(export.problems)} unreadable" if export.problems
                       else "not listed in channels.json, groups.json, dms.json or mpims.json")
                reason, hint = "unknown_conversation", ("export the workspace with its conversation lists; "
                                                        "unknown conversations are never ingested")
            for f in day_files:
                rel = f"{folder.name}/{f.name}"
                exc = QuarantinedDocument(
                    f"{export.display}: conversation folder {folder.name!r} has unknown permissions ({why})",
                    reason=reason, path=str(f), hint=hint)
                yield SourceItem(source="slack", path=f, rel_path=rel,
                                 document_id=f"slack:{team}:folder:{folder.name}:day:{f.stem}",
                                 fingerprint=_raiser(exc), parse=_raiser(exc),
                                 facts={"source": "slack", "workspace": team, "channel": folder.name, "path": rel},
                                 scope=_nobody(bounded_id(f"slack:{team}:unknown:{folder.name}"), "unknown conversation"),
                                 origin=f"slack:{team}", as_of=export.as_of)
            continue
        scope, refuse = builder.scope(conv)
        facts = {"source": "slack", "workspace": team, "channel": conv.name}
        # Paths name a group DM by id: Slack names its folder after the members' handles.
        place = conv.id if conv.kind == "mpim" else folder.name
        days: list[tuple[str, list[dict]]] = []
        for f in day_files:
            date = DAY_FILE.match(f.name).group(1)  # type: ignore[union-attr]
            try:
                rows = _read_json(f, MAX_DAY_JSON_BYTES)
                if isinstance(rows, dict):
                    rows = [rows]
                if not isinstance(rows, list):
                    raise ValueError("expected a list of messages")
            except JsonTooLarge as exc:
                rel = f"{place}/{f.name}"
                q = QuarantinedDocument(
                    f"{export.display}: {rel} is too large to ingest: {exc}",
                    reason="too_large", path=str(f),
                    hint="split the day file, or raise ingest.sources.slack.MAX_DAY_JSON_BYTES if it is genuine; "
                         "this day's messages were skipped")
                yield SourceItem(source="slack", path=f, rel_path=rel,
                                 document_id=f"slack:{team}:{conv.id}:file:{date}", fingerprint=_raiser(q),
                                 parse=_raiser(q), facts={**facts, "path": rel}, scope=scope,
                                 origin=f"slack:{team}", as_of=export.as_of)
                continue
            except (ValueError, OSError, UnicodeDecodeError) as exc:
                rel = f"{place}/{f.name}"
                q = QuarantinedDocument(f"{export.display}: {rel} is not valid Slack JSON: {exc}",
                                        reason="malformed_json", path=str(f),
                                        hint="re-export the workspace; this day's messages were skipped")
                yield SourceItem(source="slack", path=f, rel_path=rel,
                                 document_id=f"slack:{team}:{conv.id}:file:{date}", fingerprint=_raiser(q),
                                 parse=_raiser(q), facts={**facts, "path": rel}, scope=scope,
                                 origin=f"slack:{team}", as_of=export.as_of)
                continue
            days.append((date, clean_messages(rows)))
        for doc in group_documents(conv, days):
            rendered = _Rendered(doc, export)
            if doc.is_thread:
                rel = f"{place}/thread-{doc.key}"
                doc_id = f"slack:{team}:{conv.id}:{doc.key}"
                uri = _uri(export, conv, doc.key, doc.key)
            else:
                rel = f"{place}/{doc.date}.json"
                doc_id = f"slack:{team}:{conv.id}:{doc.key}"
                uri = _uri(export, conv, str(doc.messages[0]["ts"]))
            fingerprint, parse = rendered.fingerprint, rendered.parse
            if refuse:
                why = ("has no active member who could read it" if refuse == "empty_acl"
                       else "has more members than one scope layer may hold; map the workspace to a group "
                            "in the policy's workspaces key")
                q = QuarantinedDocument(f"{export.display}: {export.channel_label(conv)} {why}",
                                        reason=refuse, path=str(folder))
                fingerprint = parse = _raiser(q)
            yield SourceItem(source="slack", path=folder, rel_path=rel, document_id=doc_id,
                             fingerprint=fingerprint, parse=parse, facts={**facts, "path": rel},
                             scope=scope, uri=uri, title=None, modified_at=_ts(doc.messages[-1]["ts"]),
                             origin=f"slack:{team}", as_of=export.as_of)


@dataclass
class SharedPublicKey:
    """Before per-conversation keys, every public channel without guests shared
    ``slack:<team>:workspace``; documents still on it move to their conversation's key."""

    team: str
    conversations: set[str]
    keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keys = [f"slack:{self.team}:workspace"]

    def key_for(self, document_id: str) -> str | None:
        head = f"slack:{self.team}:"
        cid = document_id[len(head):].split(":", 1)[0] if document_id.startswith(head) else None
        return bounded_id(f"slack:{self.team}:channel:{cid}") if cid in self.conversations else None


@dataclass
class WorkspaceDeny:
    """Conversations this export does not list (deleted since, or left out) keep their
    members, but deactivated accounts are denied in them too: a deactivated user loses
    everything of the workspace."""

    prefix: str
    stated: set[str]
    deny: frozenset[str]

    def wants(self, key: str) -> bool:
        return key not in self.stated and POLICY_SEP not in key

    def rebuild(self, stored: AccessScope) -> AccessScope | None:
        deny = self.deny if any(not p.startswith("user:") for layer in stored.layers for p in layer) else frozenset()
        if stored.deny == deny:
            return None
        return AccessScope(key=stored.key, layers=stored.layers, deny=deny, description=stored.description)


def permission_state(export: SlackExport, builder: ScopeBuilder) -> PermissionState:
    """The scope of every conversation the metadata files list, with messages in this export
    or not: applied to all of its documents, including those of earlier exports."""
    scopes = [builder.scope(conv)[0] for conv in export.by_id.values()]
    return PermissionState(identity=f"slack:{export.team}", as_of=export.as_of, scopes=scopes,
                           rebases=[WorkspaceDeny(f"slack:{export.team}:", {s.key for s in scopes}, builder.deny)],
                           origins=[f"slack:{export.team}"],
                           legacy=SharedPublicKey(export.team, set(export.by_id)))


def open_export(path: Path, site: str | None = None) -> SlackExport:
    path = Path(path)
    if path.is_file():
        root = extract_zip(path)
        try:
            return load_export(root, display=str(path), site=site)
        except BaseException:
            remove_extraction(root)
            raise
    return load_export(path, site=site)


def open_source(path: Path, policy: Policy, *, site: str | None = None) -> SourceExport:
    """A Slack export (zip or folder): its documents and the permission state its metadata
    states. ``policy`` decides who holds the workspace layer (key ``workspaces``); ``site``
    names the team when the export does not."""
    export = open_export(Path(path), site=site)
    scratch = [export.root] if export.root != Path(path) else []
    try:
        builder = ScopeBuilder(export, policy)
        return SourceExport(path=Path(path), items=list(iter_items(export, policy, builder)),
                            state=permission_state(export, builder), scratch=scratch)
    except BaseException:
        SourceExport(path=Path(path), items=[], scratch=scratch).close()
        raise


def discover(path: Path, policy: Policy | None = None, *, site: str | None = None) -> Iterator[SourceItem]:
    """Documents of a Slack export (zip or folder); by default with the process policy."""
    from ingest.sources import process_policy

    yield from open_source(path, policy if policy is not None else process_policy(), site=site).items
