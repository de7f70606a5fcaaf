"""Flux `buckets()`, the one Flux query answered, as InfluxDB 2's annotated CSV.

Home Assistant's 2.x integration runs `buckets()` to check its connection (its sensors
and some dashboards do too); everything else Flux can express is refused, since the
service is read through its own API. The CSV follows the annotated format the client
libraries parse (`#datatype`, `#group`, `#default`, header, rows, blank line).
"""

from __future__ import annotations

import hashlib
import re

BUCKETS_QUERY = re.compile(r"\s*buckets\s*\(\s*\)\s*", re.IGNORECASE)
COLUMNS = ("result", "table", "name", "id", "organizationID", "retentionPolicy", "retentionPeriod")
DATATYPES = ("string", "long", "string", "string", "string", "string", "long")
NS_PER_DAY = 86_400 * 1_000_000_000


def is_buckets_query(flux: str) -> bool:
    return BUCKETS_QUERY.fullmatch(flux) is not None


def hex_id(*parts: object) -> str:
    """A 16-hex-digit id like InfluxDB's, stable for the same tenant and name."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def buckets_csv(tenant_id: int, names: list[str], retention_days: int) -> str:
    """The tenant's databases as the table `buckets()` returns."""
    org = hex_id("org", tenant_id)
    period = str(retention_days * NS_PER_DAY if retention_days > 0 else 0)
    lines = [
        "#datatype," + ",".join(DATATYPES),
        "#group," + ",".join("false" for _ in COLUMNS),
        "#default,_result" + "," * (len(COLUMNS) - 1),
        "," + ",".join(COLUMNS),
    ]
    for name in names:
        row = ("", "0", _csv_field(name), hex_id("bucket", tenant_id, name), org, "", period)
        lines.append("," + ",".join(row))
    return "\r\n".join(lines) + "\r\n\r\n"
