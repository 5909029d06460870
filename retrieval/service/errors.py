"""How the service answers a failure: JSON ``{"error", "request_id"}``, the right status and
headers, and never exception text from the internals (the server log has it, keyed by the
request id)."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from governance.errors import (
    AccessDenied,
    CatalogError,
    ConfigError,
    EmbedderUnavailable,
    GovragError,
    IndexUnavailable,
)
from governance.observability import metrics
from retrieval.service.auth import AuthError, KeysUnavailable
from retrieval.service.http_common import REALM, error_response
from retrieval.service.http_common import rid as _rid
from retrieval.service.ratelimit import retry_after_header

log = logging.getLogger("govrag.api")


class RateLimited(Exception):
    """The caller's bucket is empty; ``wait`` seconds until the next token."""

    def __init__(self, wait: float) -> None:
        super().__init__("rate limited")
        self.wait = wait


def install_error_handlers(app: FastAPI) -> None:
    """Register the service's exception handlers on ``app``."""

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> JSONResponse:
        metrics.HTTP_AUTH_FAILURES.labels(exc.reason).inc()
        request.state.error = f"auth:{exc.reason}"
        log.info("token refused (request_id=%s): %s", _rid(request), exc)
        if exc.reason == "claims":
            return error_response(403, "token claims cannot be used", _rid(request))
        if exc.reason == "missing":
            return error_response(401, "missing bearer token", _rid(request), {"WWW-Authenticate": REALM})
        described = "token expired" if exc.reason == "expired" else "invalid token"
        challenge = f'{REALM}, error="invalid_token", error_description="{described}"'
        return error_response(401, described, _rid(request), {"WWW-Authenticate": challenge})

    @app.exception_handler(KeysUnavailable)
    async def _keys(request: Request, exc: KeysUnavailable) -> JSONResponse:
        metrics.HTTP_AUTH_FAILURES.labels("keys").inc()
        request.state.error = "auth:keys"
        log.error("token keys unavailable (request_id=%s): %s", _rid(request), exc)
        return error_response(503, "token verification keys unavailable", _rid(request), {"Retry-After": "5"})

    @app.exception_handler(RateLimited)
    async def _limited(request: Request, exc: RateLimited) -> JSONResponse:
        metrics.HTTP_RATE_LIMITED.inc()
        request.state.error = "rate_limited"
        return error_response(429, "rate limit reached", _rid(request), {"Retry-After": retry_after_header(exc.wait)})

    @app.exception_handler(AccessDenied)
    async def _denied(request: Request, exc: AccessDenied) -> JSONResponse:
        request.state.error = "auth:claims"
        log.info("claims refused (request_id=%s): %s", _rid(request), exc)
        return error_response(403, "token claims cannot be used", _rid(request))

    unavailable = {
        IndexUnavailable: "vector index unavailable",
        CatalogError: "catalog unavailable",
        EmbedderUnavailable: "embedder unavailable",
    }

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        request.state.error = f"unavailable:{exc.__class__.__name__}"
        log.error("backend unavailable (request_id=%s): %s", _rid(request), exc)
        message = next((m for cls, m in unavailable.items() if isinstance(exc, cls)), "service unavailable")
        return error_response(503, message, _rid(request), {"Retry-After": "5"})

    for cls in unavailable:
        app.add_exception_handler(cls, _unavailable)

    @app.exception_handler(GovragError)
    async def _govrag(request: Request, exc: GovragError) -> JSONResponse:
        # ConfigError and anything unforeseen from below: the operator reads the log.
        request.state.error = exc.__class__.__name__
        log.error("error (request_id=%s): %s: %s", _rid(request), exc.__class__.__name__, exc)
        status = 503 if isinstance(exc, ConfigError) else 500
        return error_response(status, "service misconfigured" if status == 503 else "internal error", _rid(request))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        request.state.error = "invalid_request"
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return error_response(422, "invalid request", _rid(request), detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        return error_response(exc.status_code, message.lower(), _rid(request), exc.headers)
