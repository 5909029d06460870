"""The retrieval HTTP service: ``POST /v1/search`` for bearer-token callers.

A request passes, in order: the outer middleware (request id, body size limit, catch-all
500, metrics, one log line per search) → the bearer token check (``auth``) → the
per-subject rate limit (``ratelimit``) → request validation (k, query length) →
``Retriever.search`` with the :class:`~governance.identity.User` the token's claims map to.
Errors are JSON ``{"error", "request_id"}``; no exception text from the internals and no
stack trace ever reaches a client (the server log has them, keyed by the request id).
"""

# No ``from __future__ import annotations``: FastAPI must see the real Annotated/Depends
# objects of the dependencies defined inside create_app.

import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from governance.contracts import Hit
from governance.errors import (
    AccessDenied,
    CatalogError,
    ConfigError,
    EmbedderUnavailable,
    GovragError,
    IndexUnavailable,
)
from governance.observability import metrics
from governance.settings import Settings, get_settings
from retrieval.search import MAX_K, MAX_QUERY_CHARS, Retriever
from retrieval.service.auth import AuthError, Identity, KeysUnavailable, TokenVerifier
from retrieval.service.ratelimit import Limiter, make_rate_limiter, retry_after_header

log = logging.getLogger("govrag.api")

SEARCH_PATH = "/v1/search"
REALM = 'Bearer realm="govrag"'
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# -- request / response models ------------------------------------------------------------
class SearchRequest(BaseModel):
    """What to search for."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="Natural-language query.")
    k: StrictInt = Field(default=10, ge=1, le=MAX_K, description=f"How many hits, 1 to {MAX_K}.")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("query is blank")
        return v


# The wire format of a hit is the Python contract itself: one model, so the two cannot drift.
SearchHit = Hit


class SearchResponse(BaseModel):
    hits: list[SearchHit] = Field(description="Best first; at most k.")
    request_id: str


class ErrorResponse(BaseModel):
    error: str = Field(description="What went wrong, in a few words.")
    request_id: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(ErrorResponse):
    detail: list[ValidationErrorItem]


class RateLimited(Exception):
    """The caller's bucket is empty; ``wait`` seconds until the next token."""

    def __init__(self, wait: float) -> None:
        super().__init__("rate limited")
        self.wait = wait


# -- helpers ------------------------------------------------------------------------------
def _request_id(scope: Scope) -> str:
    given = Headers(scope=scope).get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def _rid(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex)


