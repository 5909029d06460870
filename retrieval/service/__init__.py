"""The retrieval HTTP service (``govrag api serve``): bearer JWT → User → ``retrieval.search``.

See docs/service.md. ``create_app(settings, retriever=None)`` builds the FastAPI app.
"""

from retrieval.service.app import SearchHit, SearchRequest, SearchResponse, create_app

__all__ = ["SearchHit", "SearchRequest", "SearchResponse", "create_app"]
