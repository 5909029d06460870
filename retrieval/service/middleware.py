"""The outer ASGI middleware: request id, body size limit (413 before parsing), catch-all 500,
metrics and one log line per search."""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import Response
from starlette.datastructures import Headers, MutableHeaders

from governance.observability import metrics
from retrieval.service.http_common import SEARCH_PATH, Message, Receive, Scope, Send, error_response, request_id

log = logging.getLogger("govrag.api")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ServiceMiddleware:
    """Request id, body limit (413 before parsing), catch-all 500, metrics, search log line."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, max_body_bytes: int, routes: frozenset[str]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        started = time.perf_counter()
        response: dict[str, Any] = {"status": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["started"], response["status"] = True, message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = rid
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        try:
            if scope.get("method") in _BODY_METHODS:
                body = await self._read_body(scope, receive)
                if isinstance(body, Response):
                    await body(scope, receive, send_with_id)
                    return
                if body is None:  # the client went away mid-body
                    response["status"] = 499
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in %s %s (request_id=%s)", scope.get("method"), self._route(scope), rid)
            state["error"] = "internal"
            if response["started"]:
                raise  # nothing sane left to send; the server drops the connection
            await error_response(500, "internal error", rid)(scope, receive, send_with_id)
        finally:
            self._record(scope, state, response["status"], time.perf_counter() - started, rid)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | Response | None:
        rid = scope["state"]["request_id"]
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return error_response(400, "invalid Content-Length", rid)
            if size > self.max_body_bytes:
                scope["state"]["error"] = "body_too_large"
                return error_response(413, f"request body larger than {self.max_body_bytes} bytes", rid)
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body_bytes:  # chunked, or a Content-Length that lied
                scope["state"]["error"] = "body_too_large"
                return error_response(413, f"request body larger than {self.max_body_bytes} bytes", rid)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _route(self, scope: Scope) -> str:
        path = scope.get("path", "")
        return path if path in self.routes else "unmatched"

    def _record(self, scope: Scope, state: dict[str, Any], status: int, seconds: float, rid: str) -> None:
        route = self._route(scope)
        metrics.HTTP_REQUESTS.labels(route, str(scope.get("method", "")), str(status)).inc()
        metrics.HTTP_SECONDS.labels(route).observe(seconds)
        if route == SEARCH_PATH:
            # Facts only (never the query, the token or hit text): as ``extra`` fields for a
            # JSON log formatter, and as key=value text for a plain one.
            fields = {
                "event": "search",
                "request_id": rid,
                "status": status,
                "duration_ms": round(seconds * 1000, 1),
                "subject": state.get("subject_tag"),
                "k": state.get("k"),
                "hits": state.get("hits"),
                "error": state.get("error"),
            }
            log.info(" ".join(f"{key}={value}" for key, value in fields.items() if value is not None), extra=fields)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