def _error(
    status: int, message: str, request_id: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": message, "request_id": request_id, **extra}, status_code=status, headers=headers)


def _subject_tag(subject: str) -> str:
    """A stable pseudonym for logs (the audit log holds the real actor)."""
    return hashlib.sha256(subject.encode()).hexdigest()[:16]


class _Backend:
    """The retriever the service searches with: injected, or opened from settings on first use.

    While the stores cannot be opened, a failed attempt is remembered for
    ``REOPEN_AFTER_S`` so that a burst of requests (or readiness probes) against a dead
    Milvus or database answers 503 at once instead of each one trying to connect again.
    """

    REOPEN_AFTER_S = 2.0

    def __init__(self, settings: Settings, retriever: Retriever | None) -> None:
        self.settings = settings
        self._retriever = retriever
        self._owned = retriever is None
        self._lock = threading.Lock()
        self._failure: tuple[float, GovragError] | None = None

    def retriever(self) -> Retriever:
        with self._lock:
            if self._retriever is None:
                from embedding import make_embedder
                from governance.stores import Stores

                if self._failure and time.monotonic() - self._failure[0] < self.REOPEN_AFTER_S:
                    raise self._failure[1].with_traceback(None)  # don't let its traceback grow
                try:
                    stores = Stores.open(self.settings, serve_tenants=True)
                except GovragError as exc:
                    self._failure = (time.monotonic(), exc)
                    raise
                self._failure = None
                self._retriever = Retriever(stores, lambda: make_embedder(stores.settings))
            return self._retriever

    def warm(self) -> None:
        """Open the stores and load the embedder ahead of the first search (best effort)."""
        try:
            self.retriever().embedder.embed(["warm up"])
        except Exception as exc:
            log.warning("warm-up failed (%s); /readyz reports what is missing", exc.__class__.__name__)

    def readiness(self) -> dict[str, str]:
        checks = {"catalog": "unknown", "milvus": "unknown"}
        try:
            retriever = self.retriever()
        except IndexUnavailable:
            checks["milvus"] = "unavailable"
            checks["catalog"] = self._probe_catalog()
            return checks
        except CatalogError:
            checks["catalog"] = "unavailable"
            return checks
        except Exception as exc:
            log.warning("opening the stores failed: %s", exc.__class__.__name__)
            checks["config"] = "unavailable"
            return checks
        checks["catalog"] = _check(lambda: retriever.stores.catalog.scopes.scope_count(), "catalog")
        checks["milvus"] = _check(lambda: retriever.stores.index.count(), "milvus")
        return checks

    def _probe_catalog(self) -> str:
        from governance.catalog import Catalog

        def probe() -> None:
            catalog = Catalog(self.settings.resolved_database_url, migrate=False)
            try:
                catalog.scopes.scope_count()
            finally:
                catalog.dispose()

        return _check(probe, "catalog")

    def close(self) -> None:
        if self._owned and self._retriever is not None:
            self._retriever.close()
            self._retriever = None


def _check(fn: Callable[[], Any], what: str) -> str:
    try:
        fn()
        return "ok"
    except Exception as exc:
        log.warning("readiness check %s failed: %s", what, exc.__class__.__name__)
        return "unavailable"


# -- the outer middleware -----------------------------------------------------------------
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
        rid = _request_id(scope)
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
            await _error(500, "internal error", rid)(scope, receive, send_with_id)
        finally:
            self._record(scope, state, response["status"], time.perf_counter() - started, rid)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | Response | None:
        rid = scope["state"]["request_id"]
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return _error(400, "invalid Content-Length", rid)
            if size > self.max_body_bytes:
                scope["state"]["error"] = "body_too_large"
                return _error(413, f"request body larger than {self.max_body_bytes} bytes", rid)
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
                return _error(413, f"request body larger than {self.max_body_bytes} bytes", rid)
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


# -- the application ----------------------------------------------------------------------
def create_app(
    settings: Settings | None = None,
    retriever: Retriever | None = None,
    *,
    verifier: TokenVerifier | None = None,
    rate_limiter: Limiter | None = None,
    warmup: bool = False,
) -> FastAPI:
    """Build the service. ``retriever``: search with it (tests); default: open the stores
    named by ``settings`` on first use. Raises :class:`ConfigError` when no token can be
    verified (no JWKS and no development secret)."""
    settings = settings or get_settings()
    verifier = TokenVerifier(settings) if verifier is None else verifier
    limiter = rate_limiter if rate_limiter is not None else make_rate_limiter(settings)
    backend = _Backend(settings, retriever)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if warmup:
            threading.Thread(target=backend.warm, name="govrag-warmup", daemon=True).start()
        try:
            yield
        finally:
            backend.close()

    app = FastAPI(
        title="govrag retrieval service",
        version="1",
        description="ACL-aware semantic search: every hit is one the token's subject may read.",
        docs_url=None,
        redoc_url=None,  # the UIs load assets from a CDN; /openapi.json is served
        lifespan=lifespan,
    )
    app.state.backend = backend
    app.state.verifier = verifier
    app.state.rate_limiter = limiter
    bearer = HTTPBearer(
        auto_error=False,
        bearerFormat="JWT",
        scheme_name="bearerAuth",
        description="A JWT from the identity provider (RS256/ES256 via JWKS; HS256 in development).",
    )

    def authenticated(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Identity:
        if credentials is None:
            raise AuthError("missing bearer token", reason="missing")
        identity = verifier.verify(credentials.credentials)
        request.state.subject_tag = _subject_tag(identity.subject)
        wait = limiter.acquire(identity.subject)
        if wait > 0:
            raise RateLimited(wait)
        return identity

    errors: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorResponse, "description": "Missing, malformed, expired or untrusted token."},
        403: {"model": ErrorResponse, "description": "The token's claims cannot be used as an identity."},
        413: {"model": ErrorResponse, "description": "Body larger than GOVRAG_API_MAX_BODY_BYTES."},
        422: {"model": ValidationErrorResponse, "description": "Invalid request (k, query)."},
        429: {"model": ErrorResponse, "description": "Rate limit of this subject reached; see Retry-After."},
        500: {"model": ErrorResponse, "description": "Internal error (details in the server log)."},
        503: {"model": ErrorResponse, "description": "Milvus, the catalog, the embedder or the JWKS is unavailable."},
    }

    @app.post(
        SEARCH_PATH,
        response_model=SearchResponse,
        responses=errors,
        tags=["search"],
        summary="Search as the token's subject",
    )
    def search(
        body: SearchRequest, request: Request, identity: Annotated[Identity, Depends(authenticated)]
    ) -> SearchResponse:
        request.state.k = body.k
        hits = backend.retriever().search(identity.user, body.query, body.k)
        request.state.hits = len(hits)
        return SearchResponse(
            hits=list(hits),
            request_id=_rid(request),
        )

    @app.get("/healthz", tags=["ops"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="The catalog and Milvus answer",
        responses={503: {"description": "Some dependency failed; `checks` says which."}},
    )
    def readyz(request: Request) -> JSONResponse:
        checks = backend.readiness()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks, "request_id": _rid(request)},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    # -- errors: JSON, no internals ---------------------------------------------------------
    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> JSONResponse:
        metrics.HTTP_AUTH_FAILURES.labels(exc.reason).inc()
        request.state.error = f"auth:{exc.reason}"
        log.info("token refused (request_id=%s): %s", _rid(request), exc)
        if exc.reason == "claims":
            return _error(403, "token claims cannot be used", _rid(request))
        if exc.reason == "missing":
            return _error(401, "missing bearer token", _rid(request), {"WWW-Authenticate": REALM})
        described = "token expired" if exc.reason == "expired" else "invalid token"
        challenge = f'{REALM}, error="invalid_token", error_description="{described}"'
        return _error(401, described, _rid(request), {"WWW-Authenticate": challenge})

    @app.exception_handler(KeysUnavailable)
    async def _keys(request: Request, exc: KeysUnavailable) -> JSONResponse:
        metrics.HTTP_AUTH_FAILURES.labels("keys").inc()
        request.state.error = "auth:keys"
        log.error("token keys unavailable (request_id=%s): %s", _rid(request), exc)
        return _error(503, "token verification keys unavailable", _rid(request), {"Retry-After": "5"})

    @app.exception_handler(RateLimited)
    async def _limited(request: Request, exc: RateLimited) -> JSONResponse:
        metrics.HTTP_RATE_LIMITED.inc()
        request.state.error = "rate_limited"
        return _error(429, "rate limit reached", _rid(request), {"Retry-After": retry_after_header(exc.wait)})

    @app.exception_handler(AccessDenied)
    async def _denied(request: Request, exc: AccessDenied) -> JSONResponse:
        request.state.error = "auth:claims"
        log.info("claims refused (request_id=%s): %s", _rid(request), exc)
        return _error(403, "token claims cannot be used", _rid(request))

    unavailable = {
        IndexUnavailable: "vector index unavailable",
        CatalogError: "catalog unavailable",
        EmbedderUnavailable: "embedder unavailable",
    }

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        request.state.error = f"unavailable:{exc.__class__.__name__}"
        log.error("backend unavailable (request_id=%s): %s", _rid(request), exc)
        message = next((m for cls, m in unavailable.items() if isinstance(exc, cls)), "service unavailable")
        return _error(503, message, _rid(request), {"Retry-After": "5"})

    for cls in unavailable:
        app.add_exception_handler(cls, _unavailable)

    @app.exception_handler(GovragError)
    async def _govrag(request: Request, exc: GovragError) -> JSONResponse:
        # ConfigError and anything unforeseen from below: the operator reads the log.
        request.state.error = exc.__class__.__name__
        log.error("error (request_id=%s): %s: %s", _rid(request), exc.__class__.__name__, exc)
        status = 503 if isinstance(exc, ConfigError) else 500
        return _error(status, "service misconfigured" if status == 503 else "internal error", _rid(request))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        request.state.error = "invalid_request"
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return _error(422, "invalid request", _rid(request), detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        return _error(exc.status_code, message.lower(), _rid(request), exc.headers)

    routes = frozenset(getattr(r, "path", "") for r in app.routes)
    app.add_middleware(ServiceMiddleware, max_body_bytes=settings.api_max_body_bytes, routes=routes)
    return app


__all__ = ["SearchHit", "SearchRequest", "SearchResponse", "create_app"]
