"""Structured logs: one JSON object per line (``GOVRAG_LOG_FORMAT=json``) or plain text.

Log calls pass facts as ``extra={...}`` (run id, path, reason, counts), never document text.
As a second line of defence every message and string field goes through the redactor's
patterns, so a secret or personal value that slips into an exception message is logged as
``[REDACTED:KIND]``.

JSON lines are rendered by structlog's ``ProcessorFormatter`` from the standard library's
log records: ``{"ts", "level", "logger", "msg", ...extra}``, and for an exception its type
and redacted message (``error``, ``error_message``) but no traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from structlog.processors import EventRenamer, JSONRenderer
from structlog.stdlib import ProcessorFormatter, add_log_level, add_logger_name
from structlog.typing import EventDict

from governance.redaction import redact

# LogRecord attributes that are not caller-supplied ``extra`` fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_HANDLER_NAME = "govrag"


def _clean_text(text: str) -> str:
    return redact(text, secret_values=())[0]


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return _clean(str(value))


def _timestamp(_: Any, __: str, event: EventDict) -> EventDict:
    """``ts``: when the record was made (not when it is formatted), UTC, milliseconds."""
    created = event["_record"].created
    event["ts"] = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return event


def _extra_fields(_: Any, __: str, event: EventDict) -> EventDict:
    """The caller's ``extra={...}`` fields of the record."""
    for key, value in vars(event["_record"]).items():
        if key not in _STANDARD and not key.startswith("_"):
            event[key] = value
    return event


def _exception_fields(_: Any, __: str, event: EventDict) -> EventDict:
    """``error`` (the type) and ``error_message`` instead of a traceback, which could quote
    document text."""
    exc_info = event.pop("exc_info", None)
    if exc_info and exc_info[0] is not None:
        event["error"] = exc_info[0].__name__
        event["error_message"] = str(exc_info[1])
    return event


def _redacted(_: Any, __: str, event: EventDict) -> EventDict:
    return {key: _clean(value) for key, value in event.items()}


class JsonFormatter(ProcessorFormatter):
    """``{"ts", "level", "logger", "msg", ...extra}``; exceptions as their type and a redacted message."""

    def __init__(self) -> None:
        super().__init__(
            foreign_pre_chain=[
                _timestamp,
                add_log_level,
                add_logger_name,
                EventRenamer("msg"),
                _extra_fields,
                _exception_fields,
            ],
            processors=[
                ProcessorFormatter.remove_processors_meta,
                _redacted,
                JSONRenderer(serializer=json.dumps, ensure_ascii=False, default=str),
            ],
        )


class RedactingTextFormatter(logging.Formatter):
    """The standard text format, every line through the redactor."""

    def format(self, record: logging.LogRecord) -> str:
        return _clean_text(super().format(record))


def configure_logging(fmt: str = "text", level: str = "WARNING", stream: Any = None) -> logging.Handler:
    """Install govrag's handler on the root logger (idempotent: replaces an earlier one)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == _HANDLER_NAME:
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else RedactingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
    return handler
