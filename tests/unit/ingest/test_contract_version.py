"""The `schema` field of device contracts: version checks with clear errors."""

from __future__ import annotations

import pytest

from stats_service.ingest.protocols.contract_version import UnsupportedContract, check


def test_supported_version_is_returned() -> None:
    assert check({"schema": "temperature/v1"}, "temperature") == 1
    assert check({"schema": "epidemic-run/v1"}, "epidemic-run") == 1


def test_missing_schema_means_v1_while_v1_is_the_only_version() -> None:
    assert check({}, "temperature") == 1


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"schema": "temperature/v2"}, "newer than this server"),
        ({"schema": "temperature/v0"}, "not a temperature contract"),
        ({"schema": "humidity/v1"}, "not a temperature contract"),
        ({"schema": 1}, "not a temperature contract"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_unknown_versions_name_the_supported_ones(payload: object, needle: str) -> None:
    with pytest.raises(UnsupportedContract) as info:
        check(payload, "temperature")
    assert info.value.status == 422
    assert needle in info.value.detail
    if isinstance(payload, dict):
        assert "supported: temperature/v1" in info.value.detail
        assert info.value.errors[0].loc == "body.schema"
