"""Property-based checks of the live server against its own OpenAPI document.

Schemathesis reads `/openapi.json` from the running server, generates requests for every
operation (valid ones, then invalid ones), sends them with the admin key and fails on any
5xx and on any answer the document does not describe (status, content type, body).

The cases are driven through Hypothesis directly: schemathesis' lazy pytest loader
(`schemathesis.pytest.from_fixture`) does not run under pytest 9.

Bugs found here and reported but not fixed yet are listed in `KNOWN_GAPS`: each one is
first shown to still exist (on the live server), then the document is amended so that
the bug does not hide others. Once a gap is fixed the test fails until its entry goes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .harness import ADMIN, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = settings(
    max_examples=25,
    derandomize=True,  # the same cases on every run
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
Doc = dict[str, Any]


# -- bugs reported to the lead, tolerated until fixed ---------------------------------------


def _undocumented_409(_: ServerProcess, doc: Doc) -> bool:
    return "409" not in doc["paths"]["/v1/ingest"]["post"]["responses"]


def _document_409(doc: Doc) -> None:
    for path in ("/v1/ingest", "/v1/admin/tenants"):
        responses = doc["paths"][path]["post"]["responses"]
        responses["409"] = {**responses["400"], "description": "Conflict"}


def _naive_datetimes(server: ServerProcess, _: Doc) -> bool:
    keys = httpx.get(f"{server.url}/v1/admin/keys", headers=ADMIN, timeout=10).json()
    return not re.search(r"(Z|[+-]\d\d:\d\d)$", keys[0]["created_at"])


def _drop_datetime_format(doc: Doc) -> None:
    for name in ("TenantOut", "KeyOut", "KeyCreated"):
        for prop in doc["components"]["schemas"][name]["properties"].values():
            for schema in [prop, *prop.get("anyOf", [])]:
                schema.pop("format", None)


def _int32_overflow(server: ServerProcess, _: Doc) -> bool:
    with server.client() as client:
        client.post("/v1/admin/tenants", json={"name": "gap-probe"})
        answer = client.patch("/v1/admin/tenants/gap-probe", json={"max_series": 2**40})
    return answer.status_code == 500


def _bound_tenant_limits(doc: Doc) -> None:
    props = doc["components"]["schemas"]["TenantPatch"]["properties"]
    for name in ("max_series", "max_batch_points"):
        for schema in [props[name], *props[name].get("anyOf", [])]:
            if schema.get("type") == "integer":
                schema["maximum"] = 2**31 - 1


def _replay_overflow(server: ServerProcess, _: Doc) -> bool:
    body = {"from": "9999-12-30", "to": "9999-12-31"}
    with server.client() as client:
        return client.post("/v1/admin/replay", json=body).status_code == 500


def _recent_replay_days(doc: Doc) -> None:
    today = datetime.now(UTC).date()
    days = [str(today - timedelta(days=1)), str(today)]
    props = doc["components"]["schemas"]["ReplayIn"]["properties"]
    for name in ("from", "to"):
        props[name] = {"type": "string", "format": "date", "enum": days}


@dataclass(frozen=True, slots=True)
class KnownGap:
    description: str
    present: Callable[[ServerProcess, Doc], bool]
    amend: Callable[[Doc], None]


KNOWN_GAPS = (
    KnownGap(
        "POST /v1/ingest (Idempotency-Key reused with another body) and POST "
        "/v1/admin/tenants (name taken) answer 409, which the document does not list",
        _undocumented_409,
        _document_409,
    ),
    KnownGap(
        "admin responses carry naive datetimes (created_at/revoked_at without an offset), "
        "which are not RFC 3339 `date-time`s",
        _naive_datetimes,
        _drop_datetime_format,
    ),
    KnownGap(
        "PATCH /v1/admin/tenants/{name} with max_series or max_batch_points above 2**31-1 "
        "answers 500 (DuckDB INTEGER columns; TenantPatch has no upper bound)",
        _int32_overflow,
        _bound_tenant_limits,
    ),
    KnownGap(
        "POST /v1/admin/replay walks every calendar day from..to (ingest/replay.py "
        "`archived`): `to` = 9999-12-31 answers 500 (OverflowError in `day += 1 day`), and "
        "a range of a few thousand years holds a worker thread for seconds (0001..9999: "
        "24 s); until fixed only recent days are generated",
        _replay_overflow,
        _recent_replay_days,
    ),
)


# -- the test --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("schemathesis") / "data").start()
    now = int(time.time())
    with server.client() as client:  # some data, so that the read endpoints answer rows
        for device in ("seed-a", "seed-b"):
            points = [
                {"ts": now - 60 * i, "values": {"temperature": 20 + i, "humidity": 40 - i}}
                for i in range(50)
            ]
            body = {"device": device, "tags": {"site": "lab"}, "points": points}
            assert client.post("/v1/ingest", json=body).status_code == 202
    yield server
    server.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_api_conforms_to_its_openapi(live_server: ServerProcess, mode: GenerationMode) -> None:
    doc: Doc = httpx.get(f"{live_server.url}/openapi.json", timeout=10).json()
    fixed = [gap.description for gap in KNOWN_GAPS if not gap.present(live_server, doc)]
    assert not fixed, f"fixed, delete from KNOWN_GAPS: {fixed}"
    for gap in KNOWN_GAPS:
        gap.amend(doc)
    schema = schemathesis.openapi.from_dict(doc)

    failures: list[str] = []
    operations = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()  # an invalid operation definition fails here
            operations += 1

            @given(case=operation.as_strategy(generation_mode=mode))
            @EXAMPLES
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(
                    base_url=live_server.url,
                    headers=ADMIN,
                    checks=CHECKS,
                    session=session,
                    timeout=30,
                )

            try:
                check()
            except Unsatisfiable:  # nothing of this operation can be made invalid
                assert mode is GenerationMode.NEGATIVE, operation.label
            except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
                if not isinstance(exc, Exception | BaseExceptionGroup):
                    raise
                failures.append(f"{operation.label}:\n{str(exc)[:4000]}")
    assert operations >= 11
    assert not failures, "\n\n".join(failures)
