"""Structured logs: one JSON object per line (``GOVRAG_LOG_FORMAT=json``) or plain text.

Log calls pass facts as ``extra={...}`` (run id, path, reason, counts), never document text.
As a second line of defence every message and string field goes through the redactor's
patterns, so a secret or personal value that slips into an exception message is logged as
``[REDACTED:KIND]``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

from governance.redaction import redact

# LogRecord attributes that are not caller-supplied ``extra`` fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_HANDLER_NAME = "govrag"


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value, secret_values=())[0]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return _clean(str(value))


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra}``; exceptions as their type and a redacted message."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "msg": _clean(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = _clean(value)
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__
            out["error_message"] = _clean(str(record.exc_info[1]))
        return json.dumps(out, ensure_ascii=False, default=str)


class RedactingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _clean(super().format(record))


def configure_logging(fmt: str = "text", level: str = "WARNING", stream: Any = None) -> logging.Handler:
    """Install govrag's handler on the root logger (idempotent: replaces an earlier one)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == _HANDLER_NAME:
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json"
                         else RedactingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    return handler
