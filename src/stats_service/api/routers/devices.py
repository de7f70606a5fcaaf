"""GET /v1/devices...: the caller's devices, their series and latest readings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from ...query import devices
from ...query.params import decode_offset
from ..deps import ReadPrincipal, ServicesDep
from ..read_models import READ_PROBLEMS, DeviceMetrics, DeviceOut, DevicePage

router = APIRouter(tags=["devices"])

DeviceName = Annotated[str, Path(min_length=1, max_length=256, description="Device name.")]


@router.get("/v1/devices", response_model=DevicePage, responses=READ_PROBLEMS)
def list_devices(
    principal: ReadPrincipal,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
) -> dict[str, Any]:
    """Devices of the tenant by name, with their series count and metric names."""
    offset = decode_offset("cursor", cursor)
    with services.store.reader() as cur:
        return devices.list_devices(cur, principal.tenant_id, limit, offset)


@router.get("/v1/devices/{device}", response_model=DeviceOut, responses=READ_PROBLEMS)
def get_device(
    device: DeviceName, principal: ReadPrincipal, services: ServicesDep
) -> dict[str, Any]:
    """One device: first and last seen, series count and metric names."""
    with services.store.reader() as cur:
        return devices.get_device(cur, principal.tenant_id, device)


@router.get("/v1/devices/{device}/metrics", response_model=DeviceMetrics, responses=READ_PROBLEMS)
def device_metrics(
    device: DeviceName, principal: ReadPrincipal, services: ServicesDep
) -> dict[str, Any]:
    """Every series of a device with its latest value and time."""
    with services.store.reader() as cur:
        found = devices.device_metrics(cur, principal.tenant_id, device)
    return {"device": device, "metrics": found}
