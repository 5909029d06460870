"""A loaded Slack export's documents as ``SourceItem``s, each with its conversation's scope.

Ids: ``slack:<team>:<channel id>:<thread_ts>`` for a thread,
``slack:<team>:<channel id>:day:<date>`` for a channel-day. A conversation folder that no
metadata file describes (or that two conversations claim) is quarantined with a
readable-by-nobody scope, never handed to a policy rule. A day file that cannot be read is
quarantined too, with its conversation's scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from governance.contracts import AccessScope
from governance.errors import QuarantinedDocument
from ingest.sources.base import JsonTooLarge, Refusal, SourceItem, nobody_scope
from ingest.sources.slack.load import (
    DAY_FILE,
    Conversation,
    SlackExport,
    clean_messages,
    day_files,
    message_time,
    read_day,
)
from ingest.sources.slack.permissions import ScopeBuilder
from ingest.sources.slack.render import (
    RenderedDocument,
    channel_label,
    group_documents,
    message_uri,
)


def iter_items(export: SlackExport, builder: ScopeBuilder) -> Iterator[SourceItem]:
    """Every document of the export's conversation folders, folder by folder."""
    for folder in sorted(p for p in export.root.iterdir() if p.is_dir() and not p.is_symlink()):
        files = day_files(folder)
        if not files:
            continue
        conv = export.conversations.get(folder.name)
        if conv is None:
            yield from _unknown_folder_items(export, folder, files)
            continue
        yield from _conversation_items(export, builder, conv, folder, files)


def _unknown_folder_items(export: SlackExport, folder: Path, files: list[Path]) -> Iterator[SourceItem]:
    """One quarantined item per day file of a folder whose conversation is unknown."""
    team = export.team
    claimed = export.ambiguous.get(folder.name)
    if claimed:
        why = f"claimed by conversations {', '.join(claimed)}: which one's access applies is unknown"
        reason, hint = (
            "ambiguous_conversation",
            (
                "export again after renaming one of the conversations; "
                "messages that could belong to either are never ingested"
            ),
        )
    else:
        why = (
            f"{', '.join(export.problems)} unreadable"
            if export.problems
            else "not listed in channels.json, groups.json, dms.json or mpims.json"
        )
        reason, hint = (
            "unknown_conversation",
            ("export the workspace with its conversation lists; unknown conversations are never ingested"),
        )
    for f in files:
        rel = f"{folder.name}/{f.name}"
        refusal = Refusal(
            QuarantinedDocument(
                f"{export.display}: conversation folder {folder.name!r} has unknown permissions ({why})",
                reason=reason,
                path=str(f),
                hint=hint,
            )
        )
        yield SourceItem(
            source="slack",
            path=f,
            rel_path=rel,
            document_id=f"slack:{team}:folder:{folder.name}:day:{f.stem}",
            fingerprint=refusal.fingerprint,
            parse=refusal.parse,
            facts={"source": "slack", "workspace": team, "channel": folder.name, "path": rel},
            scope=nobody_scope(f"slack:{team}:unknown:{folder.name}", "unknown conversation"),
            origin=f"slack:{team}",
            as_of=export.as_of,
        )


def _conversation_items(
    export: SlackExport, builder: ScopeBuilder, conv: Conversation, folder: Path, files: list[Path]
) -> Iterator[SourceItem]:
    """A known conversation's unreadable day files, then its documents."""
    team = export.team
    scope, refuse = builder.scope(conv)
    facts = {"source": "slack", "workspace": team, "channel": conv.name}
    # Paths name a group DM by id: Slack names its folder after the members' handles.
    place = conv.id if conv.kind == "mpim" else folder.name
    days: list[tuple[str, list[dict]]] = []
    for f in files:
        date = DAY_FILE.match(f.name).group(1)  # type: ignore[union-attr]
        try:
            rows = read_day(f)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            yield _bad_day_item(export, conv, f, f"{place}/{f.name}", date, exc, scope, facts)
            continue
        days.append((date, clean_messages(rows)))
    for doc in group_documents(conv, days):
        if doc.is_thread:
            rel = f"{place}/thread-{doc.key}"
            uri = message_uri(export, conv, doc.key, doc.key)
        else:
            rel = f"{place}/{doc.date}.json"
            uri = message_uri(export, conv, str(doc.messages[0]["ts"]))
        parser = _refusal(export, conv, folder, refuse) if refuse else RenderedDocument(doc, export)
        yield SourceItem(
            source="slack",
            path=folder,
            rel_path=rel,
            document_id=f"slack:{team}:{conv.id}:{doc.key}",
            fingerprint=parser.fingerprint,
            parse=parser.parse,
            facts={**facts, "path": rel},
            scope=scope,
            uri=uri,
            title=None,
            modified_at=message_time(doc.messages[-1]["ts"]),
            origin=f"slack:{team}",
            as_of=export.as_of,
        )


def _refusal(export: SlackExport, conv: Conversation, folder: Path, reason: str) -> Refusal:
    """Why a document of a conversation its scope refuses (``empty_acl``, ``acl_too_large``)
    is quarantined."""
    why = (
        "has no active member who could read it"
        if reason == "empty_acl"
        else "has more members than one scope layer may hold; map the workspace to a group "
        "in the policy's workspaces key"
    )
    return Refusal(
        QuarantinedDocument(f"{export.display}: {channel_label(conv)} {why}", reason=reason, path=str(folder))
    )


def _bad_day_item(
    export: SlackExport,
    conv: Conversation,
    f: Path,
    rel: str,
    date: str,
    exc: Exception,
    scope: AccessScope,
    facts: dict[str, str],
) -> SourceItem:
    """A day file that cannot be read, quarantined with its conversation's scope."""
    if isinstance(exc, JsonTooLarge):
        q = QuarantinedDocument(
            f"{export.display}: {rel} is too large to ingest: {exc}",
            reason="too_large",
            path=str(f),
            hint="split the day file, or raise ingest.sources.slack.load.MAX_DAY_JSON_BYTES if it is genuine; "
            "this day's messages were skipped",
        )
    else:
        q = QuarantinedDocument(
            f"{export.display}: {rel} is not valid Slack JSON: {exc}",
            reason="malformed_json",
            path=str(f),
            hint="re-export the workspace; this day's messages were skipped",
        )
    refusal = Refusal(q)
    return SourceItem(
        source="slack",
        path=f,
        rel_path=rel,
        document_id=f"slack:{export.team}:{conv.id}:file:{date}",
        fingerprint=refusal.fingerprint,
        parse=refusal.parse,
        facts={**facts, "path": rel},
        scope=scope,
        origin=f"slack:{export.team}",
        as_of=export.as_of,
    )
