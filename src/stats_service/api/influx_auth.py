"""Who is writing to an InfluxDB endpoint: the API key in any of the places clients put it.

InfluxDB clients carry credentials in several ways, and a StatisticsService API key is
accepted in each: as the password (query `p`, or HTTP Basic auth, whose user name is
ignored), as the token (`Authorization: Token <key>` or `Bearer <key>`; InfluxDB 1.8's
`Token <user>:<password>` form too), or as `X-API-Key`. A request without a valid key
may still write when the target tenant allows anonymous writes: Home Assistant's 1.x
client sends Basic `root:root` when it is configured without credentials.
"""

from __future__ import annotations

import base64

from fastapi import Request

from ..errors import Unauthorized
from ..model import Principal
from ..services import Services

ANONYMOUS_KEY_ID = "anonymous"


def presented_keys(request: Request) -> list[str]:
    """Every candidate key of the request, most specific first, without duplicates."""
    keys: list[str] = []
    password = request.query_params.get("p")
    if password:
        keys.append(password)
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    value = value.strip()
    scheme = scheme.lower()
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8
            decoded = ""
        _, _, secret = decoded.partition(":")
        if secret:
            keys.append(secret)
    elif scheme in ("token", "bearer") and value:
        keys.append(value)
        user, colon, secret = value.partition(":")
        if colon and user and secret:
            keys.append(secret)
    api_key = request.headers.get("x-api-key", "").strip()
    if api_key:
        keys.append(api_key)
    return list(dict.fromkeys(keys))


def is_anonymous(principal: Principal) -> bool:
    return principal.key_id == ANONYMOUS_KEY_ID


def influx_principal(request: Request, services: Services, database: str | None) -> Principal:
    """The key's principal; else the anonymous writer of `database`'s tenant; else 401."""
    for key in presented_keys(request):
        try:
            principal = services.auth.authenticate(key)
        except Unauthorized:
            continue
        if not principal.system:
            services.usage.request(principal.tenant_id)
        return principal
    anonymous = services.auth.anonymous_writer(database)
    if anonymous is None:
        raise Unauthorized("authorization failed")
    services.usage.request(anonymous.tenant_id)
    return anonymous
