"""Public retrieval API: ``from retrieval import search, Hit, User``."""

from governance.contracts import Hit
from governance.identity import User
from retrieval.search import Retriever, search

__all__ = ["Hit", "Retriever", "User", "search"]
