"""Slack messages → documents and their text.

Documents:

- one per thread (``thread_ts``): the root and every reply, broadcast replies included,
  sorted by time;
- one per channel-day for unthreaded talk (a root nobody answered counts as talk).

Text: a ``Title`` and one ``NarrativeText`` per message, ``[YYYY-MM-DD HH:MM UTC] author:
text``, mrkdwn turned into plain text. Files are kept as text metadata (title, name, type)
and never downloaded.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ingest.sources.base import Parsed
from ingest.sources.slack.load import Conversation, SlackExport, message_time
from ingest.sources.slack.permissions import user_principal

PARSER_VERSION = "slack-1"


# -- mrkdwn → text -------------------------------------------------------------------------------
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


def _author(m: dict, export: SlackExport) -> str:
    uid = m.get("user")
    if uid is None and isinstance(m.get("comment"), dict):
        uid = m["comment"].get("user")
    if isinstance(uid, str) and uid in export.users and not m.get("bot_id"):
        return export.display_name(uid)
    prof = m.get("user_profile") or {}
    for name in (
        prof.get("display_name"),
        prof.get("real_name"),
        m.get("username"),
        (m.get("bot_profile") or {}).get("name"),
    ):
        if name:
            return str(name) + (" (bot)" if m.get("bot_id") or m.get("subtype") == "bot_message" else "")
    if isinstance(uid, str):
        return export.display_name(uid)
    return f"bot {m.get('bot_id')}" if m.get("bot_id") else "unknown"


def _author_principal(m: dict, export: SlackExport) -> str | None:
    uid = m.get("user")
    if uid is None and isinstance(m.get("comment"), dict):
        uid = m["comment"].get("user")
    if not isinstance(uid, str) or m.get("bot_id") or m.get("subtype") == "bot_message":
        return None
    return user_principal(export, uid)


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
    """One message as a line of text (empty when it says nothing)."""
    when = message_time(m.get("ts"))
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


def channel_label(conv: Conversation) -> str:
    """How titles name a conversation. Not by its members: a title is copied into every
    chunk, and erasing a person (who is known by principal, not by display name) could not
    take their name back out of it; who is in a DM is what its access scope says."""
    if conv.kind == "im":
        return f"DM {conv.id}"
    if conv.kind == "mpim":
        return f"group DM {conv.id}"
    return f"#{conv.name}"


# -- messages → documents ------------------------------------------------------------------------
@dataclass
class SlackDocument:
    """A thread, or the unthreaded talk of one channel-day."""

    conv: Conversation
    key: str  # thread_ts or day:<date>
    date: str
    messages: list[dict]
    is_thread: bool


def group_documents(conv: Conversation, days: list[tuple[str, list[dict]]]) -> list[SlackDocument]:
    """A conversation's cleaned day messages as documents, by date."""
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
        docs.append(SlackDocument(conv, tts, root_date, msgs, True))
    for date, msgs in plain.items():
        msgs.sort(key=lambda m: (float(m["ts"]), str(m["ts"])))
        docs.append(SlackDocument(conv, f"day:{date}", date, msgs, False))
    docs.sort(key=lambda d: (d.date, d.key))
    return docs


def _elements(title: str, lines: list[str], authors: list[str | None]) -> list[Any]:
    """A Title and one NarrativeText per message; each message element carries its author's
    principal as ``govrag_author`` (erasure under the right to be forgotten drops it)."""
    from unstructured.documents.elements import NarrativeText, Title

    out: list[Any] = [Title(title)]
    for line, author in zip(lines, authors, strict=True):
        el = NarrativeText(line)
        el.govrag_author = author  # type: ignore[attr-defined]
        out.append(el)
    return out


def _snippet(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a word boundary: a word cut in half can be half
    a secret that redaction no longer recognises (a thread's title quotes its root)."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    if not text[limit].isspace():  # the cut falls inside a word: leave that word out
        head = re.sub(r"\S+$", "", head)
    return head.rstrip()


class RenderedDocument:
    """The parser of one Slack document: its title and lines, rendered once on first need
    (fingerprint or parse)."""

    def __init__(self, doc: SlackDocument, export: SlackExport) -> None:
        self.doc, self.export = doc, export
        self._lines: list[str] | None = None
        self._authors: list[str | None] = []

    @property
    def title(self) -> str:
        d, label = self.doc, channel_label(self.doc.conv)
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
        times = [
            t
            for m in d.messages
            for t in (message_time(m.get("ts")), message_time((m.get("edited") or {}).get("ts")))
            if t
        ]
        lines = self.lines
        return Parsed(
            elements=_elements(self.title, lines, self._authors),
            title=self.title,
            author=_author(first, self.export) if first else None,
            owner=_author_principal(first, self.export) if first else None,
            modified_at=max(times) if times else None,
        )


def message_uri(export: SlackExport, conv: Conversation, ts: str, thread_ts: str | None = None) -> str:
    """A permalink when the export names its domain, else a ``slack://`` link."""
    if export.domain:
        u = f"https://{export.domain}.slack.com/archives/{conv.id}/p{ts.replace('.', '')}"
        return u + (f"?thread_ts={thread_ts}&cid={conv.id}" if thread_ts else "")
    u = f"slack://channel?team={export.team}&id={conv.id}&message={ts}"
    return u + (f"&thread_ts={thread_ts}" if thread_ts else "")
