"""Walking the archive's `raw/<tenant>/<yyyy>/<mm>/<dd>/` folders."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

from .base import Archive


def tenants(archive: Archive) -> list[str]:
    return archive.children("raw/")


def days(archive: Archive, tenant: str, start: date, end: date) -> Iterator[date]:
    """UTC days start..end inclusive that have a folder for `tenant`.

    Walks only the year/month/day folders that exist, so a wide range costs nothing."""
    root = f"raw/{tenant}/"
    for year in archive.children(root):
        if not (year.isdigit() and start.year <= int(year) <= end.year):
            continue
        for month in archive.children(f"{root}{year}/"):
            for day in archive.children(f"{root}{year}/{month}/"):
                try:
                    found = date(int(year), int(month), int(day))
                except ValueError:
                    continue  # not a folder the archive wrote
                if start <= found <= end:
                    yield found


def day_prefix(tenant: str, day: date) -> str:
    return f"raw/{tenant}/{day:%Y/%m/%d}/"


def prune(archive: Archive, before: date) -> tuple[int, int]:
    """Delete every tenant's whole days before `before`: (days, objects) removed."""
    removed_days = removed_objects = 0
    for tenant in tenants(archive):
        for day in list(days(archive, tenant, date.min, before - timedelta(days=1))):
            keys = list(archive.keys(day_prefix(tenant, day)))
            for key in keys:
                archive.delete(key)
            removed_days += 1
            removed_objects += len(keys)
    return removed_days, removed_objects
