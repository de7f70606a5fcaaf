"""OpenAPI description of the problem+json error bodies every endpoint may answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class FieldProblem(BaseModel):
    loc: str = Field(description="Where: `points[3].values.temperature`, `query.from`, ...")
    msg: str = Field(description="What is wrong there.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("Invalid request: every field error is listed with its location"),
    401: _problem("Missing, unknown or revoked API key"),
    403: _problem("The key's role may not do this"),
    404: _problem("Not found (or not this tenant's)"),
    409: _problem("Conflict: a name already taken, an Idempotency-Key reused for another body"),
    413: _problem("Body or batch over the limit"),
    422: _problem("A tenant limit would be exceeded"),
    429: _problem("The write queue is full; retry after Retry-After seconds"),
    503: _problem("The store cannot take writes right now"),
}
