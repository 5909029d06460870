"""The service's wire format: request and response bodies (the OpenAPI schema is built from them)."""

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from governance.contracts import Hit
from retrieval.search import MAX_K, MAX_QUERY_CHARS


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
