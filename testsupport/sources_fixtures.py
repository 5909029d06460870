"""Code that writes Slack exports and Confluence spaces for tests (no hand-edited blobs).

``access_world`` builds one Slack workspace and Confluence spaces (all three shapes) with
public/private channels, DMs, guests, deleted users, nested page restrictions and groups,
each document holding a unique phrase, plus the ground truth of who may read it.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Recent (midnight UTC 30 days ago + 1h), so the policy's retention never expires fixtures.
BASE_TS = (int(time.time()) // 86400 - 30) * 86400 + 3600


# ---------------------------------------------------------------------------------------------
# Slack
# ---------------------------------------------------------------------------------------------
@dataclass
class SUser:
    id: str
    name: str
    email: str | None = None
    guest: bool = False  # is_restricted (multi-channel guest)
    ultra: bool = False  # is_ultra_restricted (single-channel guest)
    deleted: bool = False
    bot: bool = False
    team: str = "T0ACME"

    def as_json(self) -> dict:
        prof: dict[str, Any] = {"real_name": self.name.title(), "display_name": self.name, "team": self.team}
        if self.email:
            prof["email"] = self.email
        return {
            "id": self.id,
            "team_id": self.team,
            "name": self.name,
            "deleted": self.deleted,
            "real_name": self.name.title(),
            "profile": prof,
            "is_admin": False,
            "is_owner": False,
            "is_restricted": self.guest or self.ultra,
            "is_ultra_restricted": self.ultra,
            "is_bot": self.bot,
            "is_app_user": False,
        }


@dataclass
class SConv:
    id: str
    name: str
    kind: str  # public | private | im | mpim
    members: list[str]
    days: dict[str, list[dict]] = field(default_factory=dict)  # date -> messages

    def as_json(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "created": BASE_TS, "members": self.members}
        if self.kind != "im":
            d.update(
                name=self.name,
                creator=self.members[0] if self.members else "",
                is_archived=False,
                topic={"value": "", "creator": "", "last_set": 0},
                purpose={"value": f"{self.name} purpose", "creator": "", "last_set": 0},
            )
        if self.kind == "mpim":
            d["is_mpim"] = True
        return d


def ts_of(offset: float) -> str:
    return f"{BASE_TS + offset:.6f}"


def date_of(ts: str) -> str:
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%d")


def msg(user: str, text: str, offset: float, **extra: Any) -> dict:
    return {"type": "message", "user": user, "text": text, "ts": ts_of(offset), **extra}


def add_messages(conv: SConv, messages: Iterable[dict]) -> None:
    for m in messages:
        conv.days.setdefault(date_of(m["ts"]), []).append(m)


def write_slack_export(
    dest: Path,
    users: list[SUser],
    convs: list[SConv],
    *,
    as_zip: bool = False,
    extra_files: dict[str, Any] | None = None,
    team_info: dict | None = None,
) -> Path:
    """Write an export folder (or ``dest.zip``) the way Slack lays one out."""
    files: dict[str, bytes] = {}

    def put(name: str, obj: Any) -> None:
        files[name] = obj if isinstance(obj, bytes) else json.dumps(obj, indent=1, ensure_ascii=False).encode()

    put("users.json", [u.as_json() for u in users])
    kinds = {"public": "channels.json", "private": "groups.json", "im": "dms.json", "mpim": "mpims.json"}
    for kind, fname in kinds.items():
        put(fname, [c.as_json() for c in convs if c.kind == kind])
    for c in convs:
        folder = c.id if c.kind == "im" else c.name
        for date, messages in c.days.items():
            put(f"{folder}/{date}.json", messages)
    if team_info:
        put("team_info.json", {"ok": True, "team": team_info})
    for name, obj in (extra_files or {}).items():
        put(name, obj)
    if as_zip:
        path = dest.with_suffix(".zip")
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in sorted(files.items()):
                zf.writestr(name, data)
        return path
    for name, data in files.items():
        p = dest / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return dest


def small_slack_export(dest: Path, *, as_zip: bool = False) -> Path:
    """A compact export exercising threads, broadcasts, edits, noise, bots, files, mentions."""
    users = [
        SUser("U1", "alice", "Alice@Corp.example"),
        SUser("U2", "bob", "bob@corp.example"),
        SUser("U3", "carol", "carol@partner.example", guest=True),
        SUser("UB", "deploybot", bot=True),
    ]
    general = SConv("C1", "general", "public", ["U1", "U2", "U3"])
    add_messages(
        general,
        [
            msg("U1", "U1", 0, subtype="channel_join") | {"text": "<@U1> has joined the channel"},
            msg(
                "U1",
                "Kickoff for *project falcon* is <!here> on Monday, see <https://wiki.example/falcon|the plan>",
                10,
            ),
            msg("U2", "Thread root: which database should falcon use?", 20, thread_ts=ts_of(20), reply_count=2),
            msg("U1", "Postgres, as discussed with <@U2>", 30, thread_ts=ts_of(20), parent_user_id="U2"),
            msg(
                "U2",
                "Agreed, broadcasting to <#C1|general>",
                40,
                thread_ts=ts_of(20),
                subtype="thread_broadcast",
                root={"text": "Thread root: which database should falcon use?", "user": "U2", "ts": ts_of(20)},
            ),
            msg("U2", "this text was edited to the final wording", 50, edited={"user": "U2", "ts": ts_of(55)}),
            msg("U1", "secret draft that was then deleted", 60),
            {"type": "message", "subtype": "message_deleted", "deleted_ts": ts_of(60), "ts": ts_of(61), "hidden": True},
            {
                "type": "message",
                "subtype": "bot_message",
                "bot_id": "B1",
                "username": "deploybot",
                "text": "",
                "ts": ts_of(70),
                "attachments": [
                    {"fallback": "Deploy 42 succeeded", "title": "Deploy 42", "text": "build green on main"}
                ],
            },
            msg(
                "U1",
                "<@U1> uploaded a file: <https://files.example/F1|Falcon budget>",
                80,
                subtype="file_share",
                file={
                    "id": "F1",
                    "name": "falcon-budget.xlsx",
                    "title": "Falcon budget",
                    "pretty_type": "Excel",
                    "url_private": "https://files.example/F1",
                },
            ),
            msg("U2", "next day chatter about ~old~ `code` and _style_ &amp; &lt;tags&gt;", 86400 + 5),
        ],
    )
    secret = SConv("G1", "falcon-core", "private", ["U1", "U3"])
    add_messages(secret, [msg("U3", "guest carol shares the private roadmap", 100)])
    dm = SConv("D1", "D1", "im", ["U1", "U2"])
    add_messages(dm, [msg("U1", "direct message between alice and bob", 200)])
    return write_slack_export(dest, users, [general, secret, dm], as_zip=as_zip)


# ---------------------------------------------------------------------------------------------
# The access world: ground truth for the access-matrix test
# ---------------------------------------------------------------------------------------------
@dataclass
class Person:
    key: str
    id: str
    email: str | None = None
    groups: tuple[str, ...] = ()


@dataclass
class World:
    paths: list[Path]
    people: dict[str, Person]
    # phrase -> (document id, set of person keys that may read it)
    truth: dict[str, tuple[str, frozenset[str]]]
    quarantined: set[str] = field(default_factory=set)  # document ids expected quarantined


# Unique, semantically distinct phrases (one per document).
PHRASES = [
    "purple giraffes negotiate lunar tariffs",
    "submarine bakery ferments volcanic sourdough",
    "quantum accordion tuning for glaciers",
    "medieval robots harvesting saffron fields",
    "origami satellites folding in orbit",
    "jazz octopus conducts a tidal orchestra",
    "desert lighthouse guides camel caravans",
    "fossilized keyboard found in amber mine",
    "haunted spreadsheet recalculates midnight payroll",
    "bamboo skyscraper sways during monsoon",
    "telepathic houseplants demand better lighting",
    "arctic vineyard produces frozen riesling",
    "clockwork hummingbird repairs pocket watches",
    "underground river powers ancient mill",
    "velvet thunderstorm over copper canyon",
    "lunar greenhouse grows blue tomatoes",
    "cathedral of ice hosts chess tournament",
    "nomadic library travels by hot air balloon",
    "silent trumpet competition in the alps",
    "marmalade pipeline from seville to oslo",
    "volcano observatory measures sulfur sneezes",
    "pirate accountants audit buried treasure",
    "sleepwalking llamas cross the andes",
    "emerald locomotive climbs spiral railway",
    "ghostly violinist tunes the northern lights",
    "porcelain drone swarm paints murals",
    "kelp forest parliament votes on currents",
    "neon samurai teaches pottery classes",
]


def slack_world(
    dest: Path, phrases: list[str], *, team: str = "T0ACME"
) -> tuple[Path, dict[str, tuple[str, frozenset[str]]], set[str]]:
    """Slack part of the world. Returns (export zip, truth, quarantined ids)."""
    users = [
        SUser("U1", "alice", "alice@corp.example"),
        SUser("U2", "bob", "Bob@Corp.example"),
        SUser("U3", "carol", "carol@partner.example", guest=True),
        SUser("U4", "dave", "dave@partner.example", ultra=True),
        SUser("U5", "erin", "erin@corp.example", deleted=True),
        SUser("U6", "frank", None),  # no email → user:slack:<team>:U6
        SUser("U8", "gina", "gina@corp.example"),
        SUser("UB", "helperbot", "bot@corp.example", bot=True),
    ]
    for u in users:
        u.team = team
    full = {"alice", "bob", "frank", "gina"}
    general = SConv("C1", "general", "public", ["U1", "U2", "U3", "U6", "UB"])  # guest carol inside
    announce = SConv("C2", "announcements", "public", ["U1", "U2", "U6", "U8"])  # no guest
    random_ = SConv("C3", "random", "public", ["U2", "U4"])  # ultra guest dave
    secret = SConv("G1", "proj-secret", "private", ["U1", "U3", "U5"])  # deleted erin
    ghost = SConv("G2", "ghost-room", "private", ["U5"])  # only a deleted user
    dm_ab = SConv("D1", "D1", "im", ["U1", "U2"])
    dm_ae = SConv("D2", "D2", "im", ["U1", "U5"])
    dm_fg = SConv("D3", "D3", "im", ["U6", "U8"])
    mpim = SConv("M1", "mpdm-alice--bob--frank-1", "mpim", ["U1", "U2", "U6"])
    ph = iter(phrases)
    truth: dict[str, tuple[str, frozenset[str]]] = {}
    quarantined: set[str] = set()

    def day_doc(conv: SConv, who: str, offset: float, readers: set[str] | None) -> None:
        phrase = next(ph)
        add_messages(conv, [msg(who, f"Note: {phrase}.", offset)])
        doc_id = f"slack:{team}:{conv.id}:day:{date_of(ts_of(offset))}"
        if readers is None:
            quarantined.add(doc_id)
        else:
            truth[phrase] = (doc_id, frozenset(readers))

    def thread_doc(conv: SConv, who: str, replier: str, offset: float, readers: set[str]) -> None:
        phrase = next(ph)
        root = ts_of(offset)
        add_messages(
            conv,
            [
                msg(who, "Question for the thread, see replies", offset, thread_ts=root, reply_count=2),
                msg(replier, f"Answer: {phrase}.", offset + 5, thread_ts=root, parent_user_id=who),
                msg(replier, "Also posting to channel", offset + 9, thread_ts=root, subtype="thread_broadcast"),
            ],
        )
        truth[phrase] = (f"slack:{team}:{conv.id}:{root}", frozenset(readers))

    day_doc(general, "U1", 100, full | {"carol"})
    thread_doc(general, "U2", "U3", 86400 * 2, full | {"carol"})
    day_doc(announce, "U2", 200, full)
    day_doc(random_, "U4", 300, full | {"dave"})
    day_doc(secret, "U1", 400, {"alice", "carol"})
    thread_doc(secret, "U3", "U1", 86400 * 3, {"alice", "carol"})
    day_doc(ghost, "U5", 500, None)
    day_doc(dm_ab, "U1", 600, {"alice", "bob"})
    day_doc(dm_ae, "U5", 700, {"alice"})
    day_doc(dm_fg, "U6", 800, {"frank", "gina"})
    day_doc(mpim, "U2", 900, {"alice", "bob", "frank"})
    # A folder nobody describes: fail closed.
    orphan = next(ph)
    extra = {
        "mystery-channel/" + date_of(ts_of(1000)) + ".json": [msg("U1", f"Note: {orphan}.", 1000)],
        # A malformed day file: quarantined, the rest of #random goes on.
        "random/" + date_of(ts_of(86400 * 5)) + ".json": b"[{ not json",
    }
    quarantined.add(f"slack:{team}:folder:mystery-channel:day:{date_of(ts_of(1000))}")
    quarantined.add(f"slack:{team}:C3:file:{date_of(ts_of(86400 * 5))}")
    convs = [general, announce, random_, secret, ghost, dm_ab, dm_ae, dm_fg, mpim]
    path = write_slack_export(dest / "acme-slack", users, convs, as_zip=True, extra_files=extra)
    return path, truth, quarantined


SLACK_PEOPLE = {
    "alice": Person("alice", "alice@corp.example", "alice@corp.example"),
    "bob": Person("bob", "bob@corp.example", "bob@corp.example"),
    "carol": Person("carol", "carol@partner.example", "carol@partner.example"),
    "dave": Person("dave", "dave@partner.example", "dave@partner.example"),
    "erin": Person("erin", "erin@corp.example", "erin@corp.example"),
    "frank": Person("frank", "slack:T0ACME:U6"),
    "gina": Person("gina", "gina@corp.example", "gina@corp.example"),
    "mallory": Person("mallory", "mallory@corp.example", "mallory@corp.example", ("all-staff",)),
}


# ---------------------------------------------------------------------------------------------
# Confluence
# ---------------------------------------------------------------------------------------------
@dataclass
class CUser:
    key: str
    username: str
    email: str | None = None


@dataclass
class CPage:
    id: str
    title: str
    body: str  # storage format
    parent: str | None = None
    read_users: list[str] = field(default_factory=list)  # CUser keys
    read_groups: list[str] = field(default_factory=list)
    kind: str = "page"  # page | blogpost
    version: int = 1
    pdf: tuple[str, str] | None = None  # (file name, text) of a PDF attachment


@dataclass
class CSpace:
    key: str
    name: str
    view_users: list[str] = field(default_factory=list)
    view_groups: list[str] = field(default_factory=list)
    anonymous: bool = False
    pages: list[CPage] = field(default_factory=list)


def storage_body(phrase: str, heading: str = "Overview") -> str:
    """A storage-format body with a heading, a list, a table, a code macro and a panel."""
    return (
        f"<h2>{heading}</h2><p>Note: {phrase}.</p>"
        "<ul><li>first point</li><li>second point</li></ul>"
        "<table><tbody><tr><th>Owner</th><th>Status</th></tr><tr><td>team</td><td>draft</td></tr></tbody></table>"
        '<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash</ac:parameter>'
        "<ac:plain-text-body><![CDATA[make deploy && echo <done>]]></ac:plain-text-body></ac:structured-macro>"
        '<ac:structured-macro ac:name="info"><ac:rich-text-body><p>Remember the checklist.</p>'
        "</ac:rich-text-body></ac:structured-macro>"
        '<p>See <ac:link><ri:page ri:content-title="Home"/></ac:link> for more.</p>'
    )


def _write_pdf_attachment(path: Path, name: str, text: str) -> None:
    from govrag.sample_corpus import SampleDoc, _write_pdf

    _write_pdf(path, SampleDoc(name, name.rsplit(".", 1)[0], (("Attachment", text),)))


def _rest_user(u: CUser) -> dict:
    d = {"type": "known", "accountId": f"acc-{u.key}", "username": u.username, "displayName": u.username.title()}
    if u.email:
        d["email"] = u.email
    return d


def write_confluence_rest(
    dest: Path,
    space: CSpace,
    users: list[CUser],
    *,
    base: str = "https://acme.atlassian.net/wiki",
    without_restrictions: Iterable[str] = (),
    missing: Iterable[str] = (),
) -> Path:
    """A REST v1 dump: space.json, pages/<id>.json, users.json, attachments/<id>/*.pdf."""
    by_key = {u.key: u for u in users}
    dest.mkdir(parents=True, exist_ok=True)
    subjects = {
        "user": {"results": [_rest_user(by_key[k]) for k in space.view_users], "size": len(space.view_users)},
        "group": {"results": [{"type": "group", "name": g} for g in space.view_groups], "size": len(space.view_groups)},
    }
    perms = [
        {
            "id": 1,
            "operation": {"operation": "read", "targetType": "space"},
            "subjects": subjects,
            "anonymousAccess": False,
            "unlicensedAccess": False,
        },
        {
            "id": 2,
            "operation": {"operation": "create", "targetType": "page"},
            "subjects": subjects,
            "anonymousAccess": False,
            "unlicensedAccess": False,
        },
    ]
    if space.anonymous:
        perms.append(
            {
                "id": 3,
                "operation": {"operation": "read", "targetType": "space"},
                "anonymousAccess": True,
                "unlicensedAccess": False,
            }
        )
    (dest / "space.json").write_text(
        json.dumps(
            {
                "id": 98304,
                "key": space.key,
                "name": space.name,
                "type": "global",
                "permissions": perms,
                "_links": {"base": base},
            },
            indent=1,
        )
    )
    (dest / "users.json").write_text(json.dumps([_rest_user(u) for u in users], indent=1))
    pages = {p.id: p for p in space.pages}
    no_restr, skip = set(without_restrictions), set(missing)
    for p in space.pages:
        if p.id in skip:
            continue
        chain, cur = [], p.parent
        while cur:
            chain.append({"id": cur, "type": "page", "title": pages[cur].title if cur in pages else cur})
            cur = pages[cur].parent if cur in pages else None
        doc = {
            "id": p.id,
            "type": p.kind,
            "status": "current",
            "title": p.title,
            "space": {"key": space.key, "name": space.name},
            "version": {
                "number": p.version,
                "when": "2026-10-01T12:00:00.000Z",
                "by": {**_rest_user(users[0]), "displayName": "Alice"},
            },
            "ancestors": list(reversed(chain)),
            "body": {"storage": {"value": p.body, "representation": "storage"}},
            "_links": {"webui": f"/spaces/{space.key}/pages/{p.id}", "base": base},
        }
        if p.id not in no_restr:
            doc["restrictions"] = {
                "read": {
                    "operation": "read",
                    "restrictions": {
                        "user": {"results": [_rest_user(by_key[k]) for k in p.read_users], "size": len(p.read_users)},
                        "group": {
                            "results": [{"type": "group", "name": g} for g in p.read_groups],
                            "size": len(p.read_groups),
                        },
                    },
                },
                "update": {"operation": "update", "restrictions": {"user": {"results": []}, "group": {"results": []}}},
            }
        (dest / "pages").mkdir(exist_ok=True)
        (dest / "pages" / f"{p.id}.json").write_text(json.dumps(doc, indent=1))
        if p.pdf:
            _write_pdf_attachment(dest / "attachments" / p.id / p.pdf[0], p.pdf[0], p.pdf[1])
    return dest


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def write_confluence_xml(
    dest: Path,
    spaces: list[CSpace],
    users: list[CUser],
    *,
    as_zip: bool = False,
    history: Iterable[tuple[str, str, str]] = (),
    drafts: Iterable[tuple[str, str, str]] = (),
) -> Path:
    """An XML space export. ``history``/``drafts``: (id, of page id, body) of old versions and
    drafts that must never be ingested."""
    objs: list[str] = []
    pkg = "com.atlassian.confluence"

    def obj(cls: str, package: str, oid: str, props: str, id_name: str = "id") -> None:
        objs.append(f'<object class="{cls}" package="{package}"><id name="{id_name}">{oid}</id>{props}</object>')

    def ref(name: str, cls: str, package: str, rid: str, id_name: str = "id") -> str:
        return f'<property name="{name}" class="{cls}" package="{package}"><id name="{id_name}">{rid}</id></property>'

    def user_ref(name: str, key: str) -> str:
        return ref(name, "ConfluenceUserImpl", f"{pkg}.user", f"key-{key}", "key")

    for u in users:
        email = f'<property name="email">{_cdata(u.email)}</property>' if u.email else ""
        obj(
            "ConfluenceUserImpl",
            f"{pkg}.user",
            f"key-{u.key}",
            f'<property name="name">{_cdata(u.username)}</property>'
            f'<property name="lowerName">{_cdata(u.username.lower())}</property>{email}',
            "key",
        )
    n = 900000
    space_ids = {}
    for s in spaces:
        n += 1
        space_ids[s.key] = str(n)
        obj(
            "Space",
            f"{pkg}.spaces",
            str(n),
            f'<property name="name">{_cdata(s.name)}</property>'
            f'<property name="key">{_cdata(s.key)}</property>'
            f'<property name="lowerKey">{_cdata(s.key.lower())}</property>',
        )
        perms = [("group", g) for g in s.view_groups] + [("user", k) for k in s.view_users]
        if s.anonymous:
            perms.append(("anon", ""))
        perms += [("group", g) for g in s.view_groups]  # EDITSPACE etc. below must be ignored
        for i, (kind, who) in enumerate(perms):
            n += 1
            ptype = "VIEWSPACE" if i < len(perms) - len(s.view_groups) else "EDITSPACE"
            subject = (
                f'<property name="group">{_cdata(who)}</property>'
                if kind == "group"
                else user_ref("userSubject", who)
                if kind == "user"
                else ""
            )
            obj(
                "SpacePermission",
                f"{pkg}.security",
                str(n),
                ref("space", "Space", f"{pkg}.spaces", space_ids[s.key])
                + f'<property name="type">{_cdata(ptype)}</property>{subject}',
            )
    root = dest.with_suffix("") if as_zip else dest
    root.mkdir(parents=True, exist_ok=True)

    def content(
        cls: str,
        pid: str,
        title: str,
        space_key: str,
        body: str,
        *,
        parent: str | None = None,
        status: str = "current",
        original: str | None = None,
        version: int = 1,
    ) -> None:
        nonlocal n
        n += 1
        body_id = str(n)
        props = (
            f'<property name="title">{_cdata(title)}</property><property name="version">{version}</property>'
            f'<property name="lastModificationDate">2026-10-01 12:00:00.000</property>'
            + user_ref("lastModifier", users[0].key)
            + f'<property name="contentStatus">{_cdata(status)}</property>'
            + ref("space", "Space", f"{pkg}.spaces", space_ids[space_key])
            + (ref("parent", "Page", f"{pkg}.pages", parent) if parent else "")
            + (ref("originalVersion", cls, f"{pkg}.pages", original) if original else "")
            + f'<collection name="bodyContents" class="java.util.Collection"><element class="BodyContent" '
            f'package="{pkg}.core"><id name="id">{body_id}</id></element></collection>'
        )
        obj(cls, f"{pkg}.pages", pid, props)
        obj(
            "BodyContent",
            f"{pkg}.core",
            body_id,
            f'<property name="body">{_cdata(body)}</property>'
            + ref("content", cls, f"{pkg}.pages", pid)
            + '<property name="bodyType">2</property>',
        )

    for s in spaces:
        for p in s.pages:
            content(
                "BlogPost" if p.kind == "blogpost" else "Page",
                p.id,
                p.title,
                s.key,
                p.body,
                parent=p.parent,
                version=p.version,
            )
            if p.read_users or p.read_groups:
                n += 1
                set_id = str(n)
                obj(
                    "ContentPermissionSet",
                    f"{pkg}.security",
                    set_id,
                    '<property name="type"><![CDATA[View]]></property>'
                    + ref("owningContent", "Page", f"{pkg}.pages", p.id),
                )
                for who in p.read_users:
                    n += 1
                    obj(
                        "ContentPermission",
                        f"{pkg}.security",
                        str(n),
                        '<property name="type"><![CDATA[View]]></property>'
                        + user_ref("userSubject", who)
                        + ref("owningSet", "ContentPermissionSet", f"{pkg}.security", set_id),
                    )
                for g in p.read_groups:
                    n += 1
                    obj(
                        "ContentPermission",
                        f"{pkg}.security",
                        str(n),
                        '<property name="type"><![CDATA[View]]></property>'
                        f'<property name="groupName">{_cdata(g)}</property>'
                        + ref("owningSet", "ContentPermissionSet", f"{pkg}.security", set_id),
                    )
            # An Edit restriction never narrows viewing.
            n += 1
            obj(
                "ContentPermissionSet",
                f"{pkg}.security",
                str(n),
                '<property name="type"><![CDATA[Edit]]></property>'
                + ref("owningContent", "Page", f"{pkg}.pages", p.id),
            )
            if p.pdf:
                n += 1
                att_id = str(n)
                obj(
                    "Attachment",
                    f"{pkg}.pages",
                    att_id,
                    f'<property name="title">{_cdata(p.pdf[0])}</property>'
                    '<property name="version">1</property><property name="contentStatus"><![CDATA[current]]></property>'
                    + ref("containerContent", "Page", f"{pkg}.pages", p.id),
                )
                _write_pdf_attachment(root / "attachments" / p.id / att_id / "1", p.pdf[0], p.pdf[1])
    space_of = {p.id: s.key for s in spaces for p in s.pages}
    for hid, of, body in history:
        content("Page", hid, "old version", space_of[of], body, original=of)
    for did, of, body in drafts:
        content("Page", did, "draft", space_of[of], body, status="draft")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<hibernate-generic datetime="2026-10-01 12:00:00">\n'
        + "\n".join(objs)
        + "\n</hibernate-generic>\n"
    )
    (root / "entities.xml").write_text(xml, encoding="utf-8")
    (root / "exportDescriptor.properties").write_text(
        f"exportType=space\nspaceKey={spaces[0].key}\nbaseUrl=https\\://acme.atlassian.net/wiki\n"
    )
    if not as_zip:
        return root
    path = dest.with_suffix(".zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(root).as_posix())
    import shutil

    shutil.rmtree(root)
    return path


def write_confluence_html(dest: Path, key: str, name: str, pages: list[CPage]) -> Path:
    """An HTML space export the way Confluence writes it (index.html + Title_ID.html)."""
    import html as h

    dest.mkdir(parents=True, exist_ok=True)
    by_id = {p.id: p for p in pages}

    def fname(p: CPage) -> str:
        return f"{p.title.replace(' ', '-')}_{p.id}.html"

    def tree(parent: str | None) -> str:
        kids = [p for p in pages if p.parent == parent]
        if not kids:
            return ""
        return (
            "<ul>"
            + "".join(f'<li><a href="{fname(p)}">{h.escape(p.title)}</a>{tree(p.id)}</li>' for p in kids)
            + "</ul>"
        )

    (dest / "index.html").write_text(
        f'<html><head><title>{h.escape(name)}</title></head><body><div id="main-content" class="pageSection">'
        '<table class="confluenceTable">'
        f'<tr><th class="confluenceTh">Key</th><td class="confluenceTd">{h.escape(key)}</td></tr>'
        f'<tr><th class="confluenceTh">Name</th><td class="confluenceTd">{h.escape(name)}</td></tr></table></div>'
        f'<div class="pageSection"><h2 class="pageSectionTitle">Available Pages:</h2>{tree(None)}</div>'
        "<p>Document generated by Confluence on 01.10.2026 12:00</p></body></html>",
        encoding="utf-8",
    )
    from ingest.sources.confluence.render import storage_to_html

    for p in pages:
        chain, cur = [], p.parent
        while cur:
            chain.append(by_id[cur])
            cur = by_id[cur].parent
        crumbs = (
            '<li class="first"><span><a href="index.html">'
            + h.escape(name)
            + "</a></span></li>"
            + "".join(f'<li><span><a href="{fname(c)}">{h.escape(c.title)}</a></span></li>' for c in reversed(chain))
        )
        (dest / fname(p)).write_text(
            f"<html><head><title>{h.escape(name)} : {h.escape(p.title)}</title></head><body>"
            f'<div id="breadcrumb-section"><ol id="breadcrumbs">{crumbs}</ol></div>'
            '<h1 id="title-heading" class="pagetitle">'
            f'<span id="title-text">{h.escape(name)} : {h.escape(p.title)}</span></h1>'
            "<div class=\"page-metadata\">Created by <span class='author'>Alice</span>, last modified by "
            "<span class='editor'>Bob</span> on 01.10.2026</div>"
            f'<div id="main-content" class="wiki-content group">{storage_to_html(p.body)}</div>'
            '<div id="footer"><p>Document generated by Confluence on 01.10.2026 12:00</p></div></body></html>',
            encoding="utf-8",
        )
        if p.pdf:
            _write_pdf_attachment(dest / "attachments" / p.id / p.pdf[0], p.pdf[0], p.pdf[1])
    return dest


CONFLUENCE_USERS = [
    CUser("alice", "alice", "alice@corp.example"),
    CUser("bob", "bob", "bob@corp.example"),
    CUser("carol", "carol", "carol@partner.example"),
    CUser("victor", "victor", None),
]
GROUPS = {"alice": ("eng", "leads"), "bob": ("eng", "ops"), "carol": (), "victor": ("ops",)}


CONFLUENCE_SITE = "acme.atlassian.net"  # the site the generated XML / REST exports state (base URL)
HTML_SITE = "docs.example"  # HTML exports state no site: ACCESS_POLICY's `sources` rules name this one


def confluence_world(
    dest: Path, phrases: list[str], *, html_site: str = HTML_SITE
) -> tuple[list[Path], dict[str, tuple[str, frozenset[str]]], set[str]]:
    """XML space ENG (nested restrictions, groups, PDF attachment, history, draft), XML space
    OPEN (anonymous → workspace), REST space OPS, HTML space DOCS (policy) and NORULE.

    Document ids are ``confluence:<site>:<page id>``: the XML and REST exports state
    ``CONFLUENCE_SITE``; the HTML exports (``docs-html``, ``norule-html``) state none, so the
    ingest must be given ``html_site`` (ACCESS_POLICY's ``sources`` rules do)."""
    ph = iter(phrases)
    truth: dict[str, tuple[str, frozenset[str]]] = {}
    quarantined: set[str] = set()
    eng_readers = {"alice", "bob", "carol"}  # group:eng + user carol

    def page(space: str, pid: str, title: str, readers: set[str], **kw: Any) -> CPage:
        phrase = next(ph)
        site = html_site if space == "DOCS" else CONFLUENCE_SITE
        truth[phrase] = (f"confluence:{site}:{pid}", frozenset(readers))
        return CPage(pid, title, storage_body(phrase, title), **kw)

    eng = CSpace("ENG", "Engineering", view_users=["carol"], view_groups=["eng"])
    eng.pages = [
        page("ENG", "101", "Home", eng_readers),
        page(
            "ENG", "102", "Leads corner", {"alice", "carol"}, parent="101", read_groups=["leads"], read_users=["carol"]
        ),
        # bob is listed here, but fails the parent's restriction: the nearest-parent shortcut would leak to bob
        page("ENG", "103", "Salary bands", {"alice"}, parent="102", read_users=["bob", "alice"]),
        page("ENG", "104", "Salary appendix", {"alice"}, parent="103"),
        page("ENG", "105", "Release notes", eng_readers, kind="blogpost"),
    ]
    pdf_phrase = next(ph)
    eng.pages[2].pdf = ("bands.pdf", f"Attachment text: {pdf_phrase}.")
    truth[pdf_phrase] = (f"confluence:{CONFLUENCE_SITE}:103:attachment:bands.pdf", frozenset({"alice"}))
    old = next(ph)
    truth[old] = (f"confluence:{CONFLUENCE_SITE}:199", frozenset())  # a historical version: never ingested
    draft = next(ph)
    truth[draft] = (f"confluence:{CONFLUENCE_SITE}:198", frozenset())  # a draft: never ingested
    opened = CSpace("OPEN", "Company wiki", anonymous=True)
    opened.pages = [page("OPEN", "201", "Welcome", {"alice", "bob", "carol", "victor"})]
    xml = write_confluence_xml(
        dest / "eng-xml",
        [eng, opened],
        CONFLUENCE_USERS,
        as_zip=True,
        history=[("199", "101", storage_body(old))],
        drafts=[("198", "101", storage_body(draft))],
    )

    ops = CSpace("OPS", "Operations", view_groups=["ops"])
    ops.pages = [
        page("OPS", "301", "Runbooks", {"bob", "victor"}),
        page("OPS", "302", "Pager secrets", {"victor"}, parent="301", read_users=["victor"]),
        CPage("303", "Orphan", storage_body(next(ph)), parent="399"),  # ancestor missing
        CPage("304", "No restrictions saved", storage_body(next(ph))),  # restrictions unknown
    ]
    quarantined |= {f"confluence:{CONFLUENCE_SITE}:303", f"confluence:{CONFLUENCE_SITE}:304"}
    rest = write_confluence_rest(dest / "ops-rest", ops, CONFLUENCE_USERS, without_restrictions=["304"])

    docs = [
        page("DOCS", "401", "Guide", {"alice", "bob"}),
        page("DOCS", "402", "Guide details", {"alice", "bob"}, parent="401"),
    ]
    html = write_confluence_html(dest / "docs-html", "DOCS", "Documentation", docs)
    norule = write_confluence_html(
        dest / "norule-html", "NORULE", "Unruled", [CPage("501", "Loose", storage_body(next(ph)))]
    )
    quarantined.add(f"confluence:{html_site}:501")
    return [xml, rest, html, norule], truth, quarantined


ACCESS_POLICY = """\
version: 1
access:
  - match: {source: confluence, space: DOCS}
    allow: [["group:eng"]]
retention:
  - match: {}
    keep_for: 1095d
workspaces:
  default: source-members
sources:
  # Confluence HTML exports state no site (confluence_world's HTML_SITE)
  - match: {path: "**/docs-html"}
    site: docs.example
  - match: {path: "**/norule-html"}
    site: docs.example
"""
