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
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from governance.observability import metrics
from governance.settings import Settings, get_settings
from retrieval.search import Retriever
from retrieval.service.auth import AuthError, Identity, TokenVerifier
from retrieval.service.backend import Backend
from retrieval.service.errors import RateLimited, install_error_handlers
from retrieval.service.http_common import SEARCH_PATH
from retrieval.service.http_common import rid as _rid
from retrieval.service.middleware import ServiceMiddleware
from retrieval.service.models import (
    ErrorResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    ValidationErrorResponse,
)
from retrieval.service.ratelimit import Limiter, make_rate_limiter

log = logging.getLogger("govrag.api")


def _subject_tag(subject: str) -> str:
    """A stable pseudonym for logs (the audit log holds the real actor)."""
    return hashlib.sha256(subject.encode()).hexdigest()[:16]


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
    backend = Backend(settings, retriever)

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

    install_error_handlers(app)

    routes = frozenset(getattr(r, "path", "") for r in app.routes)
    app.add_middleware(ServiceMiddleware, max_body_bytes=settings.api_max_body_bytes, routes=routes)
    return app


__all__ = ["SearchHit", "SearchRequest", "SearchResponse", "ServiceMiddleware", "create_app"]
