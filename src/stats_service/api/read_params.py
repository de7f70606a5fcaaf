"""Query parameters shared by the read routers, and the aggregate query they build."""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
from fastapi import Query, Response

from ..query.aggregate import AggregateQuery
from ..query.buckets import Buckets
from ..query.fill import parse_fill
from ..query.params import parse_duration, parse_functions, parse_tz, time_range

From = Annotated[
    str | None,
    Query(alias="from", description="Start (included): RFC 3339, epoch, `now-1h`. Default to-24h."),
]
To = Annotated[
    str | None, Query(description="End (excluded): RFC 3339, epoch, `now`. Default now.")
]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the page before.")]
Bucket = Annotated[str, Query(description="Bucket width: 10s, 1m, 1h, 1d, 1w...")]
Functions = Annotated[
    str, Query(description="Functions: mean,min,max,sum,count,median,stddev,first,last,pNN.")
]
Fill = Annotated[str, Query(description="none, null, previous, zero or linear.")]
Tz = Annotated[str, Query(description="IANA zone of day/week buckets and of `t`.")]


def now_us() -> int:
    return time.time_ns() // 1000


def json_response(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def aggregate_query(
    from_: str | None, to: str | None, bucket: str, fn: str, fill: str, tz: str
) -> AggregateQuery:
    """The parsed aggregate parameters; a bad one is a 400 naming it."""
    return AggregateQuery(
        span=time_range(from_, to, now_us()),
        buckets=Buckets(parse_duration("bucket", bucket), parse_tz(tz)),
        functions=tuple(parse_functions(fn)),
        fill=parse_fill(fill),
        bucket_label=bucket.strip().lower(),
    )
