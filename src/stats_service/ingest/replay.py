"""Rebuild points from the raw archive, idempotently: a replay never overwrites a point.

Objects are read in key order (tenant, hour, time-ordered batch id), each payload is
parsed again with the server time it was received at, and its points go through the
writer with `only_missing`, so running a replay twice, or over live data, changes nothing
that is already stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime

import structlog

from ..archive import layout
from ..archive.base import Archive
from ..archive.envelope import Envelope, read_object
from ..errors import ServiceError
from ..model import WriteItem, WriteOutcome
from .pipeline import Pipeline
from .timestamps import rfc3339_to_us
from .writer import Writer

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class ReplayReport:
    batches: int = 0
    points: int = 0
    failed: list[str] = field(default_factory=list)


def archived(archive: Archive, start: date, end: date, tenant: str | None) -> Iterator[Envelope]:
    """Envelopes received on days start..end inclusive (UTC), for one tenant or all."""
    for name in [tenant] if tenant else layout.tenants(archive):
        for day in layout.days(archive, name, start, end):
            for key in archive.keys(layout.day_prefix(name, day)):
                yield from read_object(archive.get(key))


def replay(
    archive: Archive, pipeline: Pipeline, writer: Writer, start: date, end: date,
    tenant: str | None = None,
) -> ReplayReport:
    report = ReplayReport()
    pending: list[tuple[str, Future[WriteOutcome]]] = []

    def settle() -> None:
        for batch_id, future in pending:
            try:
                report.points += future.result().points_written
            except ServiceError as exc:  # one payload that cannot be written stops nothing
                report.failed.append(f"{batch_id}: {exc.detail}")
        pending.clear()

    for envelope in archived(archive, start, end, tenant):
        report.batches += 1
        now_us = rfc3339_to_us(envelope.received_at.isoformat() + "Z")
        try:
            batch = pipeline.parse(envelope, now_us)
        except ServiceError as exc:
            report.failed.append(f"{envelope.batch_id}: {exc.detail}")
            continue
        item = WriteItem(
            batch=batch,
            batch_id=envelope.batch_id,
            received_at=envelope.received_at,
            protocol=envelope.protocol,
            nbytes=0,
            response={},
            only_missing=True,
            tenant=envelope.tenant,
        )
        pending.append((envelope.batch_id, writer.submit(item)))
        if len(pending) >= 64:
            settle()
    settle()
    log.info("replay_done", batches=report.batches, points=report.points, failed=len(report.failed))
    return report


def parse_day(text: str) -> date:
    return datetime.strptime(text, "%Y-%m-%d").date()
