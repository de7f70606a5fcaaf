"""Response models of the read API (series, devices, points, aggregates, stats, usage).

Times are RFC 3339 strings; series ids are decimal strings (a JavaScript number cannot
hold every signed 64-bit integer). Point and aggregate bodies are columnar: parallel
arrays, ready for a chart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .problems import PROBLEM_RESPONSES

READ_PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: PROBLEM_RESPONSES[code] for code in (400, 401, 403, 404)
}
SeriesId = str
Time = str


class Span(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: Time = Field(alias="from", description="Start of the range (included).")
    to: Time = Field(description="End of the range (excluded).")


class SeriesOut(BaseModel):
    id: SeriesId = Field(description="Series id, a signed 64-bit integer as a decimal string.")
    metric: str
    device: str | None
    tags: dict[str, str] = Field(description="Every tag of the series, `device` included.")
    unit: str | None
    created_at: Time | None
    last_ts: Time | None = Field(description="Time of the latest point.")
    last_value: float | None = Field(description="Value of the latest point.")
    last_state_ts: Time | None = Field(
        None, description="Time of the latest text value (state), if the series has any."
    )
    last_state: str | None = Field(None, description="The latest text value (state).")


class SeriesPage(BaseModel):
    items: list[SeriesOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class DeviceOut(BaseModel):
    name: str
    first_seen: Time | None
    last_seen: Time | None
    series: int = Field(description="Number of series of the device.")
    metrics: list[str] = Field(description="Metric names of its series, sorted.")


class DevicePage(BaseModel):
    items: list[DeviceOut]
    next_cursor: str | None


class DeviceMetric(BaseModel):
    series_id: SeriesId
    metric: str
    tags: dict[str, str]
    unit: str | None
    last_ts: Time | None
    last_value: float | None


class DeviceMetrics(BaseModel):
    device: str
    metrics: list[DeviceMetric]


class PointsOut(Span):
    series_id: SeriesId
    t: list[Time] = Field(description="Point times, ascending.")
    value: list[float | None]
    next_cursor: str | None = Field(description="Pass as `cursor` for the points after these.")


class StatesOut(Span):
    series_id: SeriesId
    t: list[Time] = Field(description="Times of the text values, ascending.")
    text: list[str] = Field(description="Text values (states such as `on` or `heat`).")
    next_cursor: str | None = Field(description="Pass as `cursor` for the values after these.")


class AggregateOut(Span):
    """One array per requested function (`mean`, `p95`, ...) beside `t` and `count`."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    __pydantic_extra__: dict[str, list[float | None]] = Field(init=False)

    series_id: SeriesId
    bucket: str = Field(description="Bucket width, e.g. `1m`.")
    tz: str = Field(description="Time zone of calendar buckets (1d and longer) and of `t`.")
    fill: str
    t: list[Time] = Field(description="Bucket starts, ascending.")
    count: list[int] = Field(description="Points in each bucket.")
    tiers: list[str] | None = Field(
        None,
        description="What answered, coarsest first: rollup tiers (`1h`, `1m`) and/or `raw` "
        "(see docs/storage-rollups.md).",
    )
    answered_from: Time | None = Field(
        None,
        description="Only when the rollup policy deleted the raw points at an uneven `from`: "
        "the first bucket holds the whole tier bucket from this time.",
    )
    answered_to: Time | None = Field(
        None, description="The same for an uneven `to` whose raw points were deleted."
    )


class SeriesStats(BaseModel):
    series_id: SeriesId
    device: str | None
    metric: str
    tags: dict[str, str]
    unit: str | None
    count: int
    min: float | None
    max: float | None
    sum: float | None
    mean: float | None
    median: float | None
    stddev: float | None = Field(description="Sample standard deviation.")
    p5: float | None
    p95: float | None
    first: float | None
    last: float | None
    first_ts: Time | None
    last_ts: Time | None


class StatsOut(Span):
    series: list[SeriesStats]


class UsageDay(BaseModel):
    day: str = Field(description="UTC day, YYYY-MM-DD.")
    points: int
    bytes: int
    requests: int
    rejected: int
    windows_scored: int = Field(0, description="Windows given an anomaly score that day.")


class UsageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    days: list[UsageDay]


class FleetSeriesKey(BaseModel):
    series_id: SeriesId
    metric: str
    device: str | None
    tags: dict[str, str]
    unit: str | None


class FleetGroup(BaseModel):
    """One group: a series (`group_by=series`) or the series of one device and metric
    (`group_by=device`, then `series_ids` instead of `series_id` and `tags`). One array
    per requested function beside `t` and `count`."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, list[float | None]] = Field(init=False)

    series_id: SeriesId | None = None
    series_ids: list[SeriesId] | None = None
    metric: str
    device: str | None
    tags: dict[str, str] | None = None
    unit: str | None
    t: list[Time] = Field(description="Bucket starts, ascending.")
    count: list[int] = Field(description="Points in each bucket.")


class FleetAggregateOut(Span):
    bucket: str
    tz: str
    fill: str
    group_by: str = Field(description="`series`, `device` or `metric`.")
    functions: list[str]
    groups: list[FleetGroup]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next groups.")


class LatestItem(FleetSeriesKey):
    t: Time | None = Field(description="Time of the series' last point.")
    value: float | None = Field(description="Its value.")


class LatestPage(BaseModel):
    items: list[LatestItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class FleetPoints(FleetSeriesKey):
    t: list[Time] = Field(description="Point times, ascending.")
    value: list[float | None]


class FleetPointsOut(Span):
    series: list[FleetPoints] = Field(description="Series with points on this page.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the points after these.")
