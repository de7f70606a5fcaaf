"""The exception tree. `api/errors.py` is the one place that maps it to HTTP.

    ServiceError
    ├── BadRequest                400  malformed input (invalid JSON, bad parameter)
    │   └── ValidationFailed      400  a body that breaks the contract; lists every field error
    ├── Unauthorized              401  missing, unknown or revoked API key
    ├── Forbidden                 403  the key's role may not do this
    ├── NotFound                  404
    ├── Conflict                  409  e.g. a name already taken, an idempotency key reused
    ├── PayloadTooLarge           413  body or batch over a limit
    ├── LimitExceeded             422  a tenant quota (series count) would be exceeded
    ├── Overloaded                429  the writer queue is full; retry after `retry_after` s
    └── Unavailable               503  the store cannot take writes right now
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in a request: where (`points[3].values.temperature`) and what."""

    loc: str
    msg: str

    def as_dict(self) -> dict[str, str]:
        return {"loc": self.loc, "msg": self.msg}


class ServiceError(Exception):
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, *, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class BadRequest(ServiceError):
    status = 400
    title = "Bad request"


class ValidationFailed(BadRequest):
    title = "Invalid payload"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        count = len(errors)
        summary = detail or (
            f"{count} field error{'s' if count != 1 else ''}: "
            + "; ".join(f"{e.loc}: {e.msg}" for e in errors[:5])
            + (" ..." if count > 5 else "")
        )
        super().__init__(summary, errors=errors)


class BadParameter(BadRequest):
    title = "Invalid query parameter"

    def __init__(self, param: str, msg: str) -> None:
        super().__init__(f"{param}: {msg}", errors=[FieldError(f"query.{param}", msg)])
        self.param = param


class Unauthorized(ServiceError):
    status = 401
    title = "Unauthorized"


class Forbidden(ServiceError):
    status = 403
    title = "Forbidden"


class NotFound(ServiceError):
    status = 404
    title = "Not found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    title = "Payload too large"


class LimitExceeded(ServiceError):
    status = 422
    title = "Tenant limit exceeded"


class Overloaded(ServiceError):
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: float = 1.0) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(ServiceError):
    status = 503
    title = "Service unavailable"

    def __init__(self, detail: str, retry_after: float = 5.0) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
