"""The `"schema": "<family>/v<N>"` field every device contract carries.

A payload names its contract and version; a missing, malformed, unknown or newer
version is refused with a 422 that names the versions this server supports, so a device
with newer firmware learns what to send instead of having fields silently dropped.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import FieldError, ServiceError

SCHEMA_RE = re.compile(r"^(?P<family>[a-z][a-z0-9-]*)/v(?P<version>[1-9][0-9]*)$")

# family -> versions this server accepts; a contract module registers itself here
SUPPORTED: dict[str, tuple[int, ...]] = {
    "temperature": (1,),
    "epidemic-run": (1,),
}


class UnsupportedContract(ServiceError):
    status = 422
    title = "Unsupported contract version"


def supported_names(family: str) -> list[str]:
    return [f"{family}/v{v}" for v in SUPPORTED.get(family, ())]


def check(payload: Any, family: str, loc: str = "body") -> int:
    """The version of `family` that `payload["schema"]` names; raises 422 otherwise.

    A payload without `schema` is taken as the newest version's first release (v1) only
    when `family` has exactly v1; otherwise the field is required."""
    names = ", ".join(supported_names(family))
    where = f"{loc}.schema"
    if not isinstance(payload, dict):
        raise UnsupportedContract(
            f"{loc}: must be a JSON object carrying \"schema\": \"{family}/v1\"",
            errors=[FieldError(loc, "must be a JSON object")],
        )
    value = payload.get("schema")
    if value is None:
        if SUPPORTED.get(family) == (1,):
            return 1
        msg = f"is required; supported: {names}"
        raise UnsupportedContract(f"{where}: {msg}", errors=[FieldError(where, msg)])
    match = SCHEMA_RE.match(value) if isinstance(value, str) else None
    if match is None or match["family"] != family:
        msg = f"{value!r} is not a {family} contract; supported: {names}"
        raise UnsupportedContract(f"{where}: {msg}", errors=[FieldError(where, msg)])
    version = int(match["version"])
    if version not in SUPPORTED.get(family, ()):
        newest = max(SUPPORTED.get(family, (0,)))
        hint = " (newer than this server)" if version > newest else ""
        msg = f"{value!r} is not supported{hint}; supported: {names}"
        raise UnsupportedContract(f"{where}: {msg}", errors=[FieldError(where, msg)])
    return version
